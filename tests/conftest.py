"""Shared test set-up: async tests run on asyncio through anyio's pytest plugin (auto mode)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
