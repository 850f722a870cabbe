"""Per-subject rate limits shared by all replicas, and a cheap per-IP limit before auth.

`SubjectRateLimit` sits inside bearer authentication: every authenticated request is counted
against its caller -- the verified token's `sub`, else its `client_id` -- in Redis, through the
sliding window counter of `cache.windows` (one script, one round trip). The limit is
RATE_LIMIT, or the first RATE_LIMIT_GROUPS tier whose group is in `cognito:groups`; a
`tools/call` of a tool in RATE_LIMIT_TOOL_COSTS spends that many units. Every answer carries
the `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-11 and the
older `RateLimit-Limit/-Remaining/-Reset`; a refusal is 429 with `Retry-After`.

When Redis cannot answer (within RATE_LIMIT_REDIS_TIMEOUT_SECONDS), the limiter stops asking it
for RATE_LIMIT_REDIS_COOLDOWN_SECONDS while a background task reconnects, and meanwhile either
counts in process (fail open, RATE_LIMIT_FALLBACK per replica) or answers 503 (fail closed).
No request ever waits on a connect or longer than the timeout.

`IpRateLimit` runs before authentication, in process only, so a flood of junk tokens is
refused before any of them is parsed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cache.redisline import RedisError
from cache.windows import Limit, MemoryWindows, RedisWindows, Usage
from mcp_service.bodylimit import read_body, replay
from mcp_service.clientip import TrustedProxies, client_address, limit_key
from mcp_service.overload import PROBE_PATHS
from mcp_service.scopes import TOOL_CALLS, called_tools
from observability.asgi import direct

log = logging.getLogger("mcp_service.ratelimit")

DecisionHook = Callable[[str], None]
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
REDUCED_CAPACITY = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
_SAFE_ID = re.compile(r"[A-Za-z0-9._@+=:-]{1,128}")
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
            self.retry_after = max(_seconds(u.wait(cost)) for u in self.usages)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """`RateLimit-Policy`, `RateLimit`, the older trio, and `Retry-After` on a refusal."""
        policy = self.policy
        if policy is None:
            return [(b"retry-after", b"%d" % self.retry_after)] if self.retry_after else []
        if self.allowed and len(self.usages) == 1:  # the hot path: admitted under one limit
            usage = self.usages[0]
            remaining, reset = usage.remaining, math.ceil(usage.left)
            return [
                (b"ratelimit-policy", policy.field),
                (b"ratelimit", b"%s;r=%d;t=%d" % (policy.items[0], remaining, reset)),
                (b"ratelimit-limit", policy.amounts[0]),
                (b"ratelimit-remaining", b"%d" % remaining),
                (b"ratelimit-reset", b"%d" % reset),
            ]
        items: list[bytes] = []
        binding: tuple[float, int, int, int] | None = None  # (rank, limit, remaining, reset)
        for item, usage in zip(policy.items, self.usages, strict=True):
            remaining = usage.remaining
            wait = 0.0 if self.allowed else usage.wait(self.cost)
            reset = _seconds(wait) if wait else math.ceil(usage.left)
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


def _seconds(wait: float) -> int:
    """Whole seconds for `Retry-After`: strictly after the moment the units fit again."""
    return int(wait) + 1


class Policies:
    """Which limits apply to a caller, and what a request costs."""

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


def subject_tag(claims: Mapping[str, Any]) -> str:
    """The caller's counter key: `sub`, else `client_id`, as a Redis Cluster hash tag. Odd
    characters (a `}` would break the tag) are hashed; a token with neither is `{anonymous}`."""
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        return _tag("s", sub)
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and client_id:
        return _tag("c", client_id)
    return "{anonymous}"


@functools.lru_cache(maxsize=65_536)
def _tag(kind: str, value: str) -> str:
    if not _SAFE_ID.fullmatch(value):
        value = "h" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{{{kind}:{value}}}"


class SubjectLimiter:
    """Decides per request, against Redis when it answers, else by RATE_LIMIT_FAILURE_MODE.

    `on_decision` hears one outcome per request -- "allowed", "limited" (shared budget),
    "fallback_allowed", "fallback_limited" (in-process budget, Redis unavailable), or
    "unavailable" (fail closed: 503) -- and "redis_error" for each Redis call or connection
    attempt that failed (while Redis is down: one per cool-off).
    """

    def __init__(
        self,
        policies: Policies,
        redis: RedisWindows | None,
        *,
        fail_open: bool = True,
        cooldown: float = 2.0,
        local: MemoryWindows | None = None,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.policies = policies
        self.redis = redis
        self.fail_open = fail_open
        self.cooldown = cooldown
        self.local = local if local is not None else MemoryWindows()
        self.on_decision = on_decision
        self._reconnecting: asyncio.Task[None] | None = None
        self._degraded = False

    async def start(self) -> None:
        """Connect before serving; if Redis is not there yet, keep trying in the background."""
        if self.redis is None:
            return
        try:
            await self.redis.connect()
        except RedisError as exc:
            self._failed(exc)

    async def close(self) -> None:
        task, self._reconnecting = self._reconnecting, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.redis is not None:
            self.redis.close()

    async def check(self, claims: Mapping[str, Any], cost: int = 1) -> Decision:
        tag = subject_tag(claims)
        policy = self.policies.for_claims(claims)
        redis = self.redis
        if redis is None:
            allowed, usages = self.local.hit(tag, policy.limits, cost)
            return self._decided("allowed" if allowed else "limited", allowed, policy, usages, cost)
        if redis.ready:
            try:
                allowed, usages = await redis.hit(tag, policy.limits, cost)
            except RedisError as exc:
                self._failed(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    log.info("rate limits: Redis answers again; counting fleet-wide")
                outcome = "allowed" if allowed else "limited"
                return self._decided(outcome, allowed, policy, usages, cost)
        else:
            self._failed(None)
        if not self.fail_open:
            retry = _seconds(self.cooldown)
            return self._decided("unavailable", False, retry_after=retry)
        policy = self.policies.fallback or policy
        allowed, usages = self.local.hit(tag, policy.limits, cost)
        outcome = "fallback_allowed" if allowed else "fallback_limited"
        return self._decided(outcome, allowed, policy, usages, cost)

    def _decided(
        self,
        outcome: str,
        allowed: bool,
        policy: Policy | None = None,
        usages: list[Usage] | None = None,
        cost: int = 1,
        retry_after: int = 0,
    ) -> Decision:
        if self.on_decision is not None:
            self.on_decision(outcome)
        return Decision(outcome, allowed, policy, usages, cost, retry_after)

    def _failed(self, error: RedisError | None) -> None:
        """Stop asking Redis; a background task reconnects after the cool-off."""
        if error is not None and self.on_decision is not None:
            self.on_decision("redis_error")
        if not self._degraded:
            self._degraded = True
            mode = "counting per replica" if self.fail_open else "refusing with 503"
            log.warning(
                "rate limits: Redis unavailable (%s); %s until it answers",
                error or "connection lost",
                mode,
            )
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(self.cooldown)
            try:
                await self.redis.connect()
            except RedisError as exc:
                if self.on_decision is not None:
                    self.on_decision("redis_error")
                log.debug("rate limits: Redis still unavailable: %s", exc)
            else:
                return


class SubjectRateLimit:
    """ASGI middleware inside `BearerAuth`: counts each authenticated request against its
    caller and adds the rate-limit fields to the response start, without buffering the body."""

    def __init__(self, app: ASGIApp, limiter: SubjectLimiter) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.limiter = limiter
        self.costs = bool(limiter.policies.tool_costs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if user is None or scope["type"] != "http":  # lifespan, or a public route
            await self.app(scope, receive, send)
            return
        cost = 1
        if self.costs and scope["method"] == "POST":
            policies = self.limiter.policies
            tools = scope.get(TOOL_CALLS)
            if tools is None:  # BearerAuth did not read the body (no per-tool scopes)
                body = await read_body(receive)
                receive = replay(body, receive)
                tools = called_tools(body) if policies.may_cost_more(body) else ()
            cost = policies.cost(tools)
        decision = await self.limiter.check(user.access_token.claims, cost)
        if not decision.allowed:
            await refuse(send, decision)
            return
        fields = decision.headers()

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)


class IpRateLimit:
    """ASGI middleware before authentication: IP_RATE_LIMIT per client address, counted in
    this process (no I/O), so floods are refused before a token is parsed or verified."""

    def __init__(
        self,
        app: ASGIApp,
        limits: tuple[Limit, ...],
        *,
        proxies: TrustedProxies | None = None,
        windows: MemoryWindows | None = None,
        exempt_paths: Iterable[str] = PROBE_PATHS,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.policy = Policy("per-ip", limits)
        self.proxies = proxies or TrustedProxies()
        self.windows = windows if windows is not None else MemoryWindows()
        self.exempt_paths = frozenset(exempt_paths)
        self.on_decision = on_decision

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        key = limit_key(client_address(scope, self.proxies))
        allowed, usages = self.windows.hit(key, self.policy.limits)
        if self.on_decision is not None:
            self.on_decision("allowed" if allowed else "limited")
        if allowed:
            await self.app(scope, receive, send)
        else:
            await refuse(send, Decision("limited", False, self.policy, usages))


async def refuse(send: Send, decision: Decision) -> None:
    """429 with the rate-limit fields, or 503 when the limits cannot be checked (fail closed)."""
    if decision.policy is None:
        status, body = 503, problem(REDUCED_CAPACITY, 503, "rate_limit_unavailable")
        body["detail"] = "Rate limits cannot be checked right now; retry shortly."
    else:
        status, body = 429, problem(QUOTA_EXCEEDED, 429, "rate_limited")
        body["detail"] = f"Rate limit exceeded; retry in {decision.retry_after} s."
        body["violated-policies"] = decision.violated()
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", b"%d" % len(payload)),
        (b"cache-control", b"no-store"),
        *decision.headers(),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def problem(kind: str, status: int, reason: str) -> dict[str, Any]:
    title = "Too many requests" if status == 429 else "Temporarily unavailable"
    return {"type": kind, "title": title, "status": status, "reason": reason}
