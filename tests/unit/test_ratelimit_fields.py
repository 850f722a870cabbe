"""The rate-limit fields: the admitted-under-one-limit twin says exactly what the general
writer says, for any counters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cache.windows import Limit, Usage
from mcp_service.ratefields import Decision, Policy

limits = st.builds(
    Limit, st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=86_400)
)


@st.composite
def admitted(draw: st.DrawFn) -> Decision:
    limit = draw(limits)
    previous = draw(st.integers(min_value=0, max_value=limit.amount))
    current = draw(st.integers(min_value=1, max_value=limit.amount))
    left = draw(st.floats(min_value=1e-3, max_value=float(limit.window)))
    name = draw(st.text(min_size=0, max_size=20))
    usage = Usage(limit, previous, current, left)
    return Decision("allowed", True, Policy(name, (limit,)), [usage], draw(st.integers(1, 5)))


@given(admitted())
def test_the_admitted_fields_equal_the_general_fields(decision: Decision) -> None:
    assert decision.admitted_fields() == decision.fields()
    assert decision.headers() == decision.fields()


def test_a_refusal_under_one_limit_takes_the_general_writer_with_retry_after() -> None:
    limit = Limit(10, 60)
    refused = Decision("limited", False, Policy("default", (limit,)), [Usage(limit, 0, 10, 30.0)])
    fields = dict(refused.headers())
    assert fields[b"retry-after"] == b"31"
    assert fields[b"ratelimit-remaining"] == b"0"
