"""The deployment documents answer what issue 6 asks and name only what exists."""

from __future__ import annotations

import re

import pytest

from tests.deploy.helpers import ROOT, TERRAFORM, Terraform

README = (TERRAFORM / "README.md").read_text()
DEPLOYMENT = (
    "## Deployment"
    + (ROOT / "README.md").read_text().split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
)
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
    section = README.split("## Production checklist", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"^\s*\d+\. \*\*(.+?)\.\*\*", section, flags=re.M)[1:]
    return {items[i]: items[i + 1].strip() for i in range(0, len(items), 2)}


def test_the_checklist_is_answered_in_the_seeds_order() -> None:
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
def test_the_deployment_section_covers(heading: str) -> None:
    assert re.search(rf"^### {re.escape(heading)}$", DEPLOYMENT, re.M)


DOCUMENTS = {"terraform/README.md": README, "README.md#deployment": DEPLOYMENT}


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
