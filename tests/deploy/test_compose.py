"""docker-compose.yml: valid against the Compose Specification, and wired as docs/deployment.md
describes.

The stack: Redis, the embedded issuer standing in for Cognito, three replicas configured like a
real pool, nginx in front of them on 127.0.0.1:8000, Prometheus scraping every replica, Grafana.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tests.deploy.helpers import ROOT

SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
REPLICAS = ["replica-1", "replica-2", "replica-3"]
CLUSTER_NODES = ["redis-cluster-1", "redis-cluster-2", "redis-cluster-3"]
CLUSTER_PROFILE = {*CLUSTER_NODES, "redis-cluster-init"}
SERVICES = {"redis", "issuer", *REPLICAS, "nginx", "prometheus", "grafana", *CLUSTER_PROFILE}
OBSERVABILITY_FILES = ("deploy/prometheus/alerts.yml", "deploy/grafana")
CLI = "import sys; from mcp_service.cli import main; sys.exit(main())"


def interpolate(value: str, environ: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default} and $$, with the defaults a fresh checkout gets."""
    environ = environ or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3) or ""
        return environ.get(name) or default

    return re.sub(r"\$\$|\$\{(\w+)(:-([^}]*))?\}", replace, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in service["environment"].items()}


def address(service: dict[str, Any]) -> str:
    return str(service["networks"]["mcp"]["ipv4_address"])


def upstream_servers(name: str) -> list[str]:
    text = (ROOT / "deploy/nginx/upstream.conf").read_text()
    body = re.search(rf"upstream {name} \{{(.*?)\}}", text, re.S)
    assert body is not None, f"no upstream {name}"
    return re.findall(r"^\s*server (\S+?)(?:;|\s)", body.group(1), re.M)


# --- The schema ----------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(compose)


def test_the_schema_check_refuses_an_unknown_service_key(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


# --- The services and their exposure -------------------------------------------------------------


def test_the_stack_has_exactly_the_expected_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    published = {
        name: port for name, svc in compose["services"].items() for port in svc.get("ports", [])
    }
    assert set(published) == {"nginx", "prometheus", "grafana"}
    for name, port in published.items():
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_nginx_serves_the_stack_on_port_8000(compose: dict[str, Any]) -> None:
    assert compose["services"]["nginx"]["ports"] == ["127.0.0.1:8000:8000"]
    assert (ROOT / "deploy/nginx/listen.conf").read_text().count("listen 8000;") == 1


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_container_runs_read_only_without_capabilities(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


# --- The replicas, the issuer and their agreement ------------------------------------------------


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_is_configured_like_a_pool_the_issuer_signs_for(
    compose: dict[str, Any], name: str
) -> None:
    replica = environment(compose["services"][name])
    issuer = environment(compose["services"]["issuer"])
    assert replica["USER_POOL_ID"] == f"{issuer['COGNITO_REGION']}_mcpLocal01"
    assert replica["COGNITO_REGION"] == issuer["COGNITO_REGION"]
    assert replica["APP_CLIENT_ID"] == issuer["OAUTH_CLIENT_ID"]
    jwks = urlsplit(replica["COGNITO_JWKS_URL"])
    assert (jwks.hostname, jwks.port, jwks.path) == ("issuer", 8000, "/.well-known/jwks.json")
    assert urlsplit(replica["REDIS_URL"]).hostname == "redis"
    assert replica["TOKEN_CACHE_SECRET"]


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_trusts_forwarded_headers_from_nginx_only(
    compose: dict[str, Any], name: str
) -> None:
    replica = environment(compose["services"][name])
    assert replica["TRUSTED_PROXIES"] == address(compose["services"]["nginx"])


def test_the_issuer_may_listen_off_loopback_with_a_secret_of_its_own(
    compose: dict[str, Any],
) -> None:
    issuer = environment(compose["services"]["issuer"])
    assert issuer["APP_ENV"] == "local"
    assert issuer["LOCAL_ISSUER_ALLOW_REMOTE"] == "true"
    assert len(issuer["OAUTH_CLIENT_SECRET"]) >= 16
    assert issuer["OAUTH_CLIENT_SECRET"] != "mcp-local-secret"


def test_the_issuer_key_lives_on_a_volume(compose: dict[str, Any]) -> None:
    issuer = compose["services"]["issuer"]
    key_dir = str(Path(environment(issuer)["LOCAL_ISSUER_KEY_FILE"]).parent)
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in issuer["volumes"]}
    assert mounts[key_dir] in compose["volumes"]


def test_host_clients_authenticate_with_the_cli_defaults(compose: dict[str, Any]) -> None:
    # `OAUTH_CLIENT_SECRET=... mcp-service call` on the host uses the local default client id.
    issuer = environment(compose["services"]["issuer"])
    assert issuer["OAUTH_CLIENT_ID"] == "mcp-local-client"


def _check_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-c", CLI, "check-config", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT)},
        check=False,
    )


@pytest.mark.parametrize("name", ["issuer", *REPLICAS])
def test_the_service_accepts_the_compose_settings_for_a_non_loopback_bind(
    compose: dict[str, Any], name: str, tmp_path: Path
) -> None:
    env = environment(compose["services"][name])
    env.pop("LOCAL_ISSUER_KEY_FILE", None)
    result = _check_config(env, tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["embedded_issuer"] is (name == "issuer")


def test_check_config_refuses_the_issuer_without_its_own_secret(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    env = environment(compose["services"]["issuer"])
    env.pop("OAUTH_CLIENT_SECRET")
    result = _check_config(env, tmp_path)
    assert result.returncode == 2
    assert "OAUTH_CLIENT_SECRET" in result.stderr


# --- nginx wiring --------------------------------------------------------------------------------


def test_nginx_upstreams_are_the_replicas_fixed_addresses(compose: dict[str, Any]) -> None:
    expected = sorted(f"{address(compose['services'][name])}:8000" for name in REPLICAS)
    assert sorted(upstream_servers("mcp_replicas")) == expected


def test_nginx_sends_token_requests_to_the_issuer(compose: dict[str, Any]) -> None:
    assert upstream_servers("mcp_token_issuer") == [
        f"{address(compose['services']['issuer'])}:8000"
    ]


def test_fixed_addresses_are_unique_and_outside_the_dynamic_range(
    compose: dict[str, Any],
) -> None:
    import ipaddress

    (config,) = compose["networks"]["mcp"]["ipam"]["config"]
    subnet = ipaddress.ip_network(config["subnet"])
    dynamic = ipaddress.ip_network(config["ip_range"])
    fixed = [
        ipaddress.ip_address(svc["networks"]["mcp"]["ipv4_address"])
        for svc in compose["services"].values()
        if "ipv4_address" in (svc["networks"]["mcp"] or {})
    ]
    assert len(fixed) == len(set(fixed)) == 8
    assert all(ip in subnet and ip not in dynamic for ip in fixed)


def test_nginx_mounts_its_config_and_both_includes(compose: dict[str, Any]) -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["nginx"]["volumes"]}
    assert mounts == {
        "/etc/nginx/nginx.conf": "./deploy/nginx/nginx.conf",
        "/etc/nginx/upstream.conf": "./deploy/nginx/upstream.conf",
        "/etc/nginx/listen.conf": "./deploy/nginx/listen.conf",
    }


# --- Start-up order ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REPLICAS)
def test_replicas_start_after_redis_and_the_issuer_are_healthy(
    compose: dict[str, Any], name: str
) -> None:
    depends = compose["services"][name]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["issuer"]["condition"] == "service_healthy"


def test_nginx_starts_after_every_replica_is_healthy(compose: dict[str, Any]) -> None:
    depends = compose["services"]["nginx"]["depends_on"]
    for name in REPLICAS:
        assert depends[name]["condition"] == "service_healthy"


def test_redis_has_a_health_check(compose: dict[str, Any]) -> None:
    assert compose["services"]["redis"]["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


# --- The optional cluster profile ----------------------------------------------------------------


def test_the_cluster_services_start_only_with_the_cluster_profile(compose: dict[str, Any]) -> None:
    profiled = {name for name, svc in compose["services"].items() if svc.get("profiles")}
    assert profiled == CLUSTER_PROFILE
    assert all(compose["services"][name]["profiles"] == ["cluster"] for name in profiled)


@pytest.mark.parametrize("name", CLUSTER_NODES)
def test_each_cluster_node_runs_in_cluster_mode_without_persistence(
    compose: dict[str, Any], name: str
) -> None:
    command = compose["services"][name]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--cluster-enabled"] == "yes"
    assert options["--save"] == "" and options["--appendonly"] == "no"
    assert compose["services"][name]["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_the_cluster_is_created_from_the_three_nodes_once_they_are_healthy(
    compose: dict[str, Any],
) -> None:
    init = compose["services"]["redis-cluster-init"]
    script = init["command"][-1]
    nodes = [f"{address(compose['services'][name])}:6379" for name in CLUSTER_NODES]
    assert f"--cluster create {' '.join(nodes)} --cluster-replicas 0 --cluster-yes" in script
    assert all(init["depends_on"][n]["condition"] == "service_healthy" for n in CLUSTER_NODES)
    assert init["restart"] == "no"


@pytest.mark.parametrize("name", REPLICAS)
def test_replicas_use_the_cluster_when_told_to(compose: dict[str, Any], name: str) -> None:
    settings = compose["services"][name]["environment"]
    assert interpolate(settings["REDIS_CLUSTER"]) == "false"
    told = {"MCP_REDIS_URL": "redis://172.28.80.31:6379/0", "MCP_REDIS_CLUSTER": "true"}
    assert interpolate(settings["REDIS_CLUSTER"], told) == "true"
    assert urlsplit(interpolate(settings["REDIS_URL"], told)).hostname == address(
        compose["services"]["redis-cluster-1"]
    )


# --- Prometheus and Grafana ----------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_directly(compose: dict[str, Any]) -> None:
    mounts = {
        v.split(":")[1]: v.split(":")[0] for v in compose["services"]["prometheus"]["volumes"]
    }
    config_path = ROOT / mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {f"{name}:8000" for name in REPLICAS} <= targets
    assert "nginx:8000" not in targets


def test_prometheus_loads_the_shared_alert_rules(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.compose.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]


def test_grafana_gets_the_provisioning_and_the_dashboard(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes


def test_every_bind_mounted_file_exists(compose: dict[str, Any]) -> None:
    sources = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    observability_merged = (ROOT / "deploy/grafana").exists()
    missing = []
    for source in sources:
        path = ROOT / source
        if not observability_merged and source.removeprefix("./").startswith(OBSERVABILITY_FILES):
            continue  # the observability files are checked only where they exist
        if not path.exists():
            missing.append(source)
    assert not missing
