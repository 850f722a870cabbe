# The login facade's side of Cognito (enable_interactive_login): its app client in the
# existing user pool, and its token-signing keys. The pool, its resource server (whose scopes
# required_scopes names) and the managed-login domain (cognito_domain) are the pool owner's;
# README.md, "Interactive login", lists what to set there.

locals {
  interactive_login = var.enable_interactive_login ? 1 : 0
  # What the facade asks Cognito for; the scopes Cognito grants are the ones its tokens carry.
  interactive_login_scopes = distinct(concat(
    ["openid"],
    length(var.interactive_login_scopes) > 0 ? var.interactive_login_scopes : var.required_scopes,
  ))
}

# A confidential client: the facade exchanges Cognito's code server-side with this secret and
# its own PKCE verifier; Cognito's tokens never leave the service.
resource "aws_cognito_user_pool_client" "interactive_login" {
  count        = local.interactive_login
  name         = "${local.name}-interactive-login"
  user_pool_id = var.user_pool_id

  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = local.interactive_login_scopes
  callback_urls                        = ["https://${var.domain_name}/oauth/callback"]
  supported_identity_providers         = var.interactive_login_identity_providers
  explicit_auth_flows                  = ["ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors        = "ENABLED"
  enable_token_revocation              = true

  # The facade reads who signed in from Cognito's access token at its callback and never
  # refreshes it, so Cognito's tokens stay short; the sessions people hold last
  # OAUTH_PROXY_REFRESH_TOKEN_SECONDS, their access tokens OAUTH_PROXY_ACCESS_TOKEN_SECONDS.
  access_token_validity  = 60
  id_token_validity      = 60
  refresh_token_validity = 60
  auth_session_validity  = 5
  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "minutes"
  }

  lifecycle {
    precondition {
      condition     = var.cognito_domain != ""
      error_message = "enable_interactive_login needs cognito_domain, the managed-login domain."
    }
  }
}

# OAUTH_PROXY_SIGNING_KEYS is "current,previous": the first key signs, both are published at
# /oauth/jwks.json. The two slots take turns as for TOKEN_CACHE_SECRET (secrets.tf): each bump
# of oauth_proxy_signing_key_generation replaces exactly one key, which becomes the signing
# one, while access tokens the other signed stay verifiable until they expire.
resource "tls_private_key" "oauth_proxy_a" {
  count     = local.interactive_login
  algorithm = "RSA"
  rsa_bits  = 3072

  lifecycle {
    replace_triggered_by = [random_id.oauth_proxy_slot_a]
  }
}

resource "tls_private_key" "oauth_proxy_b" {
  count     = local.interactive_login
  algorithm = "RSA"
  rsa_bits  = 3072

  lifecycle {
    replace_triggered_by = [random_id.oauth_proxy_slot_b]
  }
}

# tls_private_key has no keepers: these stand in for them (replace_triggered_by).
resource "random_id" "oauth_proxy_slot_a" {
  byte_length = 4
  keepers = {
    slot_generation = floor((var.oauth_proxy_signing_key_generation + 1) / 2)
  }
}

resource "random_id" "oauth_proxy_slot_b" {
  byte_length = 4
  keepers = {
    slot_generation = floor(var.oauth_proxy_signing_key_generation / 2)
  }
}

locals {
  oauth_proxy_signing_keys = var.enable_interactive_login ? (
    var.oauth_proxy_signing_key_generation % 2 == 1
    ? [tls_private_key.oauth_proxy_a[0].private_key_pem_pkcs8, tls_private_key.oauth_proxy_b[0].private_key_pem_pkcs8]
    : [tls_private_key.oauth_proxy_b[0].private_key_pem_pkcs8, tls_private_key.oauth_proxy_a[0].private_key_pem_pkcs8]
  ) : []
}
