"""terraform/ is well-formed for the AWS provider 5.x without downloading the provider.

`terraform validate` needs the provider plug-in, which cannot be fetched here; instead every
argument and nested block is checked against provider_schema.json, extracted from the provider's
CDK for Terraform bindings (extract_provider_schema.py says how), and `terraform fmt` runs when
terraform is installed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import TERRAFORM, Terraform, blocks, optional_tool

SCHEMA = json.loads((Path(__file__).parent / "provider_schema.json").read_text())
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "__is_block__"}
Node = dict[str, list[Any]]


def schema_problems(body: dict[str, Any], node: Node, where: str) -> list[str]:
    """Unknown arguments, blocks written as attributes (or the reverse), missing required ones."""
    problems: list[str] = []
    present = set(body)
    for dynamic in blocks(body.get("dynamic")):
        for name, spec in dynamic.items():
            if name == "__is_block__":
                continue
            present.add(name)
            if name not in node or node[name][1] is None:
                problems.append(f"{where}: dynamic {name!r} is not a block of this type")
                continue
            for content in blocks(spec.get("content")):
                problems += schema_problems(content, node[name][1], f"{where}.{name}")
    for name, value in body.items():
        if name in META_ARGUMENTS or name == "dynamic":
            continue
        if name not in node:
            problems.append(f"{where}: unknown argument {name!r}")
            continue
        child = node[name][1]
        nested = blocks(value)
        if child == "any":  # untyped in the bindings (WAF statements): not checked further
            continue
        if child is None and nested:
            problems.append(f"{where}: {name!r} is an attribute, written as a block")
        elif child is not None and not nested and not _is_expression(value):
            problems.append(f"{where}: {name!r} is a block, written as an attribute")
        for item in nested:
            if child is not None:
                problems += schema_problems(item, child, f"{where}.{name}")
    for name, (required, _child) in node.items():
        if required and name not in present:
            problems.append(f"{where}: required argument {name!r} is missing")
    return problems


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${")


def test_every_resource_type_is_known_to_the_provider(tf: Terraform) -> None:
    unknown = sorted(set(tf.resources) - set(SCHEMA["resource"]))
    unknown += sorted(f"data.{kind}" for kind in set(tf.data) - set(SCHEMA["data"]))
    assert not unknown, f"not in the provider schema (regenerate it?): {unknown}"


def test_every_argument_and_block_exists_in_the_provider_schema(tf: Terraform) -> None:
    problems: list[str] = []
    for section, declared in (("resource", tf.resources), ("data", tf.data)):
        for kind, named in declared.items():
            for name, body in named.items():
                node = SCHEMA[section].get(kind)
                if node is not None:
                    problems += schema_problems(body, node, f"{kind}.{name}")
    assert not problems, "\n".join(problems)


def test_the_schema_check_catches_a_misspelt_argument() -> None:
    node = SCHEMA["resource"]["aws_ecs_service"]
    body = {
        "name": "x",
        "deployment_circuit_breaker": [{"enable": True, "rolback": True, "__is_block__": True}],
    }
    problems = schema_problems(body, node, "aws_ecs_service.x")
    assert problems == [
        "aws_ecs_service.x.deployment_circuit_breaker: unknown argument 'rolback'",
        "aws_ecs_service.x.deployment_circuit_breaker: required argument 'rollback' is missing",
    ]


def test_the_schema_check_catches_a_missing_required_block() -> None:
    node = SCHEMA["resource"]["aws_lb_listener"]
    problems = schema_problems({"load_balancer_arn": "${x}"}, node, "aws_lb_listener.x")
    assert "aws_lb_listener.x: required argument 'default_action' is missing" in problems


def test_providers_are_pinned_to_the_major_versions_the_schema_describes(tf: Terraform) -> None:
    (settings,) = tf.settings
    providers = blocks(settings["required_providers"])[0]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", providers["aws"]["version"])
    assert re.fullmatch(r"~> 3\.\d+", providers["random"]["version"])
    assert "hashicorp/aws 5." in " ".join(SCHEMA["source"])


@pytest.mark.parametrize("name", sorted(p.name for p in TERRAFORM.glob("*.tf")))
def test_every_variable_reference_is_declared(tf: Terraform, name: str) -> None:
    text = (TERRAFORM / name).read_text()
    used = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))
    assert used <= set(tf.variables), f"undeclared: {sorted(used - set(tf.variables))}"


def test_every_variable_is_used(tf: Terraform) -> None:
    text = "".join(p.read_text() for p in TERRAFORM.glob("*.tf"))
    unused = [name for name in tf.variables if f"var.{name}" not in text]
    assert not unused, f"declared but never used: {unused}"


def test_every_variable_has_a_type_and_a_description(tf: Terraform) -> None:
    incomplete = [
        name
        for name, body in tf.variables.items()
        if not body.get("description") or "type" not in body
    ]
    assert not incomplete


def test_the_example_tfvars_sets_every_required_variable(tf: Terraform) -> None:
    example = (TERRAFORM / "terraform.tfvars.example").read_text()
    assigned = set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", example, re.M))
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= assigned, f"missing from the example: {sorted(required - assigned)}"
    assert assigned <= set(tf.variables), f"not variables: {sorted(assigned - set(tf.variables))}"


def test_terraform_fmt_leaves_every_file_unchanged() -> None:
    terraform = optional_tool("terraform")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
