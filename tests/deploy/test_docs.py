"""The documents name only what exists: deployment docs answer the production checklist and
cover each way to deploy, and docs/configuration.md is the generator's output for every setting."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from mcp_service.settings import Settings
from tests.deploy.helpers import ROOT, TERRAFORM, Terraform

TERRAFORM_README = (TERRAFORM / "README.md").read_text()
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
JWT_CLAIMS = {"client_id", "token_use"}
CHECKLIST = [
    "Enable JWT signature verification using JWKS",
    "Use AWS Secrets Manager for all credentials",
    "Enable HTTPS/TLS for all endpoints",
    "Implement rate limiting",
    "Enable CloudWatch monitoring and alarms",
    "Use VPC endpoints for AWS service access",
    "Implement least-privilege IAM policies",
    "Enable AWS WAF for API protection",
    "Rotate credentials regularly",
    "Enable CloudTrail for audit logging",
]


def checklist_answers() -> dict[str, str]:
    section = DEPLOYMENT.split("\n## Production checklist\n", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"^\s*\d+\. \*\*(.+?)\.\*\*", section, flags=re.M)[1:]
    return {items[i]: items[i + 1].strip() for i in range(0, len(items), 2)}


def test_the_checklist_is_answered_in_its_own_order() -> None:
    assert list(checklist_answers()) == CHECKLIST


@pytest.mark.parametrize("item", CHECKLIST)
def test_each_checklist_answer_says_how(item: str) -> None:
    answer = checklist_answers()[item]
    assert len(answer.split()) >= 30
    assert "`" in answer, "an answer names the file, variable or setting that does it"


@pytest.mark.parametrize(
    "heading",
    [
        "The whole stack with docker compose",
        "Pushing the image to ECR",
        "terraform apply",
        "Rotating secrets",
        "Scaling",
    ],
)
def test_the_deployment_page_covers(heading: str) -> None:
    assert re.search(rf"^### {re.escape(heading)}$", DEPLOYMENT, re.M)


DOCUMENTS = {"terraform/README.md": TERRAFORM_README, "docs/deployment.md": DEPLOYMENT}


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_variables_named_in_the_documents_exist(tf: Terraform, document: str) -> None:
    text = DOCUMENTS[document]
    named = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`", text))
    named |= set(re.findall(r"-var ([a-z_]+)=", text))
    outputs = set(re.findall(r"terraform output -raw ([a-z_]+)", text))
    files = {p.stem for p in TERRAFORM.glob("*.tf")}
    upstreams = set(
        re.findall(r"upstream (\w+)", (ROOT / "deploy/nginx/upstream.conf").read_text())
    )
    tf_text = "".join(p.read_text() for p in TERRAFORM.glob("*.tf"))
    known = set(tf.variables) | set(tf.outputs) | files | upstreams | JWT_CLAIMS
    unknown = {n for n in named if n not in known and not re.search(rf"\b{n} +=", tf_text)}
    assert not unknown
    assert outputs <= set(tf.outputs), outputs - set(tf.outputs)


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_targeted_resources_in_the_documents_exist(tf: Terraform, document: str) -> None:
    text = DOCUMENTS[document]
    for kind, name in re.findall(r"-target=(\w+)\.(\w+)", text):
        tf.resource(kind, name)


def test_the_compose_secret_in_the_docs_is_the_compose_default() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    (default,) = set(re.findall(r"MCP_OAUTH_CLIENT_SECRET:-([^}]+)\}", compose))
    assert f"OAUTH_CLIENT_SECRET={default} uv run mcp-service call add a=5 b=3" in DEPLOYMENT


def load_generator() -> ModuleType:
    path = ROOT / "docs" / "generate_configuration.py"
    spec = importlib.util.spec_from_file_location("generate_configuration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
FIELDS = Settings.model_fields


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_setting_has_a_description(name: str) -> None:
    description = FIELDS[name].description or ""
    assert len(description.split()) >= 8, f"{name.upper()} needs a description= in settings.py"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_setting_belongs_to_a_group(name: str) -> None:
    assert GENERATOR.group_of(FIELDS[name]), f"{name.upper()} needs a json_schema_extra group"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_setting_has_a_row_in_the_configuration_page(name: str) -> None:
    assert re.search(rf"^\| `{name.upper()}` \|", CONFIGURATION, re.M)


def test_the_configuration_page_is_what_the_generator_writes() -> None:
    assert GENERATOR.render() == CONFIGURATION, (
        "docs/configuration.md is stale: run uv run python docs/generate_configuration.py"
    )


def test_the_generator_check_fails_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(CONFIGURATION.replace("`600/minute`", "`60/minute`"))
    monkeypatch.setattr(GENERATOR, "PAGE", stale)
    monkeypatch.setattr(GENERATOR, "ROOT", tmp_path)
    assert GENERATOR.main(["--check"]) == 1
    assert stale.read_text() != GENERATOR.render(), "--check reports, it does not rewrite"


@pytest.mark.parametrize("name", ["oauth_client_secret", "token_cache_secret"])
def test_a_secret_shows_no_default_value(name: str) -> None:
    (row,) = re.findall(rf"^\| `{name.upper()}` \|.*$", CONFIGURATION, re.M)
    assert row.split(" | ")[1] == "(unset)"


def test_a_derived_default_is_described() -> None:
    (row,) = re.findall(r"^\| `RATE_LIMIT_KEY_PREFIX` \|.*$", CONFIGURATION, re.M)
    assert "(empty)" in row and "`<REDIS_KEY_PREFIX>:v1:rl:`" in row
    assert Settings(redis_key_prefix="blue").rate_limit_prefix == "blue:v1:rl:"


# Every page a reader looks things up in: the README and docs/.
PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text()
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}
SETTINGS = {name.upper() for name in FIELDS}
# Environment variables the pages may name that are not settings, and the file defining each.
OTHER_VARIABLES = {
    **{name: "observability/metrics.py" for name, _, _ in GENERATOR.OTHER_VARIABLES},
    "MCP_OAUTH_CLIENT_ID": "docker-compose.yml",
    "MCP_OAUTH_CLIENT_SECRET": "docker-compose.yml",
    "MCP_TOKEN_CACHE_SECRET": "docker-compose.yml",
    "MCP_LOG_LEVEL": "docker-compose.yml",
    "GRAFANA_ADMIN_PASSWORD": "docker-compose.yml",
    "CONFIG_REVISION": "terraform/main.tf",
    "SOAK_SECONDS": "tests/faults/test_soak.py",
    "TEST_FLEET_SIZE": "tests/support/sharedfleet.py",
    "REDIS_CLUSTER_URL": "bench/ratelimit.py",
    "MCP_REDIS_URL": "docker-compose.yml",
    "MCP_REDIS_CLUSTER": "docker-compose.yml",
    "MCP_TOKEN": "docs/clients.md",  # the shell variable the client examples read
    "BASE_IMAGE": "examples/team-server/Dockerfile",  # the team image's build argument
    "MCP_AUTO_OPEN_ENABLED": "tests/support/inspector.py",  # the MCP Inspector's own variable
}
VARIABLE = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"


def named_variables(text: str) -> set[str]:
    """Names in code spans that look like environment variables, and NAME= assignments."""
    names = set(re.findall(rf"`({VARIABLE})`", text))
    names |= set(re.findall(rf"(?<![\w$]){{?({VARIABLE})=", text))
    return names


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_variable_a_page_names_is_a_setting_or_a_known_variable(page: str) -> None:
    unknown = named_variables(PAGES[page]) - SETTINGS - set(OTHER_VARIABLES)
    assert not unknown, f"{page} names {sorted(unknown)}: not settings"


@pytest.mark.parametrize("name", sorted(OTHER_VARIABLES))
def test_each_known_variable_is_defined_where_it_is_said_to_be(name: str) -> None:
    assert name in (ROOT / OTHER_VARIABLES[name]).read_text()


GENERATED = {"bench/results/"}  # written by the bench scripts, ignored by git
PATH = re.compile(
    r"`((?:mcp_service|cache|observability|bench|deploy|terraform|tests|docs|examples|\.ci)/"
    r"[\w./-]*"
    r"|docker-compose\.yml|Dockerfile|pyproject\.toml)`"
)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_repository_path_a_page_names_exists(page: str) -> None:
    named = set(PATH.findall(PAGES[page])) - GENERATED
    missing = [p for p in sorted(named) if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"{page} names {missing}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_relative_link_of_a_page_leads_to_a_file(page: str) -> None:
    base = (ROOT / page).parent
    links = re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)", PAGES[page])
    missing = [link for link in links if not (base / link).exists()]
    assert not missing, f"{page} links to {missing}"


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_link_to_a_section_finds_its_heading(page: str) -> None:
    base = (ROOT / page).parent
    broken = []
    for target, anchor in re.findall(r"\]\((?!https?:)([^)#\s]*)#([^)\s]+)\)", PAGES[page]):
        text = (base / target).read_text() if target else PAGES[page]
        if anchor not in anchors(text):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{page} links to missing sections {broken}"


def cli_commands() -> set[str]:
    from mcp_service.cli import _parser

    actions = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_mcp_service_command_a_page_names_exists(page: str) -> None:
    named = set(re.findall(r"(?:uv run |`|^)mcp-service ([a-z][a-z-]*)", PAGES[page], re.M))
    assert named <= cli_commands(), f"{page} names {sorted(named - cli_commands())}"


METRICS_SOURCE = (ROOT / "observability" / "metrics.py").read_text()


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_metric_a_page_names_is_exported(page: str) -> None:
    named = set(re.findall(r"\b(mcp_[a-z_]+?)(?:_bucket|_sum|_count)?\b", PAGES[page]))
    named = {n for n in named if n.endswith(("_total", "_seconds", "_info", "_ready", "_up"))}
    named |= set(re.findall(r"`(mcp_[a-z_]+)`", PAGES[page])) - {"mcp_service", "mcp_replicas"}
    named -= {"mcp_token_issuer"}  # an nginx upstream, not a metric
    missing = {n for n in named if f'"{n}"' not in METRICS_SOURCE}
    assert not missing, f"{page} names {sorted(missing)}"


def test_every_alert_the_observability_page_names_is_a_rule() -> None:
    rules = set(re.findall(r"alert: (\w+)", (ROOT / "deploy/prometheus/alerts.yml").read_text()))
    named = set(re.findall(r"`(Mcp[A-Za-z0-9]+)`", PAGES["docs/observability.md"]))
    assert named and named == rules


def test_the_security_page_explains_every_reason_code() -> None:
    from mcp_service.errors import Reason

    table = PAGES["docs/security.md"].split("| reason | status |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert listed == [reason.value for reason in Reason]


# What reference pages never contain: references to files the repository does not have, or to
# how the work on them was organised.
FORBIDDEN = [r"DESIGN\.md", r"\b[Ii]ssue \d", r"\b(this|previous|last) session\b", r"\bthe lead\b"]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_page_holds_no_lab_notes(page: str) -> None:
    found = [p for p in FORBIDDEN if re.search(p, PAGES[page])]
    assert not found, f"{page} matches {found}"


def test_the_readme_stays_short() -> None:
    assert len(PAGES["README.md"].encode()) <= 11 * 1024


def test_the_readme_maps_every_docs_page() -> None:
    pages = {p for p in PAGES if p.startswith("docs/")}
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", PAGES["README.md"]))
    assert pages <= linked, f"not in the README's map: {sorted(pages - linked)}"


@pytest.mark.parametrize(
    "command",
    ["uv run mcp-service serve", "uv run mcp-service call add a=5 b=3", "uv run pytest"],
)
def test_the_quickstart_keeps_its_commands(command: str) -> None:
    quickstart = PAGES["README.md"].split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"^{re.escape(command)}(\s|$)", quickstart, re.M)


# docs/clients.md: its Python examples run against a real server, and the Inspector version it
# pins has --header in CLI mode.
CLIENTS = PAGES["docs/clients.md"]
EXAMPLES = re.findall(r"^```python\n(.*?)^```$", CLIENTS, re.M | re.S)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A local `mcp-service serve` (embedded issuer) and a token from it."""
    from tests.support.processes import ServiceProcess

    with ServiceProcess({"APP_ENV": "local"}, tmp_path_factory.mktemp("clients")) as service:
        response = httpx.post(
            f"{service.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("mcp-local-client", "mcp-local-secret"),
        )
        yield f"{service.url}/mcp", str(response.json()["access_token"])


def test_the_clients_page_has_python_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_each_python_example_of_the_clients_page_calls_add(
    index: int, served: tuple[str, str], tmp_path: Path
) -> None:
    url, token = served
    script = tmp_path / "example.py"
    script.write_text(EXAMPLES[index])
    env = {**os.environ, "MCP_URL": url, "MCP_TOKEN": token}
    result = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\b8\b", result.stdout), result.stdout


def test_the_inspector_version_the_clients_page_pins_has_header_in_cli_mode() -> None:
    versions = set(re.findall(r"@modelcontextprotocol/inspector@(\d+)\.(\d+)\.(\d+)", CLIENTS))
    assert versions
    assert all(tuple(map(int, v)) >= (0, 16, 6) for v in versions)
