"""The security and operability properties of terraform/, read from the HCL."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from tests.deploy.helpers import Terraform, block, blocks

SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$|CREDENTIAL|REDIS_URL", re.I)


def ref(expression: str) -> str:
    """'${aws_security_group.alb.id}' -> 'aws_security_group.alb.id'."""
    match = re.fullmatch(r"\$\{(.+)\}", expression)
    return match.group(1) if match else expression


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = blocks(document.get("statement"))
    for dynamic in blocks(document.get("dynamic")):
        if "statement" in dynamic:
            found += blocks(dynamic["statement"]["content"])
    return found


# --- Secrets never travel as plain environment ---------------------------------------------------


def test_container_environment_and_secrets_come_from_their_locals(tf: Terraform) -> None:
    definition = tf.locals["container_definition"]
    assert "local.app_environment[" in definition["environment"]
    assert "aws_secretsmanager_secret.app.arn" in definition["secrets"]
    assert "local.app_secrets[" in definition["secrets"]
    task = tf.resource("aws_ecs_task_definition", "app")
    assert ref(task["container_definitions"]) == "jsonencode([local.container_definition])"


def test_no_secret_like_setting_is_in_the_plain_environment(tf: Terraform) -> None:
    names = list(tf.locals["app_environment_base"])
    assert names, "app_environment_base is empty"
    assert not [name for name in names if SECRETISH.search(name)]
    login = re.findall(r"\b([A-Z_]+) = ", tf.locals["interactive_login_environment"])
    assert login, "interactive_login_environment is empty"
    assert not [name for name in login if SECRETISH.search(name)]
    assert tf.locals["app_environment"] == (
        "${merge(var.extra_environment, local.app_environment_base, "
        "local.interactive_login_environment)}"
    )


def injected(tf: Terraform) -> dict[str, str]:
    """Container variable -> secret JSON key, the interactive login's included."""
    assert tf.locals["app_secrets"] == (
        "${merge(local.app_secret_keys, local.interactive_login_secrets)}"
    )
    login = re.findall(r'\b([A-Z_]+) = "([A-Z_]+)"', tf.locals["interactive_login_secrets"])
    return {**tf.locals["app_secret_keys"], **dict(login)}


@pytest.mark.parametrize(
    "name",
    ["REDIS_URL", "TOKEN_CACHE_SECRET", "OAUTH_PROXY_CLIENT_SECRET", "OAUTH_PROXY_SIGNING_KEYS"],
)
def test_sensitive_settings_are_injected_from_secrets_manager(tf: Terraform, name: str) -> None:
    assert name in injected(tf)
    assert name not in tf.locals["app_environment_base"]
    assert name not in tf.locals["interactive_login_environment"]


def test_every_injected_secret_key_exists_in_the_secret_value(tf: Terraform) -> None:
    version = tf.resource("aws_secretsmanager_secret_version", "app")
    keys = set(re.findall(r"\b([A-Z_]+) = ", version["secret_string"]))
    assert set(injected(tf).values()) <= keys


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("TOKEN_CACHE_SECRET", True),
        ("REDIS_URL", True),
        ("OAUTH_CLIENT_SECRET", True),
        ("db_password", True),
        ("SIGNING_KEY", True),
        ("RATE_LIMIT", False),
        ("TOOL_SCOPES", False),
        ("CORS_ALLOW_ORIGINS", False),
    ],
)
def test_extra_environment_refuses_secret_like_names(
    tf: Terraform, name: str, refused: bool
) -> None:
    (validation,) = blocks(tf.variables["extra_environment"]["validation"])
    pattern = re.search(r'regex\("(.+?)", name\)', validation["condition"])
    assert pattern is not None
    regex = pattern.group(1).replace("\\\\", "\\")
    assert bool(re.search(regex, name)) is refused


def test_redis_url_is_tls_with_the_auth_token_to_the_endpoint(tf: Terraform) -> None:
    url = tf.locals["redis_url"]
    assert '"rediss://:%s@%s:%d/0"' in url
    assert "random_password.redis_auth.result" in url
    assert "local.redis_endpoint" in url
    endpoint = tf.locals["redis_endpoint"]
    assert "primary_endpoint_address" in endpoint
    assert "configuration_endpoint_address" in endpoint


def test_cluster_mode_names_the_configuration_endpoint_and_tells_the_tasks(tf: Terraform) -> None:
    endpoint = tf.locals["redis_endpoint"]
    assert re.search(r"var\.redis_cluster_mode\s*\?\s*\S*configuration_endpoint_address", endpoint)
    environment = tf.locals["app_environment_base"]
    assert "var.redis_cluster_mode" in environment["REDIS_CLUSTER"]
    redis = tf.resource("aws_elasticache_replication_group", "redis")
    assert "var.redis_shards" in redis["num_node_groups"]
    assert "var.redis_replicas_per_shard" in redis["replicas_per_node_group"]
    assert "cluster.on" in redis["parameter_group_name"]
    assert redis["transit_encryption_enabled"] is True
    assert "random_password.redis_auth.result" in redis["auth_token"]


def test_the_secret_is_encrypted_with_the_customer_key(tf: Terraform) -> None:
    secret = tf.resource("aws_secretsmanager_secret", "app")
    assert ref(secret["kms_key_id"]) == "aws_kms_key.main.arn"
    assert tf.resource("aws_kms_key", "main")["enable_key_rotation"] is True


def test_no_literal_credential_is_written_in_any_file(tf: Terraform) -> None:
    text = json.dumps(tf.files)
    literal = re.findall(
        r'"(?:password|auth_token|secret_string|access_key|secret_key)": "(?!\$\{)[^"]+"', text
    )
    assert not literal


# --- Token-cache key rotation --------------------------------------------------------------------


def _slot_generations(tf: Terraform, generation: int) -> tuple[int, int]:
    def evaluate(expression: str) -> int:
        python = ref(expression).replace("var.token_cache_key_generation", str(generation))
        python = python.replace("floor", "math.floor")
        return int(eval(python, {"math": math}))  # noqa: S307 - arithmetic from our own HCL

    a = tf.resource("random_password", "token_cache_a")["keepers"]["slot_generation"]
    b = tf.resource("random_password", "token_cache_b")["keepers"]["slot_generation"]
    return evaluate(a), evaluate(b)


def _current_slot(tf: Terraform, generation: int) -> str:
    keys = ref(tf.locals["token_cache_keys"])
    condition, odd, _even = re.fullmatch(r"\((.+?) \? (\[.+?\]) : (\[.+?\])\)", keys).groups()
    assert condition == "var.token_cache_key_generation % 2 == 1"
    chosen = odd if generation % 2 == 1 else _even
    return re.match(r"\[random_password\.token_cache_(\w)\.result", chosen).group(1)


@pytest.mark.parametrize("generation", range(1, 8))
def test_a_generation_bump_replaces_exactly_one_key_which_becomes_current(
    tf: Terraform, generation: int
) -> None:
    before = _slot_generations(tf, generation)
    after = _slot_generations(tf, generation + 1)
    changed = [slot for slot, old, new in zip("ab", before, after, strict=True) if old != new]
    assert len(changed) == 1
    assert _current_slot(tf, generation + 1) == changed[0]
    # ... and the key that signed before the bump is still in the list, second.
    assert _current_slot(tf, generation) != changed[0]


# --- Network exposure ----------------------------------------------------------------------------


def test_security_groups_declare_no_inline_rules(tf: Terraform) -> None:
    for name, group in tf.of_type("aws_security_group").items():
        assert "ingress" not in group, name
        assert "egress" not in group, name
    assert "aws_security_group_rule" not in tf.resources


def test_only_the_alb_is_open_to_the_internet_and_only_on_443_and_80(tf: Terraform) -> None:
    open_rules = {
        name: rule
        for name, rule in tf.of_type("aws_vpc_security_group_ingress_rule").items()
        if rule.get("cidr_ipv4") == "0.0.0.0/0" or rule.get("cidr_ipv6") == "::/0"
    }
    assert set(open_rules) == {"alb_https", "alb_http"}
    for rule in open_rules.values():
        assert ref(rule["security_group_id"]) == "aws_security_group.alb.id"
        assert rule["from_port"] == rule["to_port"]
        assert rule["from_port"] in (443, 80)


@pytest.mark.parametrize(
    ("group", "allowed_sources"),
    [
        ("tasks", {"aws_security_group.alb.id", "each.value"}),
        ("redis", {"aws_security_group.tasks.id"}),
    ],
)
def test_private_groups_admit_only_their_upstream_group(
    tf: Terraform, group: str, allowed_sources: set[str]
) -> None:
    rules = [
        rule
        for rule in tf.of_type("aws_vpc_security_group_ingress_rule").values()
        if ref(rule["security_group_id"]) == f"aws_security_group.{group}.id"
    ]
    assert rules
    for rule in rules:
        assert "cidr_ipv4" not in rule
        assert "cidr_ipv6" not in rule
        assert ref(rule["referenced_security_group_id"]) in allowed_sources


def test_metrics_scrapers_are_security_groups_not_addresses(tf: Terraform) -> None:
    rule = tf.resource("aws_vpc_security_group_ingress_rule", "tasks_from_scrapers")
    assert ref(rule["for_each"]) == "toset(var.metrics_scraper_security_group_ids)"
    assert tf.variables["metrics_scraper_security_group_ids"]["default"] == []


def test_tasks_run_in_private_subnets_without_public_addresses(tf: Terraform) -> None:
    network = block(tf.resource("aws_ecs_service", "app"), "network_configuration")
    assert ref(network["subnets"]) == "aws_subnet.private[*].id"
    assert network["assign_public_ip"] is False
    assert tf.resource("aws_subnet", "public")["map_public_ip_on_launch"] is False


def test_redis_lives_in_the_private_subnets(tf: Terraform) -> None:
    group = tf.resource("aws_elasticache_subnet_group", "redis")
    assert ref(group["subnet_ids"]) == "aws_subnet.private[*].id"


# --- Load balancer -------------------------------------------------------------------------------


def test_https_listener_uses_the_certificate_variable_and_a_tls12_plus_policy(
    tf: Terraform,
) -> None:
    listener = tf.resource("aws_lb_listener", "https")
    assert listener["port"] == 443
    assert listener["protocol"] == "HTTPS"
    assert ref(listener["certificate_arn"]) == "var.certificate_arn"
    assert ref(listener["ssl_policy"]) == "var.ssl_policy"
    assert tf.variables["ssl_policy"]["default"].startswith("ELBSecurityPolicy-TLS13-1-2")


def test_http_listener_only_redirects_to_https(tf: Terraform) -> None:
    listener = tf.resource("aws_lb_listener", "http")
    assert listener["port"] == 80
    action = block(listener, "default_action")
    assert action["type"] == "redirect"
    redirect = block(action, "redirect")
    assert (redirect["protocol"], redirect["port"], redirect["status_code"]) == (
        "HTTPS",
        "443",
        "HTTP_301",
    )
    rules = tf.of_type("aws_lb_listener_rule").values()
    assert all(ref(rule["listener_arn"]) != "aws_lb_listener.http.arn" for rule in rules)


def test_the_https_listener_refuses_metrics_before_any_other_rule(tf: Terraform) -> None:
    rules = tf.of_type("aws_lb_listener_rule")
    rule = rules["deny_metrics"]
    assert ref(rule["listener_arn"]) == "aws_lb_listener.https.arn"
    assert rule["priority"] == min(r["priority"] for r in rules.values())
    paths = block(block(rule, "condition"), "path_pattern")["values"]
    assert {"/metrics", "/metrics/*"} <= set(paths)
    action = block(rule, "action")
    assert action["type"] == "fixed-response"
    assert block(action, "fixed_response")["status_code"] in ("403", "404")


def test_waf_refuses_percent_encoded_metrics_paths(tf: Terraform) -> None:
    acl = tf.resource("aws_wafv2_web_acl", "main")
    rule = next(r for r in blocks(acl["rule"]) if r["name"] == "deny-metrics-path")
    assert "block" in block(rule, "action")
    match = block(block(rule, "statement"), "byte_match_statement")
    assert match["search_string"] == "/metrics"
    assert "uri_path" in block(match, "field_to_match")
    assert "URL_DECODE" in {t["type"] for t in blocks(match["text_transformation"])}


def test_target_group_checks_readiness_on_readyz(tf: Terraform) -> None:
    group = tf.resource("aws_lb_target_group", "app")
    check = block(group, "health_check")
    assert check["path"] == "/readyz"
    assert check["matcher"] == "200"
    assert group["target_type"] == "ip"


def test_alb_drops_invalid_headers_and_is_internet_facing(tf: Terraform) -> None:
    alb = tf.resource("aws_lb", "main")
    assert alb["drop_invalid_header_fields"] is True
    assert alb["internal"] is False
    assert ref(alb["subnets"]) == "aws_subnet.public[*].id"


# --- WAF -----------------------------------------------------------------------------------------


def test_waf_has_a_blocking_per_ip_rate_based_rule(tf: Terraform) -> None:
    acl = tf.resource("aws_wafv2_web_acl", "main")
    rates = [
        rule
        for rule in blocks(acl["rule"])
        if blocks(block(rule, "statement").get("rate_based_statement"))
    ]
    assert len(rates) == 1
    statement = block(block(rates[0], "statement"), "rate_based_statement")
    assert statement["aggregate_key_type"] == "IP"
    assert ref(statement["limit"]) == "var.waf_rate_limit"
    assert "block" in block(rates[0], "action")


@pytest.mark.parametrize(
    "group",
    [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    ],
)
def test_waf_applies_aws_managed_rule_groups(tf: Terraform, group: str) -> None:
    acl = tf.resource("aws_wafv2_web_acl", "main")
    managed = {}
    for rule in blocks(acl["rule"]):
        for statement in blocks(block(rule, "statement").get("managed_rule_group_statement")):
            managed[statement["name"]] = rule
    assert group in managed
    assert managed[group]["override_action"] == [
        {"none": [{"__is_block__": True}], "__is_block__": True}
    ]


def test_waf_is_attached_to_the_alb_and_logs_without_the_bearer_token(tf: Terraform) -> None:
    association = tf.resource("aws_wafv2_web_acl_association", "alb")
    assert ref(association["resource_arn"]) == "aws_lb.main.arn"
    logging = tf.resource("aws_wafv2_web_acl_logging_configuration", "main")
    redacted = {
        block(field, "single_header")["name"].lower()
        for field in blocks(logging["redacted_fields"])
    }
    assert "authorization" in redacted
    assert tf.resource("aws_cloudwatch_log_group", "waf")["name"].startswith("aws-waf-logs-")


# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        "at_rest_encryption_enabled",
        "transit_encryption_enabled",
        "automatic_failover_enabled",
        "multi_az_enabled",
    ],
)
def test_redis_setting_is_on(tf: Terraform, setting: str) -> None:
    assert tf.resource("aws_elasticache_replication_group", "redis")[setting] is True


def test_redis_requires_the_generated_auth_token(tf: Terraform) -> None:
    redis = tf.resource("aws_elasticache_replication_group", "redis")
    assert ref(redis["auth_token"]) == "random_password.redis_auth.result"
    token = tf.resource("random_password", "redis_auth")
    assert token["length"] >= 32
    assert token["special"] is False


def test_redis_has_a_replica_to_fail_over_to(tf: Terraform) -> None:
    redis = tf.resource("aws_elasticache_replication_group", "redis")
    assert "var.redis_num_cache_clusters" in redis["num_cache_clusters"]
    (validation,) = blocks(tf.variables["redis_num_cache_clusters"]["validation"])
    assert "var.redis_num_cache_clusters >= 2" in validation["condition"]
    (validation,) = blocks(tf.variables["redis_replicas_per_shard"]["validation"])
    assert "var.redis_replicas_per_shard >= 1" in validation["condition"]
    assert redis["automatic_failover_enabled"] is True


# --- IAM -----------------------------------------------------------------------------------------


def test_execution_role_reads_only_its_repository_log_group_and_secret(tf: Terraform) -> None:
    document = tf.data["aws_iam_policy_document"]["execution"]
    allowed = {
        "${aws_ecr_repository.app.arn}",
        "${aws_cloudwatch_log_group.app.arn}:log-stream:*",
        "${aws_secretsmanager_secret.app.arn}",
        "${aws_kms_key.main.arn}",
    }
    seen = set()
    for statement in statements(document):
        for resource in statement["resources"]:
            if resource == "*":
                assert statement["actions"] == ["ecr:GetAuthorizationToken"]
            else:
                assert resource in allowed
                seen.add(resource)
    assert seen == allowed


def test_execution_role_actions_are_named_never_wildcards(tf: Terraform) -> None:
    document = tf.data["aws_iam_policy_document"]["execution"]
    actions = [a for s in statements(document) for a in s["actions"]]
    assert actions
    assert not [a for a in actions if "*" in a]
    assert [a for a in actions if a.startswith("secretsmanager:")] == [
        "secretsmanager:GetSecretValue"
    ]


def test_secret_decryption_is_allowed_only_through_secrets_manager(tf: Terraform) -> None:
    document = tf.data["aws_iam_policy_document"]["execution"]
    (kms,) = [s for s in statements(document) if any(a.startswith("kms:") for a in s["actions"])]
    condition = block(kms, "condition")
    assert condition["variable"] == "kms:ViaService"
    assert condition["values"] == ["secretsmanager.${var.aws_region}.amazonaws.com"]


def test_no_managed_policy_is_attached_to_the_service_roles(tf: Terraform) -> None:
    for kind in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        assert kind not in tf.resources
    for role in ("execution", "task"):
        assert "managed_policy_arns" not in tf.resource("aws_iam_role", role)


def test_task_role_has_permissions_only_when_ecs_exec_is_enabled(tf: Terraform) -> None:
    attached = [
        (name, policy)
        for name, policy in tf.of_type("aws_iam_role_policy").items()
        if ref(policy["role"]) == "aws_iam_role.task.id"
    ]
    assert [name for name, _ in attached] == ["task_exec"]
    assert ref(attached[0][1]["count"]) == "var.enable_execute_command ? 1 : 0"


def test_roles_can_be_assumed_only_by_ecs_tasks_of_this_account(tf: Terraform) -> None:
    (statement,) = statements(tf.data["aws_iam_policy_document"]["ecs_tasks_assume"])
    assert block(statement, "principals")["identifiers"] == ["ecs-tasks.amazonaws.com"]
    variables = {c["variable"] for c in blocks(statement["condition"])}
    assert variables == {"aws:SourceAccount", "aws:SourceArn"}


# --- ECS -----------------------------------------------------------------------------------------


def test_deployments_roll_back_through_the_circuit_breaker_and_the_5xx_alarm(
    tf: Terraform,
) -> None:
    service = tf.resource("aws_ecs_service", "app")
    breaker = block(service, "deployment_circuit_breaker")
    assert breaker["enable"] is True
    assert breaker["rollback"] is True
    alarms = block(service, "alarms")
    assert alarms["enable"] is True
    assert alarms["rollback"] is True
    assert alarms["alarm_names"] == ["${aws_cloudwatch_metric_alarm.target_5xx.alarm_name}"]


def test_task_definition_defaults_to_256_cpu_and_512_mb_on_fargate(tf: Terraform) -> None:
    task = tf.resource("aws_ecs_task_definition", "app")
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc"
    assert (ref(task["cpu"]), ref(task["memory"])) == ("var.task_cpu", "var.task_memory")
    assert tf.variables["task_cpu"]["default"] == 256
    assert tf.variables["task_memory"]["default"] == 512


def test_container_serves_on_all_interfaces_in_production(tf: Terraform) -> None:
    definition = tf.locals["container_definition"]
    assert definition["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert tf.locals["app_environment_base"]["APP_ENV"] == "production"
    assert definition["readonlyRootFilesystem"] is True
    assert definition["linuxParameters"]["capabilities"]["drop"] == ["ALL"]


def test_container_health_check_probes_healthz(tf: Terraform) -> None:
    check = tf.locals["container_definition"]["healthCheck"]
    assert check["command"][0] == "CMD"
    assert "http://127.0.0.1:8000/healthz" in check["command"][-1]


def test_container_logs_to_the_service_log_group(tf: Terraform) -> None:
    logging = tf.locals["container_definition"]["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert ref(logging["options"]["awslogs-group"]) == "aws_cloudwatch_log_group.app.name"


def test_cluster_has_container_insights(tf: Terraform) -> None:
    setting = block(tf.resource("aws_ecs_cluster", "main"), "setting")
    assert (setting["name"], setting["value"]) in {
        ("containerInsights", "enabled"),
        ("containerInsights", "enhanced"),
    }


def test_autoscaling_owns_the_desired_count(tf: Terraform) -> None:
    service = tf.resource("aws_ecs_service", "app")
    assert block(service, "lifecycle")["ignore_changes"] == ["desired_count"]


# --- Autoscaling ---------------------------------------------------------------------------------


def test_scaling_bounds_come_from_variables(tf: Terraform) -> None:
    target = tf.resource("aws_appautoscaling_target", "ecs")
    assert ref(target["min_capacity"]) == "var.min_capacity"
    assert ref(target["max_capacity"]) == "var.max_capacity"
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"


@pytest.mark.parametrize("metric", ["ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"])
def test_target_tracking_follows(tf: Terraform, metric: str) -> None:
    found = []
    for policy in tf.of_type("aws_appautoscaling_policy").values():
        assert policy["policy_type"] == "TargetTrackingScaling"
        config = block(policy, "target_tracking_scaling_policy_configuration")
        spec = block(config, "predefined_metric_specification")
        if spec["predefined_metric_type"] == metric:
            found.append(spec)
    assert len(found) == 1
    if metric == "ALBRequestCountPerTarget":
        assert "aws_lb_target_group.app.arn_suffix" in found[0]["resource_label"]


# --- Images, logs, alarms, audit -----------------------------------------------------------------


def test_ecr_scans_on_push_and_tags_are_immutable(tf: Terraform) -> None:
    repository = tf.resource("aws_ecr_repository", "app")
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert block(repository, "image_scanning_configuration")["scan_on_push"] is True


def test_image_tag_latest_is_refused(tf: Terraform) -> None:
    (validation,) = blocks(tf.variables["image_tag"]["validation"])
    assert 'var.image_tag != "latest"' in validation["condition"]


@pytest.mark.parametrize("name", ["app", "waf", "redis_slow", "flow", "trail"])
def test_log_group_has_retention_and_encryption(tf: Terraform, name: str) -> None:
    group = tf.resource("aws_cloudwatch_log_group", name)
    assert ref(group["retention_in_days"]) == "var.log_retention_days"
    assert ref(group["kms_key_id"]) == "aws_kms_key.main.arn"


def test_every_log_group_is_checked_above(tf: Terraform) -> None:
    assert set(tf.of_type("aws_cloudwatch_log_group")) == {
        "app",
        "waf",
        "redis_slow",
        "flow",
        "trail",
    }


def test_every_alarm_notifies_the_alarm_topic(tf: Terraform) -> None:
    alarms = tf.of_type("aws_cloudwatch_metric_alarm")
    assert {"target_5xx", "elb_5xx", "no_healthy_targets", "latency_p99"} <= set(alarms)
    for alarm in alarms.values():
        assert ref(alarm["alarm_actions"]) == "local.alarm_actions"
    assert tf.locals["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]


def test_vpc_endpoints_are_optional_and_cover_what_a_task_start_needs(tf: Terraform) -> None:
    assert tf.variables["enable_vpc_endpoints"]["type"] == "bool"
    endpoints = tf.locals["interface_endpoints"]
    assert endpoints.startswith("${var.enable_vpc_endpoints ?")
    for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager"):
        assert f'"{service}"' in endpoints
    assert ref(tf.resource("aws_vpc_endpoint", "interface")["for_each"]) == (
        "local.interface_endpoints"
    )
    assert ref(tf.resource("aws_vpc_endpoint", "s3")["count"]).startswith(
        "var.enable_vpc_endpoints"
    )


def test_cloudtrail_is_optional_multi_region_and_validated(tf: Terraform) -> None:
    assert tf.variables["enable_cloudtrail"]["default"] is False
    assert ref(tf.locals["trail_count"]) == "var.enable_cloudtrail ? 1 : 0"
    trail = tf.resource("aws_cloudtrail", "main")
    assert ref(trail["count"]) == "local.trail_count"
    assert trail["is_multi_region_trail"] is True
    assert trail["enable_log_file_validation"] is True
    assert ref(trail["kms_key_id"]) == "aws_kms_key.main.arn"


@pytest.mark.parametrize("bucket", ["alb_logs", "trail"])
def test_log_buckets_block_public_access_and_refuse_plain_http(tf: Terraform, bucket: str) -> None:
    block_public = tf.resource("aws_s3_bucket_public_access_block", bucket)
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block_public[setting] is True
    policy = tf.data["aws_iam_policy_document"][
        "alb_logs" if bucket == "alb_logs" else "trail_bucket"
    ]
    deny = [s for s in statements(policy) if s.get("effect") == "Deny"]
    assert block(deny[0], "condition")["variable"] == "aws:SecureTransport"
