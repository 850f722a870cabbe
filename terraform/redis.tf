# ElastiCache Redis: a primary and replicas across AZs with automatic failover (cluster mode
# off, the default), or with redis_cluster_mode = true several shards of a primary and its
# replicas each; TLS required in transit, KMS at rest, and an AUTH token either way. The service
# reaches it as rediss://:TOKEN@endpoint:6379/0 -- the primary endpoint, or with cluster mode
# the configuration endpoint and REDIS_CLUSTER=true -- a URL that exists only in Secrets
# Manager (secrets.tf).

locals {
  redis_group_id = "${local.name}-redis"
  # Node ids as ElastiCache names them, for the per-node alarms (monitoring.tf).
  redis_node_ids = (
    var.redis_cluster_mode
    ? [
      for pair in setproduct(range(1, var.redis_shards + 1), range(1, var.redis_replicas_per_shard + 2)) :
      format("%s-%04d-%03d", local.redis_group_id, pair[0], pair[1])
    ]
    : [for n in range(1, var.redis_num_cache_clusters + 1) : format("%s-%03d", local.redis_group_id, n)]
  )
  redis_endpoint = (
    var.redis_cluster_mode
    ? aws_elasticache_replication_group.redis.configuration_endpoint_address
    : aws_elasticache_replication_group.redis.primary_endpoint_address
  )
}

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
  replication_group_id = local.redis_group_id
  description          = "mcp-service shared state: JWKS, token cache, revocations, rate-limit counters"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = 6379
  # Cluster mode on: shards (num_node_groups) of one primary and its replicas; off: one
  # primary and num_cache_clusters - 1 replicas.
  cluster_mode            = var.redis_cluster_mode ? "enabled" : "disabled"
  num_node_groups         = var.redis_cluster_mode ? var.redis_shards : null
  replicas_per_node_group = var.redis_cluster_mode ? var.redis_replicas_per_shard : null
  num_cache_clusters      = var.redis_cluster_mode ? null : var.redis_num_cache_clusters
  parameter_group_name    = var.redis_cluster_mode ? "default.redis7.cluster.on" : "default.redis7"
  subnet_group_name       = aws_elasticache_subnet_group.redis.name
  security_group_ids      = [aws_security_group.redis.id]

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
