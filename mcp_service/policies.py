"""Which limits apply to a caller, and what a request costs.

The limit is RATE_LIMIT, or the first RATE_LIMIT_GROUPS tier whose group is in the token's
`cognito:groups`; a `tools/call` of a tool in RATE_LIMIT_TOOL_COSTS spends that many units.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cache.windows import Limit
from mcp_service.ratefields import Policy


class Policies:
    def __init__(
        self,
        default: tuple[Limit, ...],
        *,
        groups: Mapping[str, tuple[Limit, ...]] | None = None,
        fallback: tuple[Limit, ...] = (),
        tool_costs: Mapping[str, int] | None = None,
    ) -> None:
        self.default = Policy("default", default)
        self.groups = {group: Policy(group, limits) for group, limits in (groups or {}).items()}
        self.fallback = Policy("fallback", fallback) if fallback else None
        self.tool_costs = {name: cost for name, cost in (tool_costs or {}).items() if cost != 1}
        self._quoted = [json.dumps(n, ensure_ascii=False).encode() for n in self.tool_costs]

    def for_claims(self, claims: Mapping[str, Any]) -> Policy:
        """The first RATE_LIMIT_GROUPS tier the caller's `cognito:groups` names, else the
        default."""
        if self.groups:
            member_of = claims.get("cognito:groups")
            if isinstance(member_of, list):
                for group, policy in self.groups.items():
                    if group in member_of:
                        return policy
        return self.default

    def cost(self, tools: Iterable[str]) -> int:
        """Units a request spends: 1, and for each call of a tool with a cost, that cost in
        place of the 1 (a batch calling two such tools spends both)."""
        return 1 + sum(self.tool_costs.get(name, 1) - 1 for name in tools)

    def may_cost_more(self, body: bytes) -> bool:
        """False when the body cannot call a tool with a cost: no such name appears in it,
        quoted, and nothing is escaped. Most bodies are then never parsed."""
        return b"\\" in body or any(name in body for name in self._quoted)
