"""METRICS_ENABLED=false: no /metrics, nothing recorded, and everything else works as before."""

from __future__ import annotations

import pytest

from mcp_service.settings import SettingsError, load_settings
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, make_service, make_settings
from tests.support.tokens import TokenFactory

pytestmark = TWINS  # every behaviour here, through both twins of each hot path

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


async def test_metrics_are_on_by_default() -> None:
    service = make_service()
    assert service.metrics is not None
    token = TokenFactory().token()
    async with running(service.app) as client:
        assert (await client.post("/mcp", json=ADD, headers=bearer(token))).status_code == 200
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "mcp_tool_call_duration_seconds_count" in response.text


@pytest.mark.parametrize("limits", [False, True], ids=["auth-only", "limits-on"])
async def test_with_metrics_off_metrics_is_not_found_and_calls_still_work(limits: bool) -> None:
    extra = {} if limits else {"rate_limit": "off", "ip_rate_limit": "off", "max_in_flight": 0}
    service = make_service(metrics_enabled=False, **extra)
    assert service.metrics is None
    token = TokenFactory().token()
    async with running(service.app) as client:
        called = await client.post("/mcp", json=ADD, headers=bearer(token))
        again = await client.post("/mcp", json=ADD, headers=bearer(token))  # token cache hit
        refused = await client.post("/mcp", json=ADD, headers=bearer("not.a.token"))
        anonymous = await client.get("/metrics")
        authenticated = await client.get("/metrics", headers=bearer(token))
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    for response in (called, again):
        assert response.status_code == 200, response.text
        assert response.json()["result"]["structuredContent"] == {"result": 8}
        assert response.headers["x-request-id"]  # the request-id layer stays
        assert ("ratelimit" in response.headers) is limits
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # /metrics is no longer a public route: like any unknown path it needs a token, then 404s.
    assert anonymous.status_code == 401
    assert authenticated.status_code == 404
    assert health.status_code == 200
    assert ready.status_code == 200


def test_metrics_enabled_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_ENABLED", "false")
    assert load_settings(_env_file=None).metrics_enabled is False
    monkeypatch.setenv("METRICS_ENABLED", "maybe")
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert [name for name, _ in raised.value.problems] == ["METRICS_ENABLED"]


def test_a_metrics_port_with_metrics_off_is_a_configuration_error() -> None:
    settings = make_settings(metrics_enabled=False, metrics_port=9100)
    assert [name for name, _ in settings.serve_problems()] == ["METRICS_PORT"]
    assert make_settings(metrics_enabled=False).serve_problems() == []
