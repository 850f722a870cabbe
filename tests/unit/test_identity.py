"""An identity's weight, what the token cache's byte bound counts, is not less than what it
really holds."""

from __future__ import annotations

import json
import tracemalloc

import jwt
import pytest

from mcp_service.identity import Identity
from tests.support.tokens import TokenFactory


@pytest.mark.parametrize("padding", [0, 4000, 15_000])
def test_the_weight_covers_what_an_identity_holds(padding: int) -> None:
    token = TokenFactory().token(pad="x" * padding)
    claims = jwt.decode(token, options={"verify_signature": False})
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    identities = [
        Identity.from_claims(token[:-1] + chr(65 + i % 26), json.loads(json.dumps(claims)))
        for i in range(40)
    ]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / 40
    assert held <= identities[0].weight <= 2 * held
