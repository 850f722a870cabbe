# mcp-service on ECS Fargate: cluster, task definition and service.
# The rest lives beside this file: network.tf (VPC, security groups), alb.tf, waf.tf, redis.tf,
# secrets.tf, iam.tf, ecr.tf, kms.tf, autoscaling.tf, monitoring.tf, vpc_endpoints.tf,
# cloudtrail.tf. README.md explains how to apply it.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # State holds the generated secrets (Redis AUTH token, token-cache and signing keys): keep it in an
  # encrypted, access-controlled backend, for example
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "mcp-service/terraform.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   kms_key_id   = "alias/terraform-state"
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = var.project_name
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name           = var.project_name
  account_id     = data.aws_caller_identity.current.account_id
  partition      = data.aws_partition.current.partition
  container_name = "mcp-service"
  container_port = 8000

  # Non-secret settings only (tests/deploy asserts no secret-like name appears here).
  # CONFIG_REVISION changes whenever the secret's value does, so a rotated secret rolls out
  # as a new task definition through the circuit breaker instead of waiting for a restart.
  # TRUSTED_PROXIES: only the ALB (inside the VPC) may set X-Forwarded-For (uvicorn and the
  # per-IP rate limit both read it).
  app_environment_base = {
    APP_ENV         = "production"
    LOG_LEVEL       = var.log_level
    PUBLIC_BASE_URL = "https://${var.domain_name}"
    REQUIRED_SCOPES = join(",", var.required_scopes)
    TRUSTED_PROXIES = var.vpc_cidr
    REDIS_CLUSTER   = var.redis_cluster_mode ? "true" : "false"
    CONFIG_REVISION = aws_secretsmanager_secret_version.app.version_id
  }
  # The login facade (cognito.tf): its issuer is PUBLIC_BASE_URL, people sign in at
  # COGNITO_DOMAIN with its own app client.
  interactive_login_environment = var.enable_interactive_login ? {
    OAUTH_PROXY           = "true"
    COGNITO_DOMAIN        = var.cognito_domain
    OAUTH_PROXY_CLIENT_ID = aws_cognito_user_pool_client.interactive_login[0].id
    OAUTH_PROXY_SCOPES    = join(",", local.interactive_login_scopes)
  } : {}
  app_environment = merge(
    var.extra_environment, local.app_environment_base, local.interactive_login_environment
  )

  # Settings injected from Secrets Manager: container variable -> JSON key of the secret.
  app_secret_keys = {
    COGNITO_REGION     = "COGNITO_REGION"
    USER_POOL_ID       = "USER_POOL_ID"
    APP_CLIENT_ID      = "APP_CLIENT_ID"
    REDIS_URL          = "REDIS_URL"
    TOKEN_CACHE_SECRET = "TOKEN_CACHE_SECRET"
  }
  interactive_login_secrets = var.enable_interactive_login ? {
    OAUTH_PROXY_CLIENT_SECRET = "OAUTH_PROXY_CLIENT_SECRET"
    OAUTH_PROXY_SIGNING_KEYS  = "OAUTH_PROXY_SIGNING_KEYS"
  } : {}
  app_secrets = merge(local.app_secret_keys, local.interactive_login_secrets)

  container_definition = {
    name      = local.container_name
    image     = "${aws_ecr_repository.app.repository_url}:${var.image_tag}"
    essential = true
    command   = ["serve", "--host", "0.0.0.0", "--port", "8000"]
    portMappings = [{
      name          = "http"
      containerPort = local.container_port
      protocol      = "tcp"
    }]
    environment = [for name in sort(keys(local.app_environment)) : { name = name, value = local.app_environment[name] }]
    secrets = [
      for name in sort(keys(local.app_secrets)) :
      { name = name, valueFrom = "${aws_secretsmanager_secret.app.arn}:${local.app_secrets[name]}::" }
    ]
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    mountPoints = [{
      sourceVolume  = "tmp"
      containerPath = "/tmp"
      readOnly      = false
    }]
    linuxParameters = {
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }
    ulimits = [{
      name      = "nofile"
      softLimit = 65536
      hardLimit = 65536
    }]
    # Liveness only; the ALB's target-group check on /readyz decides who gets traffic.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 20
    }
    # uvicorn drains for up to 20 s after SIGTERM; ECS waits this long before SIGKILL.
    stopTimeout = 30
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.app.name
        "awslogs-region"        = var.aws_region
        "awslogs-stream-prefix" = "mcp"
        "mode"                  = "non-blocking"
        "max-buffer-size"       = "25m"
      }
    }
  }
}

resource "aws_ecs_cluster" "main" {
  name = "${local.name}-cluster"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "app" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([local.container_definition])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-local scratch space for /tmp (the root filesystem is read-only).
  volume {
    name = "tmp"
  }
}

resource "aws_ecs_service" "app" {
  name                               = local.name
  cluster                            = aws_ecs_cluster.main.id
  task_definition                    = aws_ecs_task_definition.app.arn
  desired_count                      = var.min_capacity
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 30
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = var.enable_execute_command
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  # A deployment whose tasks never become healthy, or that raises the target 5xx alarm, is
  # rolled back to the last deployment that completed.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  alarms {
    enable      = true
    rollback    = true
    alarm_names = [aws_cloudwatch_metric_alarm.target_5xx.alarm_name]
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.app.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  # Application Auto Scaling owns the desired count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.execution]
}
