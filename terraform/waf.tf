# WAFv2 in front of the ALB. Order matters: the cheap checks (metrics path, per-IP rate) run
# before the managed rule groups. Per-subject limits are the service's own (RATE_LIMIT); this
# rate rule only stops floods from one address before they cost token verifications.

resource "aws_wafv2_web_acl" "main" {
  name        = "${local.name}-waf"
  description = "mcp-service: metrics path, per-IP and registration rate limits, AWS managed rules"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  # The listener rule matches the raw path; the service decodes percent-escapes, so
  # /%6Detrics would reach /metrics past it. WAF matches the decoded, normalised path.
  rule {
    name     = "deny-metrics-path"
    priority = 0

    action {
      block {}
    }

    statement {
      byte_match_statement {
        search_string         = "/metrics"
        positional_constraint = "STARTS_WITH"

        field_to_match {
          uri_path {}
        }

        text_transformation {
          priority = 0
          type     = "URL_DECODE"
        }

        text_transformation {
          priority = 1
          type     = "NORMALIZE_PATH"
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-deny-metrics-path"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-rate-limit-per-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-aws-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-common"
    priority = 3

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        # The common set blocks bodies over 8 KB; MCP tool calls may be larger, and the
        # service enforces its own limit (MAX_BODY_BYTES, 413). Count instead of block.
        rule_action_override {
          name = "SizeRestrictions_BODY"

          action_to_use {
            count {}
          }
        }

        # A loopback redirect URI (http://127.0.0.1:<port>/callback) in the login facade's
        # requests looks like remote file inclusion to these two: counted here, blocked again
        # below everywhere but the three facade endpoints that carry redirect URIs.
        dynamic "rule_action_override" {
          for_each = var.enable_interactive_login ? ["GenericRFI_QUERYARGUMENTS", "GenericRFI_BODY"] : []
          content {
            name = rule_action_override.value
            action_to_use {
              count {}
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 4

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-aws-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # Dynamic Client Registration is unauthenticated: registrations per address are bounded
  # here before they reach the service (which bounds them per replica too,
  # OAUTH_REGISTRATION_RATE_LIMIT).
  dynamic "rule" {
    for_each = var.enable_interactive_login ? [1] : []
    content {
      name     = "oauth-registration-rate"
      priority = 5

      action {
        block {}
      }

      statement {
        rate_based_statement {
          limit                 = var.waf_registration_rate_limit
          evaluation_window_sec = 300
          aggregate_key_type    = "IP"

          scope_down_statement {
            byte_match_statement {
              search_string         = "/oauth/register"
              positional_constraint = "STARTS_WITH"
              field_to_match {
                uri_path {}
              }
              text_transformation {
                priority = 0
                type     = "URL_DECODE"
              }
              text_transformation {
                priority = 1
                type     = "NORMALIZE_PATH"
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${local.name}-oauth-registration-rate"
        sampled_requests_enabled   = true
      }
    }
  }

  # The two RFI rules counted in aws-common block again outside /oauth/authorize (query),
  # /oauth/register and /oauth/token (bodies).
  dynamic "rule" {
    for_each = var.enable_interactive_login ? [1] : []
    content {
      name     = "aws-common-rfi-outside-oauth"
      priority = 6

      action {
        block {}
      }

      statement {
        and_statement {
          statement {
            or_statement {
              statement {
                label_match_statement {
                  scope = "LABEL"
                  key   = "awswaf:managed:aws:core-rule-set:GenericRFI_QueryArguments"
                }
              }
              statement {
                label_match_statement {
                  scope = "LABEL"
                  key   = "awswaf:managed:aws:core-rule-set:GenericRFI_Body"
                }
              }
            }
          }
          statement {
            not_statement {
              statement {
                regex_match_statement {
                  regex_string = "^/oauth/(authorize|register|token)$"
                  field_to_match {
                    uri_path {}
                  }
                  text_transformation {
                    priority = 0
                    type     = "URL_DECODE"
                  }
                  text_transformation {
                    priority = 1
                    type     = "NORMALIZE_PATH"
                  }
                }
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${local.name}-aws-common-rfi-outside-oauth"
        sampled_requests_enabled   = true
      }
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.name}-waf"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "alb" {
  resource_arn = aws_lb.main.arn
  web_acl_arn  = aws_wafv2_web_acl.main.arn
}

# WAF requires the log group name to start with aws-waf-logs-.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${local.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

# Bearer tokens never reach the WAF logs.
resource "aws_wafv2_web_acl_logging_configuration" "main" {
  resource_arn            = aws_wafv2_web_acl.main.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = "cookie"
    }
  }
}
