"""Helpers of the deployment checks: where things are, tool lookup, parsed Terraform.

Nothing here needs Docker or AWS. A check that needs an external tool (terraform, uvx, nginx)
skips when the tool is missing on a laptop and fails under CI=true, where .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
HCL_OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True)


def which(name: str) -> str | None:
    """shutil.which, also looking in the sbin directories a non-login PATH may lack (nginx)."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def require_tool(name: str) -> str:
    """The tool's path; without it, skip locally and fail in CI."""
    path = which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}, and CI must run this check (.ci/run installs it)")
        pytest.skip(message)
    return path


def optional_tool(name: str) -> str:
    """The tool's path; without it, skip, in CI too (the check runs only where the tool is
    installed, and no registry this project reaches ships it)."""
    path = which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def blocks(value: Any) -> list[dict[str, Any]]:
    """The nested blocks under an argument (hcl2 gives a list of dicts marked __is_block__)."""
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict) and item.get("__is_block__")]
    return []


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    found = blocks(body.get(name))
    assert len(found) == 1, f"expected one {name} block, found {len(found)}"
    return found[0]


@dataclass
class Terraform:
    """Every .tf file of terraform/ merged: resources[type][name] -> body, and so on."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        assert name in self.resources.get(kind, {}), f"no resource {kind}.{name}"
        return self.resources[kind][name]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(kind, {})


def load_terraform(directory: Path = TERRAFORM) -> Terraform:
    config = Terraform()
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            document = hcl2.load(handle, serialization_options=HCL_OPTIONS)
        config.files[path.name] = document
        for section, target in (("resource", config.resources), ("data", config.data)):
            for entry in document.get(section, []):
                for kind, named in entry.items():
                    for name, body in named.items():
                        assert name not in target.get(kind, {}), f"{kind}.{name} declared twice"
                        target.setdefault(kind, {})[name] = body
        for entry in document.get("locals", []):
            config.locals.update({k: v for k, v in entry.items() if k != "__is_block__"})
        for entry in document.get("variable", []):
            config.variables.update(entry)
        for entry in document.get("output", []):
            config.outputs.update(entry)
        config.settings.extend(document.get("terraform", []))
    return config
