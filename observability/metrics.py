"""Prometheus metrics: every family the service exports, with bounded labels only.

A label value is never a token, a subject or a raw path. Each family whose values could come
from outside (a route, a tool name, a reason code) takes them from a set fixed when `Metrics`
is built, and anything else is counted as "other". Children (`.labels(...)`) are resolved once
and kept in dicts, so recording a sample on the request path is a dict lookup and an increment.

Several worker processes (uvicorn `--workers N`) use prometheus-client's multiprocess mode:
when PROMETHEUS_MULTIPROC_DIR is set before this process imported prometheus_client, samples
go to per-process files in that directory and `exposition()` aggregates all of them, so
whichever worker answers a scrape reports the whole replica.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder, start_http_server
from starlette.requests import Request
from starlette.responses import Response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"

# Label values the request path may produce; anything else is counted as "other".
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TOOL_OUTCOMES = ("ok", "error", "invalid_arguments", "not_found", "forbidden")
UPSTREAM_OUTCOMES = ("ok", "error", "timeout")
MAX_TOOLS = 2_000  # tool label values, the served server's and its upstreams' together
TOKEN_CACHE_TIERS = ("l1", "l2", "miss")
JWKS_RESULTS = ("ok", "error", "invalid")
# The vocabularies of the Redis gate (cache/redis.py), the shared caches and the rate limits:
# each component reports through a hook, and these sets bound what the hooks can create.
RATE_LIMITERS = ("ip", "subject")
RATE_LIMIT_DECISIONS = (
    "allowed",
    "limited",
    "fallback_allowed",  # Redis unavailable: counted against this replica's own budget
    "fallback_limited",
    "unavailable",  # Redis unavailable and the limiter fails closed: 503
)
REDIS_OPERATIONS = (
    "jwks_read",
    "jwks_store",
    "jwks_lock",
    "jwks_unlock",
    "jwks_locked",
    "jwks_kidmiss",
    "token_get",
    "token_put",
    "ping",
    "ratelimit",
    "revocations",
)
REDIS_ERRORS = ("failed", "circuit_open")  # circuit_open: skipped while the breaker is open
INTEGRITY_CACHES = ("token", "jwks")

# Seconds. A tool call on this kind of machine takes ~1.5 ms in process and tens of ms under
# load; Redis round trips are ~0.1 ms; JWKS fetches cross the internet.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

C = TypeVar("C")

# The *_created series would double every scrape for a timestamp nobody here queries.
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process records samples to files."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Children(Generic[C]):
    """Pre-bound children of one family, keyed by a tuple of bounded label values."""

    __slots__ = ("_allowed", "_cache", "_family")

    def __init__(self, family: Any, allowed: tuple[frozenset[Any], ...]) -> None:
        self._family = family
        self._allowed = allowed
        self._cache: dict[tuple[object, ...], C] = {}

    def get(self, *values: object) -> C:
        child = self._cache.get(values)
        if child is None:
            bounded = tuple(
                v if v in allowed else OTHER
                for v, allowed in zip(values, self._allowed, strict=True)
            )
            child = self._cache.get(bounded)
            if child is None:
                child = self._family.labels(*bounded)
                self._cache[bounded] = child
            if len(self._cache) < 10_000:  # unknown values all share the "other" child
                self._cache[values] = child
        return child


def _values(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values) | {OTHER}


@dataclass(frozen=True)
class BuildInfo:
    version: str
    python: str
    fastmcp: str

    @classmethod
    def current(cls, distribution: str = "mcp-service") -> BuildInfo:
        return cls(_version(distribution), platform.python_version(), _version("fastmcp"))


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    """The service's metric families and the hooks that record into them.

    `tools` and `auth_outcomes` are the label values the request path may produce; they come
    from the app (its tools, its reason codes), so this module knows nothing of the app. HTTP
    routes arrive already mapped to templates by `ObserveRequests`; methods and statuses are
    bounded here.
    """

    def __init__(
        self,
        *,
        tools: Iterable[str] = (),
        upstreams: Iterable[str] = (),
        auth_outcomes: Iterable[str] = ("ok",),
        build: BuildInfo | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.multiprocess_dir = multiprocess_dir()
        # Families live in their own registry; in multiprocess mode it is never exposed (the
        # files are), in single-process mode it is what /metrics shows.
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
        r = self.registry
        self.http_duration = Histogram(
            "mcp_http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tool_duration = Histogram(
            "mcp_tool_call_duration_seconds",
            "MCP tool calls by tool and outcome, and how long the tool took.",
            ("tool", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "mcp_upstream_call_duration_seconds",
            "Requests to upstream MCP servers (UPSTREAMS) by namespace and outcome (ok, error, "
            "timeout), and how long they took.",
            ("upstream", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_outcomes = Counter(
            "mcp_auth_outcomes_total",
            "Authentication decisions: ok, or the reason code of the refusal.",
            ("outcome",),
            registry=r,
        )
        self.token_cache = Counter(
            "mcp_token_cache_lookups_total",
            "Verified-token lookups by the tier that answered: l1, l2, or miss (verified).",
            ("tier",),
            registry=r,
        )
        self.jwks_fetches = Counter(
            "mcp_jwks_fetches_total",
            "JWKS fetches from the identity provider by result (ok, error, invalid).",
            ("result",),
            registry=r,
        )
        self.jwks_fetch_duration = Histogram(
            "mcp_jwks_fetch_duration_seconds",
            "How long JWKS fetches took, by result.",
            ("result",),
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.rate_limit = Counter(
            "mcp_rate_limit_decisions_total",
            "Rate-limit decisions by limiter (ip, subject) and decision.",
            ("limiter", "decision"),
            registry=r,
        )
        self.redis_duration = Histogram(
            "mcp_redis_operation_duration_seconds",
            "Redis operations by operation, and how long they took (errors included).",
            ("operation",),
            buckets=REDIS_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "mcp_redis_errors_total",
            "Redis operations that failed, by operation and kind of error.",
            ("operation", "error"),
            registry=r,
        )
        self.revocations = Gauge(
            "mcp_revocations_in_force",
            "Revocations (by jti or by subject) this process currently enforces.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.shed = Counter(
            "mcp_requests_shed_total",
            "Requests refused with 503 at once because the replica was at its in-flight cap.",
            registry=r,
        )
        self.integrity_failures = Counter(
            "mcp_cache_integrity_failures_total",
            "Shared-cache entries ignored because their seal did not verify, by cache.",
            ("cache",),
            registry=r,
        )
        self.ready = Gauge(
            "mcp_ready",
            "1 while this replica can serve (its readiness check passes), else 0.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.dependency_up = Gauge(
            "mcp_dependency_up",
            "1 while a readiness check passes, else 0, by check (jwks, redis, ...).",
            ("dependency",),
            registry=r,
            multiprocess_mode="livemin",
        )
        self.build_info = Gauge(
            "mcp_build_info",
            "Always 1; the labels say what is running.",
            ("version", "python", "fastmcp"),
            registry=r,
            multiprocess_mode="max",
        )
        info = build or BuildInfo.current()
        self.build_info.labels(info.version, info.python, info.fastmcp).set(1)

        self._http: _Children[Any] = _Children(
            self.http_duration, (_values(HTTP_METHODS), _Anything(), _StatusCodes())
        )
        self._tool_names = _values(tools)
        self._tools: _Children[Any] = _Children(
            self.tool_duration, (self._tool_names, _values(TOOL_OUTCOMES))
        )
        self._upstreams: _Children[Any] = _Children(
            self.upstream_duration, (_values(upstreams), _values(UPSTREAM_OUTCOMES))
        )
        self._auth: _Children[Any] = _Children(self.auth_outcomes, (_values(auth_outcomes),))
        self._cache: _Children[Any] = _Children(self.token_cache, (_values(TOKEN_CACHE_TIERS),))
        self._jwks: _Children[Any] = _Children(self.jwks_fetches, (_values(JWKS_RESULTS),))
        self._jwks_duration: _Children[Any] = _Children(
            self.jwks_fetch_duration, (_values(JWKS_RESULTS),)
        )
        self._rate: _Children[Any] = _Children(
            self.rate_limit, (_values(RATE_LIMITERS), _values(RATE_LIMIT_DECISIONS))
        )
        self._redis: _Children[Any] = _Children(self.redis_duration, (_values(REDIS_OPERATIONS),))
        self._redis_errors: _Children[Any] = _Children(
            self.redis_errors, (_values(REDIS_OPERATIONS), _values(REDIS_ERRORS))
        )
        self._integrity: _Children[Any] = _Children(
            self.integrity_failures, (_values(INTEGRITY_CACHES),)
        )
        self._touch_known_series(auth_outcomes)

    def _touch_known_series(self, auth_outcomes: Iterable[str]) -> None:
        """Create the series alerts divide by, at zero, so a ratio exists before the first
        refusal and a rate() sees the first increment."""
        for outcome in auth_outcomes:
            self._auth.get(outcome)
        for tier in TOKEN_CACHE_TIERS:
            self._cache.get(tier)
        for result in JWKS_RESULTS:
            self._jwks.get(result)

    # Recording hooks: each is what a component is given (`on_outcome`, `on_fetch`, ...). ----

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http.get(method, route, status).observe(seconds)

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self._tools.get(tool, outcome).observe(seconds)

    def allow_tools(self, names: Iterable[str]) -> None:
        """Add tool label values learnt at run time (an upstream's namespaced tools, when it
        first lists them), up to MAX_TOOLS in all; a name past that stays "other"."""
        room = MAX_TOOLS - len(self._tool_names)
        added = [name for name in names if name not in self._tool_names][: max(room, 0)]
        if added:
            self._tool_names = self._tool_names | frozenset(added)
            self._tools = _Children(self.tool_duration, (self._tool_names, _values(TOOL_OUTCOMES)))

    def upstream_call(self, upstream: str, outcome: str, seconds: float) -> None:
        self._upstreams.get(upstream, outcome).observe(seconds)

    def auth_outcome(self, outcome: str) -> None:
        self._auth.get(outcome).inc()

    def token_cache_lookup(self, tier: str) -> None:
        self._cache.get(tier).inc()

    def jwks_fetch(self, result: str, seconds: float) -> None:
        self._jwks.get(result).inc()
        self._jwks_duration.get(result).observe(seconds)

    def rate_limit_decision(self, limiter: str, decision: str) -> None:
        """A limiter's hook; its "redis_error" reports count as errors of the limiter's Redis."""
        if decision == "redis_error":
            self.redis_error("ratelimit", "failed")
        else:
            self._rate.get(limiter, decision).inc()

    def redis_operation(self, operation: str, seconds: float, error: str | None = None) -> None:
        self._redis.get(operation).observe(seconds)
        if error is not None:
            self.redis_error(operation, error)

    def redis_error(self, operation: str, error: str) -> None:
        self._redis_errors.get(operation, error).inc()

    def shared_redis_operation(self, operation: str, outcome: str, seconds: float) -> None:
        """The Redis gate's hook: outcome "ok", "error", or "skipped" (breaker open)."""
        if outcome == "skipped":
            self.redis_error(operation, "circuit_open")
        else:
            self.redis_operation(operation, seconds, None if outcome == "ok" else "failed")

    def shared_cache_event(self, cache: str, event: str) -> None:
        """The shared caches' hook: "forged" is an entry whose seal did not verify."""
        if event == "forged":
            self.integrity_failure(cache)

    def integrity_failure(self, cache: str) -> None:
        self._integrity.get(cache).inc()

    def revocations_in_force(self, count: int) -> None:
        self.revocations.set(count)

    def request_shed(self) -> None:
        self.shed.inc()

    def readiness(self, ready: bool, checks: Mapping[str, bool]) -> None:
        """Check names come from the app's registrations, never from a request."""
        self.ready.set(1 if ready else 0)
        for name, up in checks.items():
            self.dependency_up.labels(name).set(1 if up else 0)

    # Exposition. -------------------------------------------------------------------------------

    def exposition_registry(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or every worker's files."""
        if self.multiprocess_dir is None:
            return self.registry
        return multiprocess_registry(self.multiprocess_dir)

    def exposition(self) -> bytes:
        return generate_latest(self.exposition_registry())

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics in the format the scraper asks for (Prometheus 2 and 3, OpenMetrics)."""
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(self.exposition_registry()), headers={"Content-Type": content_type})

    def process_exiting(self) -> None:
        """Drop this worker's live gauges from the aggregate (multiprocess mode only)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


class _Anything(frozenset[str]):
    """A label whose values the caller has already bounded."""

    def __contains__(self, value: object) -> bool:
        return True


class _StatusCodes(frozenset[str]):
    """Any three-digit status is a bounded label value (at most 500 of them)."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and 100 <= value <= 599


def multiprocess_registry(path: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(port: int, host: str, registry: CollectorRegistry) -> WSGIServer:
    """Serve /metrics on a port of its own, from a daemon thread of this process."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def clear_multiprocess_dir(path: str) -> None:
    """Files left by an earlier run would be added to this run's counters."""
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))


@contextmanager
def multiprocess_mode() -> Iterator[str]:
    """Put the worker processes started inside this block in multiprocess mode.

    It must be entered before the workers start (they read PROMETHEUS_MULTIPROC_DIR when they
    import prometheus_client). A directory the operator set is emptied of old samples and
    kept; otherwise a fresh temporary one is made and removed on the way out.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        clear_multiprocess_dir(given)
        yield given
        return
    path = tempfile.mkdtemp(prefix="mcp-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "MULTIPROC_ENV",
    "BuildInfo",
    "Metrics",
    "clear_multiprocess_dir",
    "multiprocess_dir",
    "multiprocess_mode",
    "multiprocess_registry",
    "serve_metrics",
]
