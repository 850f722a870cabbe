"""terraform/ for the login facade (enable_interactive_login): the Cognito app client it signs
people in with, its signing keys and their rotation, and the edge rules for /oauth/*."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from mcp_service.oauth.metadata import CALLBACK_PATH, REGISTER_PATH
from tests.deploy.helpers import Terraform, blocks


def ref(expression: str) -> str:
    match = re.fullmatch(r"\$\{(.+)\}", expression)
    return match.group(1) if match else expression


def dynamic_rules(tf: Terraform) -> dict[str, dict[str, Any]]:
    """The WAF rules that exist with enable_interactive_login, by name."""
    acl = tf.resource("aws_wafv2_web_acl", "main")
    found: dict[str, dict[str, Any]] = {}
    for dynamic in acl.get("dynamic", []):  # hcl2 leaves dynamic blocks unmarked
        if "rule" in dynamic:
            assert ref(dynamic["rule"]["for_each"]) == "var.enable_interactive_login ? [1] : []"
            for content in blocks(dynamic["rule"]["content"]):
                found[content["name"]] = content
    return found


def client(tf: Terraform) -> dict[str, Any]:
    return tf.resource("aws_cognito_user_pool_client", "interactive_login")


def test_the_app_client_exists_only_with_interactive_login(tf: Terraform) -> None:
    assert ref(client(tf)["count"]) == "local.interactive_login"
    assert ref(tf.locals["interactive_login"]) == "var.enable_interactive_login ? 1 : 0"
    assert tf.variables["enable_interactive_login"]["default"] is False


def test_the_app_client_uses_the_code_grant_with_a_secret_in_the_existing_pool(
    tf: Terraform,
) -> None:
    app = client(tf)
    assert ref(app["user_pool_id"]) == "var.user_pool_id"
    assert app["allowed_oauth_flows"] == ["code"]
    assert app["allowed_oauth_flows_user_pool_client"] is True
    assert app["generate_secret"] is True
    assert app["explicit_auth_flows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert app["prevent_user_existence_errors"] == "ENABLED"


def test_the_callback_is_the_facade_s_on_the_service_s_domain(tf: Terraform) -> None:
    assert client(tf)["callback_urls"] == [f"https://${{var.domain_name}}{CALLBACK_PATH}"]
    assert tf.locals["app_environment_base"]["PUBLIC_BASE_URL"] == "https://${var.domain_name}"


def test_the_app_client_asks_for_openid_and_the_resource_server_s_scopes(tf: Terraform) -> None:
    assert ref(client(tf)["allowed_oauth_scopes"]) == "local.interactive_login_scopes"
    scopes = ref(tf.locals["interactive_login_scopes"])
    assert scopes.startswith('distinct(concat(["openid"]')
    assert "var.interactive_login_scopes" in scopes and "var.required_scopes" in scopes
    environment = tf.locals["interactive_login_environment"]
    assert 'OAUTH_PROXY_SCOPES = join(",", local.interactive_login_scopes)' in environment


def test_the_managed_login_domain_is_a_variable_the_client_needs(tf: Terraform) -> None:
    assert "COGNITO_DOMAIN = var.cognito_domain" in tf.locals["interactive_login_environment"]
    (lifecycle,) = blocks(client(tf)["lifecycle"])
    (precondition,) = blocks(lifecycle["precondition"])
    assert ref(precondition["condition"]) == 'var.cognito_domain != ""'


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("", True),
        ("https://auth.example.com", True),
        ("https://mcp-login.auth.us-east-1.amazoncognito.com", True),
        ("http://auth.example.com", False),
        ("https://auth.example.com/", False),
        ("auth.example.com", False),
    ],
)
def test_the_managed_login_domain_must_be_an_https_origin(
    tf: Terraform, domain: str, valid: bool
) -> None:
    (validation,) = blocks(tf.variables["cognito_domain"]["validation"])
    pattern = re.search(r'regex\("(.+?)", var.cognito_domain\)', validation["condition"])
    assert pattern is not None
    assert (domain == "" or re.search(pattern.group(1), domain) is not None) is valid


def test_the_facade_is_switched_on_with_its_client_in_the_task(tf: Terraform) -> None:
    environment = tf.locals["interactive_login_environment"]
    assert 'OAUTH_PROXY = "true"' in environment
    assert "OAUTH_PROXY_CLIENT_ID = aws_cognito_user_pool_client.interactive_login[0].id" in (
        environment
    )


def test_the_client_secret_and_the_signing_keys_are_in_the_secret_value(tf: Terraform) -> None:
    value = tf.resource("aws_secretsmanager_secret_version", "app")["secret_string"]
    assert (
        "OAUTH_PROXY_CLIENT_SECRET = aws_cognito_user_pool_client.interactive_login[0]"
        ".client_secret" in value
    )
    assert 'OAUTH_PROXY_SIGNING_KEYS = join(",", local.oauth_proxy_signing_keys)' in value


@pytest.mark.parametrize("slot", ["a", "b"])
def test_signing_keys_are_rsa_of_3072_bits_replaced_with_their_slot(
    tf: Terraform, slot: str
) -> None:
    key = tf.resource("tls_private_key", f"oauth_proxy_{slot}")
    assert key["algorithm"] == "RSA"
    assert key["rsa_bits"] >= 2048
    (lifecycle,) = blocks(key["lifecycle"])
    assert lifecycle["replace_triggered_by"] == [f"${{random_id.oauth_proxy_slot_{slot}}}"]


def _slot_generations(tf: Terraform, generation: int) -> tuple[int, int]:
    def evaluate(expression: str) -> int:
        python = ref(expression).replace("var.oauth_proxy_signing_key_generation", str(generation))
        return int(eval(python.replace("floor", "math.floor"), {"math": math}))  # noqa: S307

    slots = [tf.resource("random_id", f"oauth_proxy_slot_{s}")["keepers"] for s in "ab"]
    return evaluate(slots[0]["slot_generation"]), evaluate(slots[1]["slot_generation"])


def _signing_slot(tf: Terraform, generation: int) -> str:
    keys = ref(tf.locals["oauth_proxy_signing_keys"])
    match = re.fullmatch(
        r"var\.enable_interactive_login \? \((.+?) \? (\[.+?\]) : (\[.+?\])\) : \[\]", keys
    )
    assert match is not None
    condition, odd, even = match.groups()
    assert condition == "var.oauth_proxy_signing_key_generation % 2 == 1"
    chosen = odd if generation % 2 == 1 else even
    first = re.match(r"\[tls_private_key\.oauth_proxy_(\w)\[0\]\.private_key_pem_pkcs8", chosen)
    assert first is not None
    return first.group(1)


@pytest.mark.parametrize("generation", range(1, 8))
def test_a_signing_key_generation_bump_replaces_one_key_which_then_signs(
    tf: Terraform, generation: int
) -> None:
    before = _slot_generations(tf, generation)
    after = _slot_generations(tf, generation + 1)
    changed = [slot for slot, old, new in zip("ab", before, after, strict=True) if old != new]
    assert len(changed) == 1
    assert _signing_slot(tf, generation + 1) == changed[0]
    assert _signing_slot(tf, generation) != changed[0]


def test_registration_is_rate_limited_per_address_at_the_edge(tf: Terraform) -> None:
    rule = dynamic_rules(tf)["oauth-registration-rate"]
    (action,) = blocks(rule["action"])
    assert "block" in action
    (statement,) = blocks(rule["statement"])
    (rate,) = blocks(statement["rate_based_statement"])
    assert ref(rate["limit"]) == "var.waf_registration_rate_limit"
    assert rate["aggregate_key_type"] == "IP"
    (scope,) = blocks(rate["scope_down_statement"])
    (match,) = blocks(scope["byte_match_statement"])
    assert match["search_string"] == REGISTER_PATH
    transformations = {t["type"] for t in blocks(match["text_transformation"])}
    assert transformations == {"URL_DECODE", "NORMALIZE_PATH"}


def test_the_rfi_rules_are_relaxed_only_on_the_endpoints_carrying_redirect_uris(
    tf: Terraform,
) -> None:
    rule = dynamic_rules(tf)["aws-common-rfi-outside-oauth"]
    acl = tf.resource("aws_wafv2_web_acl", "main")
    common = next(r for r in blocks(acl["rule"]) if r["name"] == "aws-common")
    assert rule["priority"] > common["priority"]
    text = str(rule["statement"])
    assert "core-rule-set:GenericRFI_QueryArguments" in text
    assert "core-rule-set:GenericRFI_Body" in text
    assert "^/oauth/(authorize|register|token)$" in text
    assert "not_statement" in text
    (group,) = blocks(blocks(common["statement"])[0]["managed_rule_group_statement"])
    (override,) = [d for d in group["dynamic"] if "rule_action_override" in d]
    spec = override["rule_action_override"]
    assert "GenericRFI_QUERYARGUMENTS" in spec["for_each"]
    assert "var.enable_interactive_login" in spec["for_each"]


def test_without_interactive_login_the_alb_answers_404_for_oauth_paths(tf: Terraform) -> None:
    rule = tf.resource("aws_lb_listener_rule", "oauth_closed")
    assert ref(rule["count"]) == "var.enable_interactive_login ? 0 : 1"
    (condition,) = blocks(rule["condition"])
    (paths,) = blocks(condition["path_pattern"])
    assert "/oauth/*" in paths["values"]
    (action,) = blocks(rule["action"])
    assert action["type"] == "fixed-response"
