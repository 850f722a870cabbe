"""deploy/: the Prometheus config and alert rules pass promtool, each alert fires when it should
and not otherwise, each has a runbook entry, and a real Prometheus scraping a real server
evaluates every dashboard and alert expression without error."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.observability.obs_support import CLIENT_ID, CLIENT_SECRET, require_tool, stop
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS_YML = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "mcp-service.json"
# Grafana's variables, as a scrape every second makes sense of them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$instance": ".*",
}
# The panels that must show data after ordinary traffic (the rest need Redis or rate limits).
MAIN_PANELS = {
    "Ready replicas",
    "MCP requests/s",
    "401 ratio (/mcp)",
    "p99 latency (/mcp)",
    "Requests by route and status",
    "Tool calls by tool and outcome",
    "Latency percentiles (/mcp)",
    "Tool call duration p99 by tool",
    "Auth outcomes by reason",
    "Token cache hit ratio",
    "Token cache lookups by tier",
    "JWKS fetches by result",
    "Replicas scraped and ready",
    "Readiness checks (per replica)",
    "Process CPU (cores)",
    "Versions running",
}


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_YML.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [panel for panel in panels if panel.get("targets")]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


# promtool -------------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=60
    )


def prometheus_configs() -> list[Path]:
    return sorted(
        path
        for path in PROMETHEUS_YML.parent.glob("*.yml")
        if "scrape_configs" in yaml.safe_load(path.read_text())
    )


def test_both_prometheus_configs_are_checked() -> None:
    names = {path.name for path in prometheus_configs()}
    assert "prometheus.yml" in names  # and the compose stack's own, once it is there


@pytest.mark.parametrize("config", prometheus_configs(), ids=lambda path: path.name)
def test_promtool_accepts_each_prometheus_config_and_the_rules_it_loads(
    config: Path, tmp_path: Path
) -> None:
    # Rule files are named relative to the config, or where a container mounts them
    # (/etc/prometheus/); either way they are the files next to the config in this repository.
    loaded = yaml.safe_load(config.read_text())
    rules = [config.parent / Path(rule).name for rule in loaded.get("rule_files", [])]
    assert [path.resolve() for path in rules] == [ALERTS_YML.resolve()]
    loaded["rule_files"] = [str(path) for path in rules]
    copy = tmp_path / config.name
    copy.write_text(yaml.safe_dump(loaded))
    done = promtool("check", "config", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    done = promtool("check", "rules", str(ALERTS_YML))
    assert done.returncode == 0, done.stdout + done.stderr


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f'{name}{{job="mcp-service",instance="a:8000",{labels}}}', "values": values}


def requests(status: str, per_minute: int, route: str = "/mcp") -> dict[str, str]:
    labels = f'method="POST",route="{route}",status="{status}"'
    return series("mcp_http_request_duration_seconds_count", labels, f"0+{per_minute}x30")


def latency(bucket_counts: dict[str, int]) -> list[dict[str, str]]:
    labels = 'method="POST",route="/mcp",status="200"'
    return [
        series("mcp_http_request_duration_seconds_bucket", f'{labels},le="{le}"', f"0+{n}x30")
        for le, n in bucket_counts.items()
    ]


# alert -> [(case, input series, fires)]
ALERT_CASES: dict[str, list[tuple[str, list[dict[str, str]], bool]]] = {
    "McpHighUnauthorizedRatio": [
        ("a third refused", [requests("200", 120), requests("401", 60)], True),
        ("one percent refused", [requests("200", 600), requests("401", 6)], False),
        ("too little traffic to judge", [requests("401", 6)], False),
    ],
    "McpHighRateLimitedRatio": [
        ("a fifth limited", [requests("200", 120), requests("429", 30)], True),
        ("one percent limited", [requests("200", 600), requests("429", 6)], False),
    ],
    "McpHighLatencyP99": [
        ("slow", latency({"0.05": 0, "0.5": 0, "1.0": 60, "+Inf": 60}), True),
        ("fast", latency({"0.05": 60, "0.5": 60, "1.0": 60, "+Inf": 60}), False),
    ],
    "McpHigh5xxRatio": [
        ("a tenth failing", [requests("200", 540), requests("503", 60)], True),
        ("one in a thousand failing", [requests("200", 6000), requests("500", 6)], False),
    ],
    "McpRedisErrors": [
        (
            "errors every 2 s",
            [series("mcp_redis_errors_total", 'operation="get",error="timeout"', "0+30x30")],
            True,
        ),
        (
            "one error a minute",
            [series("mcp_redis_errors_total", 'operation="get",error="timeout"', "0+1x30")],
            False,
        ),
    ],
    "McpRedisUnreachable": [
        ("redis down", [series("mcp_dependency_up", 'dependency="redis"', "0x30")], True),
        ("redis up", [series("mcp_dependency_up", 'dependency="redis"', "1x30")], False),
    ],
    "McpJwksFetchFailures": [
        (
            "failing, none succeeding",
            [series("mcp_jwks_fetches_total", 'result="error"', "0+1x30")],
            True,
        ),
        (
            "one failure, then success",
            [
                series("mcp_jwks_fetches_total", 'result="error"', "0+1x30"),
                series("mcp_jwks_fetches_total", 'result="ok"', "0+1x30"),
            ],
            False,
        ),
        ("no keys at all", [series("mcp_dependency_up", 'dependency="jwks"', "0x30")], True),
        ("keys loaded", [series("mcp_dependency_up", 'dependency="jwks"', "1x30")], False),
    ],
    "McpNoReadyReplicas": [
        ("every replica unready", [series("mcp_ready", "", "0x30")], True),
        ("no replica at all", [series("up", "", "0x30")], True),
        (
            "one of two ready",
            [
                series("mcp_ready", "", "0x30"),
                {"series": 'mcp_ready{job="mcp-service",instance="b:8000"}', "values": "1x30"},
            ],
            False,
        ),
    ],
    "McpReplicaDown": [
        ("not scraped", [series("up", "", "0x30")], True),
        ("scraped", [series("up", "", "1x30")], False),
    ],
}


def test_the_required_alerts_exist() -> None:
    assert set(ALERT_CASES) <= set(alert_rules())
    assert set(alert_rules()) <= set(ALERT_CASES), "every alert needs cases here"


@pytest.mark.parametrize(
    ("alert", "case", "inputs", "fires"),
    [
        (alert, case, inputs, fires)
        for alert, cases in ALERT_CASES.items()
        for case, inputs, fires in cases
    ],
    ids=[f"{alert}: {case}" for alert, cases in ALERT_CASES.items() for case, _, _ in cases],
)
def test_each_alert_expression_fires_only_when_it_should(
    tmp_path: Path, alert: str, case: str, inputs: list[dict[str, str]], fires: bool
) -> None:
    expr = alert_rules()[alert]["expr"]
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": f"count({expr})",
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": 1}] if fires else [],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "case.yml"
    path.write_text(yaml.safe_dump(spec))
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, f"{alert} / {case}:\n{done.stdout}{done.stderr}"


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_every_alert_links_its_own_runbook_entry() -> None:
    anchors = runbook_anchors()
    for name, rule in alert_rules().items():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "deploy/RUNBOOK.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: no heading for #{anchor} in RUNBOOK.md"
        assert rule["labels"]["severity"] in ("warning", "critical"), name


def test_dashboard_uses_the_provisioned_datasource_and_is_provisioned_from_its_folder() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = datasource["datasources"]
    uids = {
        target["datasource"]["uid"] for panel in dashboard_panels() for target in panel["targets"]
    }
    assert uids == {source["uid"]}
    providers = yaml.safe_load((provisioning / "dashboards" / "mcp-service.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboard_shows_every_area_of_the_service() -> None:
    titles = {panel["title"] for panel in dashboard_panels()}
    exprs = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    assert titles >= MAIN_PANELS
    for family in (
        "mcp_http_request_duration_seconds",  # traffic, latency
        "mcp_auth_outcomes_total",  # auth outcomes
        "mcp_token_cache_lookups_total",  # cache hit ratios
        "mcp_rate_limit_decisions_total",  # rate-limit rejections
        "mcp_redis_errors_total",  # Redis health
        "mcp_redis_operation_duration_seconds",
        "mcp_ready",  # replicas
        "up{",
    ):
        assert family in exprs, family


# A real Prometheus ----------------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start Debian's prometheus on a free loopback port, scraping the given port each second."""
    binary = require_tool("prometheus")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target_port: int) -> str:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS_YML)],
            "scrape_configs": [
                {
                    "job_name": "mcp-service",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    yield start
    for process in processes:
        stop(process)


def query(url: str, expr: str) -> list[Any]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def wait_for(url: str, expr: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not query(url, expr):
        assert time.monotonic() < deadline, f"no result for {expr} within {timeout} s"
        time.sleep(0.5)


def evaluated_rules(url: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The rules Prometheus loaded, once each has been evaluated at least once."""
    deadline = time.monotonic() + timeout
    while True:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        if rules and all(rule["health"] != "unknown" for rule in rules.values()):
            return rules
        assert time.monotonic() < deadline, "rules were not evaluated in time"
        time.sleep(0.5)


def traffic(server_url: str, seconds: float) -> None:
    """Valid calls (cache misses then hits), missing and forged tokens, a bad tool call."""
    token = httpx.post(
        f"{server_url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    ).json()["access_token"]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as http:
        while time.monotonic() < deadline:
            auth = {"Authorization": f"Bearer {token}"}
            assert http.post("/mcp", json=body, headers=auth).status_code == 200
            http.post("/mcp", json={**body, "params": {"name": "nope"}}, headers=auth)
            assert http.post("/mcp", json=body).status_code == 401
            forged = {"Authorization": f"Bearer {token[:-4]}AAAA"}
            assert http.post("/mcp", json=body, headers=forged).status_code == 401
            time.sleep(0.05)


def test_a_real_prometheus_evaluates_every_dashboard_and_alert_expression(
    serve: Callable[..., Any], prometheus: Callable[[int], str]
) -> None:
    server = serve()
    port = int(server.url.rsplit(":", 1)[1])
    url = prometheus(port)
    # Rates need scrapes before and during the traffic: wait for the first (target discovery
    # takes a few seconds), send traffic for a few scrapes, and wait for the last of it.
    wait_for(url, 'up{job="mcp-service"} == 1')
    traffic(server.url, seconds=5)
    wait_for(url, 'sum(increase(mcp_http_request_duration_seconds_count{status="401"}[1m])) > 0')

    for panel in dashboard_panels():
        for target in panel["targets"]:
            result = query(url, grafana_to_promql(target["expr"]))
            if panel["title"] in MAIN_PANELS:
                assert result, f"panel {panel['title']!r} shows no data: {target['expr']}"

    for rule in alert_rules().values():
        query(url, rule["expr"])  # evaluates without error

    evaluated = evaluated_rules(url)
    assert set(evaluated) == set(alert_rules())
    for name, rule in evaluated.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))

    instances = httpx.get(
        f"{url}/api/v1/label/instance/values",
        params={"match[]": 'mcp_build_info{job="mcp-service"}'},
        timeout=10,
    ).json()["data"]
    assert instances == [f"127.0.0.1:{port}"]  # the dashboard's replica variable
    # Half the /mcp requests had no or a forged token: the 401 condition holds, and the
    # replica is ready.
    assert query(url, alert_rules()["McpHighUnauthorizedRatio"]["expr"])
    assert not query(url, alert_rules()["McpNoReadyReplicas"]["expr"])
