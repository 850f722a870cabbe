"""A setting given as a JSON object: decoded from its text (empty text is `{}`), or taken as
already decoded, with one message naming an example when it is anything else."""

from __future__ import annotations

import json
from typing import Any


def json_object(value: Any, example: str) -> dict[str, Any]:
    """`value` as a JSON object; ValueError("must be a JSON object such as <example>")."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object such as {example}")
    return value
