"""What a rate limit decides for one request, and the response fields that say so.

Every answer under a limit carries the `RateLimit-Policy` and `RateLimit` fields of
draft-ietf-httpapi-ratelimit-headers-11 and the older `RateLimit-Limit/-Remaining/-Reset`
trio; a refusal adds `Retry-After`.
"""

from __future__ import annotations

import math
import re

from cache.windows import Limit, Usage

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class Policy:
    """A named set of limits, with its `RateLimit-Policy` field value built once."""

    __slots__ = ("amounts", "field", "items", "limits", "name")

    def __init__(self, name: str, limits: tuple[Limit, ...]) -> None:
        self.name = _SAFE_NAME.sub("_", name) or "default"
        self.limits = limits
        self.items: tuple[bytes, ...] = (f'"{self.name}"'.encode(),)
        if len(limits) > 1:
            self.items = tuple(f'"{self.name}-{limit.window}s"'.encode() for limit in limits)
        self.amounts = tuple(b"%d" % limit.amount for limit in limits)
        self.field = b", ".join(
            b"%s;q=%d;w=%d" % (item, limit.amount, limit.window)
            for item, limit in zip(self.items, limits, strict=True)
        )

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, {', '.join(map(str, self.limits))})"


class Decision:
    """What one request gets: admitted or not, and the fields that say so."""

    __slots__ = ("allowed", "cost", "outcome", "policy", "retry_after", "usages")

    def __init__(
        self,
        outcome: str,
        allowed: bool,
        policy: Policy | None = None,
        usages: list[Usage] | None = None,
        cost: int = 1,
        retry_after: int = 0,
    ) -> None:
        self.outcome = outcome
        self.allowed = allowed
        self.policy = policy
        self.usages = usages or []
        self.cost = cost
        self.retry_after = retry_after
        if not allowed and policy is not None and not retry_after:
            self.retry_after = max(retry_seconds(u.wait(cost)) for u in self.usages)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """`RateLimit-Policy`, `RateLimit`, the older trio, and `Retry-After` on a refusal."""
        if self.policy is None:
            return [(b"retry-after", b"%d" % self.retry_after)] if self.retry_after else []
        if self.allowed and len(self.usages) == 1:
            return self.admitted_fields()
        return self.fields()

    def admitted_fields(self) -> list[tuple[bytes, bytes]]:
        """The hot twin of `fields()`, for what nearly every answer is: admitted under a
        policy of one limit (no binding limit to find, no refusal to explain);
        docs/performance.md has its cost beside the general one's."""
        policy = self.policy
        assert policy is not None
        usage = self.usages[0]
        remaining, reset = usage.remaining, math.ceil(usage.left)
        return [
            (b"ratelimit-policy", policy.field),
            (b"ratelimit", b"%s;r=%d;t=%d" % (policy.items[0], remaining, reset)),
            (b"ratelimit-limit", policy.amounts[0]),
            (b"ratelimit-remaining", b"%d" % remaining),
            (b"ratelimit-reset", b"%d" % reset),
        ]

    def fields(self) -> list[tuple[bytes, bytes]]:
        """The fields for any decision under a policy: every limit's item in `RateLimit`, the
        binding limit (the one that refuses, else the one with least room) in the trio."""
        policy = self.policy
        assert policy is not None
        items: list[bytes] = []
        binding: tuple[float, int, int, int] | None = None  # (rank, limit, remaining, reset)
        for item, usage in zip(policy.items, self.usages, strict=True):
            remaining = usage.remaining
            wait = 0.0 if self.allowed else usage.wait(self.cost)
            reset = retry_seconds(wait) if wait else math.ceil(usage.left)
            items.append(b"%s;r=%d;t=%d" % (item, remaining, reset))
            rank = -wait if wait else remaining
            if binding is None or rank < binding[0]:
                binding = (rank, usage.limit.amount, remaining, reset)
        assert binding is not None
        headers = [
            (b"ratelimit-policy", policy.field),
            (b"ratelimit", b", ".join(items)),
            (b"ratelimit-limit", b"%d" % binding[1]),
            (b"ratelimit-remaining", b"%d" % binding[2]),
            (b"ratelimit-reset", b"%d" % binding[3]),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % self.retry_after))
        return headers

    def violated(self) -> list[str]:
        if self.policy is None:
            return []
        return [
            item.decode().strip('"')
            for item, usage in zip(self.policy.items, self.usages, strict=True)
            if usage.wait(self.cost) > 0
        ]


def retry_seconds(wait: float) -> int:
    """Whole seconds for `Retry-After`: strictly after the moment the units fit again."""
    return int(wait) + 1
