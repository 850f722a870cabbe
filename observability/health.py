"""Liveness and readiness: `/healthz` says the process answers, `/readyz` whether it can serve.

Readiness is a set of named checks the app registers (this module knows none of them). Each
check returns a `CheckResult`; a check that raises or outlives its time budget counts as down.
A critical check that is down makes the replica unavailable (503): the load balancer should
send its traffic elsewhere. A non-critical one that is down or degraded leaves the replica
serving in a degraded mode (200, `"status": "degraded"`): answering 503 there would pull every
replica out of the load balancer at once when a shared dependency such as Redis fails, turning
a degradation into an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("mcp_service.health")


class State(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class CheckResult:
    state: State
    detail: str = ""

    @classmethod
    def ok(cls, detail: str = "") -> CheckResult:
        return cls(State.OK, detail)

    @classmethod
    def degraded(cls, detail: str) -> CheckResult:
        return cls(State.DEGRADED, detail)

    @classmethod
    def down(cls, detail: str) -> CheckResult:
        return cls(State.DOWN, detail)


Check = Callable[[], Awaitable[CheckResult]]
ReportHook = Callable[[bool, Mapping[str, bool]], None]


@dataclass(frozen=True)
class Report:
    status: str  # "ok", "degraded" or "unavailable"
    checks: Mapping[str, tuple[CheckResult, bool]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status != "unavailable"

    @property
    def http_status(self) -> int:
        return 200 if self.ready else 503

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checks": {
                name: {
                    "status": result.state.value,
                    "critical": critical,
                    **({"detail": result.detail} if result.detail else {}),
                }
                for name, (result, critical) in self.checks.items()
            },
        }


@dataclass(frozen=True)
class _Registered:
    check: Check
    critical: bool


class Readiness:
    """The registered checks, run concurrently, each within `timeout` seconds."""

    def __init__(self, *, timeout: float = 2.0, on_report: ReportHook | None = None) -> None:
        self.timeout = timeout
        self.on_report = on_report
        self._checks: dict[str, _Registered] = {}

    def add(self, name: str, check: Check, *, critical: bool) -> None:
        """`critical`: this check being down means the replica cannot serve at all."""
        self._checks[name] = _Registered(check, critical)

    async def evaluate(self) -> Report:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n].check) for n in names))
        checks = {
            name: (result, self._checks[name].critical)
            for name, result in zip(names, results, strict=True)
        }
        report = Report(_overall(checks.values()), checks)
        if self.on_report is not None:
            self.on_report(
                report.ready, {name: r.state is State.OK for name, (r, _) in checks.items()}
            )
        return report

    async def _run(self, check: Check) -> CheckResult:
        try:
            return await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return CheckResult.down(f"no answer within {self.timeout:g} s")
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return CheckResult.down(f"check failed: {type(exc).__name__}")

    async def endpoint(self, _request: Request) -> Response:
        report = await self.evaluate()
        return JSONResponse(
            report.body(), status_code=report.http_status, headers={"Cache-Control": "no-store"}
        )

    async def watch(self, interval: float) -> None:
        """Re-evaluate every `interval` seconds (so the readiness gauges stay current even when
        no load balancer asks); runs until cancelled."""
        while True:
            started = time.monotonic()
            try:
                await self.evaluate()
            except Exception:  # never let the watcher die quietly
                log.exception("readiness evaluation failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def _overall(checks: Iterable[tuple[CheckResult, bool]]) -> str:
    status = "ok"
    for result, critical in checks:
        if result.state is State.OK:
            continue
        if critical and result.state is State.DOWN:
            return "unavailable"
        status = "degraded"
    return status


async def healthz(_request: Request) -> Response:
    """The process is alive and its event loop answers; nothing else is checked."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})
