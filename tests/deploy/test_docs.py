"""The documents name only what exists: deployment docs answer the production checklist and
cover each way to deploy, and docs/configuration.md is the generator's output for every setting."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT, TERRAFORM, Terraform

from mcp_service.settings import Settings

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
