"""The two rate-limit layers: per IP before authentication, per subject after it.

`IpRateLimit` runs before authentication, in process only (no I/O), so a flood of junk tokens
is refused before any of them is parsed. `SubjectRateLimit` sits inside bearer authentication
and counts every authenticated request against its caller through the `SubjectLimiter`; it
adds the rate-limit fields to the response start without buffering the response. A refusal is
429 with `Retry-After` and an RFC 9457 problem body, or 503 when the limits cannot be checked
(fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cache.windows import Limit, MemoryWindows
from mcp_service.body import read_body, replay
from mcp_service.limiter import SubjectLimiter
from mcp_service.limitkeys import address_key
from mcp_service.overload import PROBE_PATHS
from mcp_service.ratefields import Decision, Policy
from mcp_service.refusals import QUOTA_EXCEEDED, REDUCED_CAPACITY, problem
from mcp_service.scopes import TOOL_CALLS, called_tools
from observability.asgi import direct

DecisionHook = Callable[[str], None]


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
    this process (no I/O), so floods are refused before a token is parsed or verified. The
    address is `scope["client"]`, which uvicorn's proxy-headers middleware has already set
    from X-Forwarded-For when the peer is a trusted proxy."""

    def __init__(
        self,
        app: ASGIApp,
        limits: tuple[Limit, ...],
        *,
        windows: MemoryWindows | None = None,
        exempt_paths: Iterable[str] = PROBE_PATHS,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.policy = Policy("per-ip", limits)
        self.windows = windows if windows is not None else MemoryWindows()
        self.exempt_paths = frozenset(exempt_paths)
        self.on_decision = on_decision

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = address_key(str(client[0])) if client else ""
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
        refusal = problem(
            503,
            "rate_limit_unavailable",
            "Rate limits cannot be checked right now; retry shortly.",
            kind=REDUCED_CAPACITY,
        )
    else:
        refusal = problem(
            429,
            "rate_limited",
            f"Rate limit exceeded; retry in {decision.retry_after} s.",
            kind=QUOTA_EXCEEDED,
            violated_policies=decision.violated(),
        )
    await refusal.send(send, decision.headers())
