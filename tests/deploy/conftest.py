"""Fixtures of the deployment checks (their helpers are in tests/deploy/helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.helpers import ROOT, Terraform, load_terraform


@pytest.fixture(scope="session")
def tf() -> Terraform:
    return load_terraform()


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open() as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document
