output "mcp_url" {
  description = "The MCP endpoint clients use (MCP_URL)."
  value       = "https://${var.domain_name}/mcp"
}

output "alb_dns_name" {
  description = "Point domain_name at this (a CNAME or alias) unless route53_zone_id manages it."
  value       = aws_lb.main.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB, for an alias record."
  value       = aws_lb.main.zone_id
}

output "ecr_repository_url" {
  description = "Push images here (docker tag mcp-service:TAG <url>:TAG)."
  value       = aws_ecr_repository.app.repository_url
}

output "ecs_cluster_name" {
  value = aws_ecs_cluster.main.name
}

output "ecs_service_name" {
  value = aws_ecs_service.app.name
}

output "log_group_name" {
  description = "aws logs tail <this> --follow"
  value       = aws_cloudwatch_log_group.app.name
}

output "app_secret_arn" {
  description = "The Secrets Manager secret the tasks read their settings from."
  value       = aws_secretsmanager_secret.app.arn
}

output "redis_endpoint" {
  description = "The Redis endpoint in REDIS_URL: the primary endpoint, or with redis_cluster_mode the configuration endpoint (TLS, AUTH token in the secret)."
  value       = local.redis_endpoint
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies: subscribe your on-call here."
  value       = aws_sns_topic.alarms.arn
}

output "web_acl_arn" {
  value = aws_wafv2_web_acl.main.arn
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (for scrapers allowed through metrics_scraper_security_group_ids)."
  value       = aws_security_group.tasks.id
}

output "interactive_login_client_id" {
  description = "The login facade's Cognito app client (OAUTH_PROXY_CLIENT_ID), empty without enable_interactive_login."
  value       = var.enable_interactive_login ? aws_cognito_user_pool_client.interactive_login[0].id : ""
}
