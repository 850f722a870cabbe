# One Secrets Manager secret, a JSON object, holds every setting the task receives through
# `secrets` (never `environment`): the Cognito pool settings, REDIS_URL with the AUTH token,
# TOKEN_CACHE_SECRET and, with enable_interactive_login, the login facade's app client secret
# and signing keys (cognito.tf). The execution role may read this secret and no other.

# TOKEN_CACHE_SECRET is "current,previous": the service signs with the first key and accepts
# all. Two slots take turns: each bump of token_cache_key_generation regenerates exactly one
# slot (the keepers of slot a change on odd generations, of slot b on even ones), which becomes
# the current key, while the other slot still holds the key it replaces.
resource "random_password" "token_cache_a" {
  length  = 64
  special = false

  keepers = {
    slot_generation = floor((var.token_cache_key_generation + 1) / 2)
  }
}

resource "random_password" "token_cache_b" {
  length  = 64
  special = false

  keepers = {
    slot_generation = floor(var.token_cache_key_generation / 2)
  }
}

locals {
  token_cache_keys = (
    var.token_cache_key_generation % 2 == 1
    ? [random_password.token_cache_a.result, random_password.token_cache_b.result]
    : [random_password.token_cache_b.result, random_password.token_cache_a.result]
  )

  redis_url = format(
    "rediss://:%s@%s:%d/0",
    random_password.redis_auth.result,
    local.redis_endpoint,
    aws_elasticache_replication_group.redis.port,
  )
}

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:rotated by Terraform (token_cache_key_generation, redis_auth_token_generation, oauth_proxy_signing_key_generation) so Redis and the tasks change together; README "Rotating secrets"
  name                    = "${local.name}/app"
  description             = "mcp-service settings: Cognito pool, REDIS_URL (with the AUTH token), TOKEN_CACHE_SECRET, login facade keys"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id = aws_secretsmanager_secret.app.id
  secret_string = jsonencode(merge(
    {
      COGNITO_REGION     = var.cognito_region
      USER_POOL_ID       = var.user_pool_id
      APP_CLIENT_ID      = join(",", var.app_client_ids)
      REDIS_URL          = local.redis_url
      TOKEN_CACHE_SECRET = join(",", local.token_cache_keys)
    },
    var.enable_interactive_login ? {
      OAUTH_PROXY_CLIENT_SECRET = aws_cognito_user_pool_client.interactive_login[0].client_secret
      OAUTH_PROXY_SIGNING_KEYS  = join(",", local.oauth_proxy_signing_keys)
    } : {},
  ))
}
