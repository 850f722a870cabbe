"""What the components report to: one typed callable per hook, bound from the metrics.

Each component takes its hooks as plain optional callables (`on_fetch`, `on_decision`, ...),
so it knows nothing of Prometheus. This is the one place they are bound: every field is a
method of `observability.metrics.Metrics` (or a `functools.partial` of one fixing its first
argument), checked by the type checker, and all of them are None when METRICS_ENABLED=false,
so no component records anything then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

from observability.metrics import Metrics

Event = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Hooks:
    auth_outcome: Event | None = None  # "ok" or a reason code
    token_cache: Event | None = None  # "l1", "l2", "miss"
    token_event: Event | None = None  # the shared token cache: "forged"
    jwks_event: Event | None = None  # the shared JWKS: "forged"
    jwks_fetch: Callable[[str, float], None] | None = None  # (result, seconds)
    redis_operation: Callable[[str, str, float], None] | None = None  # (op, outcome, seconds)
    subject_decision: Event | None = None  # the per-subject limiter's decisions
    ip_decision: Event | None = None  # the per-IP limiter's decisions
    request_shed: Callable[[], None] | None = None  # the in-flight cap refused one
    revocations_in_force: Callable[[int], None] | None = None
    readiness: Callable[[bool, Mapping[str, bool]], None] | None = None
    upstream_call: Callable[[str, str, float], None] | None = None  # (upstream, outcome, s)
    tools_listed: Callable[[Iterable[str]], None] | None = None  # an upstream's, namespaced

    @classmethod
    def of(cls, metrics: Metrics | None) -> Hooks:
        """The hooks that record into `metrics`; none at all without metrics."""
        if metrics is None:
            return cls()
        return cls(
            auth_outcome=metrics.auth_outcome,
            token_cache=metrics.token_cache_lookup,
            token_event=partial(metrics.shared_cache_event, "token"),
            jwks_event=partial(metrics.shared_cache_event, "jwks"),
            jwks_fetch=metrics.jwks_fetch,
            redis_operation=metrics.shared_redis_operation,
            subject_decision=partial(metrics.rate_limit_decision, "subject"),
            ip_decision=partial(metrics.rate_limit_decision, "ip"),
            request_shed=metrics.request_shed,
            revocations_in_force=metrics.revocations_in_force,
            readiness=metrics.readiness,
            upstream_call=metrics.upstream_call,
            tools_listed=metrics.allow_tools,
        )
