# ElastiCache Redis (cluster mode off): a primary and replicas across AZs with automatic
# failover, TLS required in transit, KMS at rest, and an AUTH token. The service reaches it as
# rediss://:TOKEN@primary:6379/0, a URL that exists only in Secrets Manager (secrets.tf).

# Alphanumeric only: the token is embedded in a URL, where /, @, # and friends would need
# escaping. 64 characters of [A-Za-z0-9] are ~380 bits.
resource "random_password" "redis_auth" {
  length  = 64
  special = false

  keepers = {
    generation = var.redis_auth_token_generation
  }
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${local.name}-redis"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_cloudwatch_log_group" "redis_slow" {
  name              = "/elasticache/${local.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "mcp-service shared state: JWKS, token cache, revocations, rate-limit counters"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_num_cache_clusters
  port                 = 6379
  parameter_group_name = "default.redis7"
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.redis.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis_auth.result
  # ROTATE keeps the previous token valid next to the new one while the tasks roll over to
  # the new REDIS_URL (README: rotating secrets).
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.redis_snapshot_retention_days
  snapshot_window            = "03:00-04:00"
  maintenance_window         = "sun:05:00-sun:06:00"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis_slow.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}
