"""/metrics: every family with its labels, bounded label values, and what each hook counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import Metrics

pytestmark = pytest.mark.anyio

# family -> the label names each of its samples carries (histograms: plus "le" on buckets)
FAMILIES: dict[str, set[str]] = {
    "mcp_http_request_duration_seconds": {"method", "route", "status"},
    "mcp_tool_call_duration_seconds": {"tool", "outcome"},
    "mcp_auth_outcomes": {"outcome"},
    "mcp_token_cache_lookups": {"tier"},
    "mcp_jwks_fetches": {"result"},
    "mcp_jwks_fetch_duration_seconds": {"result"},
    "mcp_rate_limit_decisions": {"limiter", "decision"},
    "mcp_redis_operation_duration_seconds": {"operation"},
    "mcp_redis_errors": {"operation", "error"},
    "mcp_revocations_in_force": set(),
    "mcp_requests_shed": set(),
    "mcp_cache_integrity_failures": {"cache"},
    "mcp_ready": set(),
    "mcp_dependency_up": {"dependency"},
    "mcp_build_info": {"version", "python", "fastmcp"},
}


def samples(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """family name -> [(sample name, labels, value)]"""
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        found[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return found


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_every_family_is_exported_with_its_labels_after_a_scripted_session(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        token = await svc.token()
        assert (await svc.call_tool(token, "add", a=1, b=2)).status_code == 200
        assert (await svc.call_tool(token, "add", a=1, b=2)).status_code == 200  # l1 hit
        assert (await svc.call_tool(None, "add", a=1, b=2)).status_code == 401
        assert (await svc.client.get("/healthz")).status_code == 200
        assert (await svc.client.get("/readyz")).status_code == 200
        # What Redis, the shared caches and the limits report through their hooks (they need a
        # Redis, and limits, that this in-process service does not have).
        metrics = svc.service.metrics
        metrics.rate_limit_decision("subject", "limited")
        metrics.shared_redis_operation("token_get", "error", 0.0002)
        metrics.revocations_in_force(2)
        metrics.shared_cache_event("token", "forged")
        metrics.request_shed()
        exported = samples(await svc.metrics_text())

    for family, labels in FAMILIES.items():
        assert family in exported, f"{family} missing from /metrics"
        assert exported[family], f"{family} has no samples"
        for name, sample_labels, _ in exported[family]:
            assert set(sample_labels) - {"le"} == labels, (family, name, sample_labels)


async def test_requests_are_counted_by_method_route_template_and_status(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        token = await svc.token()
        for _ in range(3):
            await svc.call_tool(token, "add", a=2, b=2)
        await svc.call_tool("not-a-jwt", "add", a=2, b=2)
        text = await svc.metrics_text()
    count = "mcp_http_request_duration_seconds_count"
    assert value(text, count, method="POST", route="/mcp", status="200") == 3
    assert value(text, count, method="POST", route="/mcp", status="401") == 1


async def test_an_unknown_path_is_recorded_as_route_other_never_as_sent(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        await svc.client.get("/wp-admin/setup.php")
        await svc.client.get("/.env")
        text = await svc.metrics_text()
    assert "wp-admin" not in text
    assert "/.env" not in text
    count = "mcp_http_request_duration_seconds_count"
    assert value(text, count, method="GET", route="other", status="401") == 2


async def test_an_unusual_method_is_recorded_as_other(in_process: Callable[..., Any]) -> None:
    async with in_process() as svc:
        await svc.client.request("PROPFIND", "/healthz")
        text = await svc.metrics_text()
    assert "PROPFIND" not in text
    assert value(text, "mcp_http_request_duration_seconds_count", method="other") == 1


async def test_tool_calls_are_counted_by_tool_and_outcome(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        token = await svc.token()
        assert (await svc.call_tool(token, "add", a=1, b=1)).status_code == 200
        await svc.call_tool(token, "add", a="one", b=1)
        await svc.call_tool(token, "get_user_info")
        text = await svc.metrics_text()
    count = "mcp_tool_call_duration_seconds_count"
    assert value(text, count, tool="add", outcome="ok") == 1
    assert value(text, count, tool="add", outcome="invalid_arguments") == 1
    assert value(text, count, tool="get_user_info", outcome="ok") == 1


async def test_a_tool_name_that_is_not_registered_is_recorded_as_other(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        token = await svc.token()
        await svc.call_tool(token, "drop_tables_x9")
        text = await svc.metrics_text()
    assert "drop_tables_x9" not in text
    count = "mcp_tool_call_duration_seconds_count"
    assert value(text, count, tool="other", outcome="not_found") == 1


async def test_tool_calls_are_labelled_with_the_served_servers_own_tool_names(
    in_process: Callable[..., Any],
) -> None:
    async with in_process(mcp_app="tests.support.own_server:create_server") as svc:
        token = await svc.token()
        assert (await svc.call_tool(token, "shout", text="a")).status_code == 200
        await svc.call_tool(token, "add", a=1, b=1)  # the demo's, not this server's
        text = await svc.metrics_text()
    count = "mcp_tool_call_duration_seconds_count"
    assert value(text, count, tool="shout", outcome="ok") == 1
    assert value(text, count, tool="other", outcome="not_found") == 1
    assert 'tool="add"' not in text


async def test_auth_outcomes_count_ok_and_each_refusal_by_reason_code(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        issuer = svc.service.issuer
        assert issuer is not None
        await svc.call_tool(issuer.issue(), "add", a=1, b=1)
        await svc.call_tool(None, "add", a=1, b=1)
        await svc.call_tool(issuer.issue(exp=1_000_000), "add", a=1, b=1)
        await svc.call_tool(issuer.issue(iss="https://cognito-idp.x/evil"), "add", a=1, b=1)
        text = await svc.metrics_text()
    for outcome in ("ok", "missing_token", "expired", "wrong_issuer"):
        assert value(text, "mcp_auth_outcomes_total", outcome=outcome) == 1, outcome


async def test_token_cache_lookups_count_a_miss_then_l1_hits(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        token = await svc.token()
        for _ in range(3):
            await svc.call_tool(token, "add", a=1, b=1)
        text = await svc.metrics_text()
    assert value(text, "mcp_token_cache_lookups_total", tier="miss") == 1
    assert value(text, "mcp_token_cache_lookups_total", tier="l1") == 2


async def test_jwks_fetches_are_counted_by_result_with_their_latency(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        text = await svc.metrics_text()
    assert value(text, "mcp_jwks_fetches_total", result="ok") >= 1
    assert value(text, "mcp_jwks_fetch_duration_seconds_count", result="ok") >= 1


async def test_a_failed_jwks_fetch_is_counted_as_an_error(
    in_process: Callable[..., Any], unreachable_pool: dict[str, Any]
) -> None:
    async with in_process(**unreachable_pool) as svc:
        await svc.client.get("/readyz")
        text = await svc.metrics_text()
    assert value(text, "mcp_jwks_fetches_total", result="error") >= 1


def test_label_values_outside_the_declared_sets_are_counted_as_other() -> None:
    metrics = Metrics(tools=["add"], auth_outcomes=["ok", "expired"])
    metrics.auth_outcome("eyJhbGciOi.this-is-not-a-reason")
    metrics.rate_limit_decision("subject", "user-1234")
    metrics.shared_redis_operation("FLUSHALL", "weird", 0.001)
    text = metrics.exposition().decode()
    assert "eyJhbGciOi" not in text
    assert "user-1234" not in text
    assert "FLUSHALL" not in text
    assert value(text, "mcp_auth_outcomes_total", outcome="other") == 1
    assert value(text, "mcp_rate_limit_decisions_total", limiter="subject", decision="other") == 1
    assert value(text, "mcp_redis_errors_total", operation="other", error="failed") == 1


def test_series_alerts_divide_by_exist_at_zero_before_any_event() -> None:
    text = Metrics(auth_outcomes=["ok", "expired"]).exposition().decode()
    assert 'mcp_auth_outcomes_total{outcome="expired"} 0.0' in text
    assert 'mcp_token_cache_lookups_total{tier="l2"} 0.0' in text
    assert 'mcp_jwks_fetches_total{result="error"} 0.0' in text


def test_build_info_names_the_running_versions() -> None:
    text = Metrics().exposition().decode()
    assert value(text, "mcp_build_info") == 1
    family = samples(text)["mcp_build_info"]
    assert family[0][1]["version"] not in ("", "unknown")


async def test_metrics_are_served_in_the_format_the_scraper_asks_for(
    in_process: Callable[..., Any],
) -> None:
    openmetrics = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with in_process() as svc:
        plain = await svc.client.get("/metrics")
        negotiated = await svc.client.get("/metrics", headers={"Accept": openmetrics})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert negotiated.headers["content-type"].startswith("application/openmetrics-text")
    assert negotiated.text.rstrip().endswith("# EOF")


def test_the_redis_gate_reports_failures_and_breaker_skips_as_errors() -> None:
    metrics = Metrics()
    metrics.shared_redis_operation("token_get", "ok", 0.0002)
    metrics.shared_redis_operation("token_get", "error", 1.0)
    metrics.shared_redis_operation("token_get", "skipped", 0.0)
    text = metrics.exposition().decode()
    duration = "mcp_redis_operation_duration_seconds_count"
    assert value(text, duration, operation="token_get") == 2  # skipped calls took no time
    errors = "mcp_redis_errors_total"
    assert value(text, errors, operation="token_get", error="failed") == 1
    assert value(text, errors, operation="token_get", error="circuit_open") == 1


def test_a_limiter_redis_error_counts_as_a_redis_error_not_a_decision() -> None:
    metrics = Metrics()
    metrics.rate_limit_decision("subject", "fallback_allowed")
    metrics.rate_limit_decision("subject", "redis_error")
    text = metrics.exposition().decode()
    decisions = "mcp_rate_limit_decisions_total"
    assert value(text, decisions, limiter="subject", decision="fallback_allowed") == 1
    assert value(text, decisions, decision="redis_error") == 0
    assert value(text, "mcp_redis_errors_total", operation="ratelimit", error="failed") == 1


def test_only_forged_shared_entries_count_as_integrity_failures() -> None:
    metrics = Metrics()
    metrics.shared_cache_event("jwks", "forged")
    metrics.shared_cache_event("jwks", "stored")
    text = metrics.exposition().decode()
    assert value(text, "mcp_cache_integrity_failures_total", cache="jwks") == 1


@pytest.mark.redis
async def test_with_redis_the_shared_caches_report_their_operations(
    in_process: Callable[..., Any], redis_url: str, redis_prefix: str
) -> None:
    settings = {
        "redis_url": redis_url,
        "redis_key_prefix": redis_prefix,
        "token_cache_secret": "obs-test-seal-key-0123456789abcdef",
        "token_cache_l2": True,
    }
    async with in_process(**settings) as svc:
        token = await svc.token()
        assert (await svc.call_tool(token, "add", a=1, b=1)).status_code == 200
        svc.service.authenticator.cache.clear()  # the next lookup misses L1 and finds L2
        assert (await svc.call_tool(token, "add", a=1, b=1)).status_code == 200
        await svc.client.get("/readyz")
        text = await svc.metrics_text()
    duration = "mcp_redis_operation_duration_seconds_count"
    for operation in ("token_get", "token_put", "ping"):
        assert value(text, duration, operation=operation) >= 1, operation
    assert value(text, "mcp_token_cache_lookups_total", tier="l2") == 1
    assert value(text, "mcp_token_cache_lookups_total", tier="miss") == 1
    assert value(text, "mcp_redis_errors_total") == 0
    assert value(text, "mcp_dependency_up", dependency="redis") == 1
