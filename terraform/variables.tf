# Inputs. Copy terraform.tfvars.example to terraform.tfvars (git-ignored) and fill it in.

# --- Naming and placement ------------------------------------------------------------------------

variable "project_name" {
  description = "Prefix of every resource name (ALB and target group names derive from it)."
  type        = string
  default     = "mcp-service"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.project_name))
    error_message = "project_name: 2-24 characters, lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "aws_region" {
  description = "Region of the deployment."
  type        = string
  default     = "us-east-1"
}

variable "environment" {
  description = "Environment tag (production, staging...)."
  type        = string
  default     = "production"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# --- Network -------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC this configuration creates (public subnets for the ALB, private for tasks and Redis)."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "az_count" {
  description = "Availability zones to spread subnets, tasks and Redis nodes over."
  type        = number
  default     = 2
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3 (multi-AZ Redis and the ALB need at least two)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper, but an AZ outage cuts egress for all)."
  type        = bool
  default     = false
}

variable "enable_vpc_endpoints" {
  description = "Interface endpoints for ECR, CloudWatch Logs and Secrets Manager, and an S3 gateway endpoint, so image pulls, logs and secrets never cross the NAT gateway."
  type        = bool
  default     = true
}

variable "enable_flow_logs" {
  description = "VPC flow logs (REJECT and ACCEPT) to CloudWatch Logs."
  type        = bool
  default     = true
}

# --- Public endpoint -----------------------------------------------------------------------------

variable "domain_name" {
  description = "Public host name of the service (e.g. mcp.example.com): PUBLIC_BASE_URL is https://<domain_name>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.domain_name))
    error_message = "domain_name must be a lower-case DNS name such as mcp.example.com."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone for domain_name; when set, an alias record to the ALB is created."
  type        = string
  default     = ""
}

variable "certificate_arn" {
  description = "ACM certificate (same region) covering domain_name, used by the HTTPS listener."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.2 and 1.3 only)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_idle_timeout" {
  description = "Seconds the ALB keeps an idle connection; also bounds how long a tool call may run without sending a byte."
  type        = number
  default     = 60
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the ALB (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "enable_alb_access_logs" {
  description = "ALB access logs to an S3 bucket this configuration creates."
  type        = bool
  default     = true
}

variable "access_log_retention_days" {
  description = "Days ALB access logs (and CloudTrail logs, when enabled) are kept in S3."
  type        = number
  default     = 365
}

variable "waf_rate_limit" {
  description = "Requests per client IP per 5 minutes above which WAF blocks that IP (coarse flood protection; per-subject limits are the service's own RATE_LIMIT)."
  type        = number
  default     = 3000
  validation {
    condition     = var.waf_rate_limit >= 100 && var.waf_rate_limit <= 2000000000
    error_message = "waf_rate_limit must be between 100 and 2,000,000,000."
  }
}

# --- Service -------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the image in this ECR repository to run (tags are immutable: use the git commit, never latest)."
  type        = string
  validation {
    condition     = var.image_tag != "latest" && can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag other than latest (the repository's tags are immutable)."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: must match the image that was pushed."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Fargate task memory in MiB."
  type        = number
  default     = 512
}

variable "min_capacity" {
  description = "Fewest running tasks (also the initial desired count). Two or more keep the service up through an AZ or task failure."
  type        = number
  default     = 2
  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Most running tasks autoscaling may start."
  type        = number
  default     = 10
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation for target tracking."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Target ALB requests per task per minute (ALBRequestCountPerTarget) for target tracking."
  type        = number
  default     = 3000
}

variable "log_level" {
  description = "LOG_LEVEL of the service."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "extra_environment" {
  description = "Further non-secret settings for the container (e.g. RATE_LIMIT, TOOL_SCOPES, CORS_ALLOW_ORIGINS). Secrets belong in the Secrets Manager secret, never here."
  type        = map(string)
  default     = {}
  validation {
    condition = alltrue([
      for name in keys(var.extra_environment) :
      !can(regex("(?i)(SECRET|PASSWORD|TOKEN|_KEY$|CREDENTIAL|REDIS_URL)", name))
    ])
    error_message = "extra_environment must not carry secrets (names with SECRET, PASSWORD, TOKEN, CREDENTIAL, REDIS_URL or ending in _KEY): they go to Secrets Manager."
  }
}

variable "enable_execute_command" {
  description = "Allow `aws ecs execute-command` into running tasks (grants the task role the SSM channel permissions)."
  type        = bool
  default     = false
}

variable "metrics_scraper_security_group_ids" {
  description = "Security groups (e.g. a Prometheus or ADOT collector in this VPC) allowed to reach the tasks on port 8000 to scrape /metrics. The ALB never routes /metrics."
  type        = list(string)
  default     = []
}

# --- Cognito (the settings in the Secrets Manager secret) ----------------------------------------

variable "cognito_region" {
  description = "Region of the Cognito user pool (COGNITO_REGION)."
  type        = string
}

variable "user_pool_id" {
  description = "Cognito user pool id (USER_POOL_ID), e.g. us-east-1_AbCdEf123."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}_[0-9A-Za-z]+$", var.user_pool_id))
    error_message = "user_pool_id must look like us-east-1_AbCdEf123."
  }
}

variable "app_client_ids" {
  description = "Cognito app client ids whose tokens are accepted (APP_CLIENT_ID)."
  type        = list(string)
  validation {
    condition     = length(var.app_client_ids) > 0
    error_message = "app_client_ids needs at least one app client id."
  }
}

variable "required_scopes" {
  description = "Scopes every token must carry (REQUIRED_SCOPES), e.g. [\"mcp/tools\"]: binds tokens to this resource server."
  type        = list(string)
  default     = []
}

variable "token_cache_key_generation" {
  description = "Bump by one to rotate TOKEN_CACHE_SECRET: a new key signs, the previous one still verifies until the next bump."
  type        = number
  default     = 1
  validation {
    condition     = var.token_cache_key_generation >= 1 && floor(var.token_cache_key_generation) == var.token_cache_key_generation
    error_message = "token_cache_key_generation must be a positive whole number."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 30
}

# --- Redis (ElastiCache) -------------------------------------------------------------------------

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_num_cache_clusters" {
  description = "Nodes in the replication group (one primary, the rest replicas across AZs)."
  type        = number
  default     = 2
  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "redis_num_cache_clusters must be 2-6: automatic failover needs a replica."
  }
}

variable "redis_cluster_mode" {
  description = "ElastiCache cluster mode (enabled): the keys spread over redis_shards shards; the tasks get the configuration endpoint and REDIS_CLUSTER=true. Changing it replaces the replication group (Redis starts empty: docs/redis.md says what that costs)."
  type        = bool
  default     = false
}

variable "redis_shards" {
  description = "With redis_cluster_mode: shards (node groups), each a primary and its replicas."
  type        = number
  default     = 3
  validation {
    condition     = var.redis_shards >= 1 && var.redis_shards <= 500
    error_message = "redis_shards must be 1-500."
  }
}

variable "redis_replicas_per_shard" {
  description = "With redis_cluster_mode: replicas of each shard's primary, across AZs (automatic failover needs one)."
  type        = number
  default     = 1
  validation {
    condition     = var.redis_replicas_per_shard >= 1 && var.redis_replicas_per_shard <= 5
    error_message = "redis_replicas_per_shard must be 1-5: automatic failover needs a replica."
  }
}

variable "redis_engine_version" {
  description = "Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "redis_snapshot_retention_days" {
  description = "Days of automatic Redis snapshots (0 disables them)."
  type        = number
  default     = 7
}

variable "redis_auth_token_generation" {
  description = "Bump by one to rotate the Redis AUTH token (ROTATE strategy: old and new are both accepted while tasks roll over)."
  type        = number
  default     = 1
}

# --- Logs, alarms, audit -------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days CloudWatch keeps the service, WAF, Redis and flow logs."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (e.g. 30, 90, 365)."
  }
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (empty: subscribe something yourself)."
  type        = string
  default     = ""
}

variable "target_5xx_threshold" {
  description = "5xx answers from the tasks per minute that raise the alarm (it also rolls back a deployment)."
  type        = number
  default     = 10
}

variable "latency_p99_threshold_seconds" {
  description = "p99 target response time that raises the latency alarm."
  type        = number
  default     = 1
}

variable "enable_cloudtrail" {
  description = "Create a multi-region CloudTrail trail (S3, KMS-encrypted, log file validation, CloudWatch Logs). Leave off when the organisation already runs one."
  type        = bool
  default     = false
}

# Interactive login (the authorization server facade, OAUTH_PROXY): people sign in from MCP
# clients (Claude, VS Code, Cursor, the MCP Inspector) through Cognito managed login.
variable "enable_interactive_login" {
  description = "Serve the login facade (OAUTH_PROXY=true): creates its Cognito app client and signing keys, and the /oauth/* edge rules."
  type        = bool
  default     = false
}

variable "cognito_domain" {
  description = "The managed-login domain people sign in at (COGNITO_DOMAIN), e.g. https://auth.example.com or https://<prefix>.auth.<region>.amazoncognito.com; required with enable_interactive_login."
  type        = string
  default     = ""
  validation {
    condition     = var.cognito_domain == "" || can(regex("^https://[a-z0-9.-]+$", var.cognito_domain))
    error_message = "cognito_domain must be an https origin without a path, e.g. https://auth.example.com."
  }
}

variable "interactive_login_scopes" {
  description = "The resource server's scopes the facade's app client may ask for besides openid (OAUTH_PROXY_SCOPES); empty: required_scopes."
  type        = list(string)
  default     = []
}

variable "interactive_login_identity_providers" {
  description = "Identity providers of the facade's app client (COGNITO, or the names of federated providers configured in the pool)."
  type        = list(string)
  default     = ["COGNITO"]
}

variable "oauth_proxy_signing_key_generation" {
  description = "Bump by one to rotate OAUTH_PROXY_SIGNING_KEYS: a new key signs, the previous one is still published (tokens it signed stay valid) until the next bump."
  type        = number
  default     = 1
  validation {
    condition     = var.oauth_proxy_signing_key_generation >= 1 && floor(var.oauth_proxy_signing_key_generation) == var.oauth_proxy_signing_key_generation
    error_message = "oauth_proxy_signing_key_generation must be a positive whole number."
  }
}

variable "waf_registration_rate_limit" {
  description = "Client registrations (POST /oauth/register) per client IP per 5 minutes before the WAF blocks that IP's registrations (minimum 10)."
  type        = number
  default     = 50
  validation {
    condition     = var.waf_registration_rate_limit >= 10
    error_message = "waf_registration_rate_limit must be at least 10 (the WAF minimum)."
  }
}
