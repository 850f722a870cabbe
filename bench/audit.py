"""What AUDIT_LOG costs: CPU instructions per `tools/call` with and without it, under callgrind.

    uv run python bench/audit.py [--pair 100:300]

In process, without HTTP: each run is one Python process under `valgrind --tool=callgrind
--instr-atstart=no` that builds the service (the demo server, authentication only, as
bench/variants.py's `auth` variant, plus AUDIT_LOG when `on`), drives its ASGI app through
httpx's in-process client with one verified token, warms it up, switches counting on from
inside (`callgrind_control --instr=on` on its own PID) and makes N calls of `add`. The audit
lines go through the JSON formatter `serve` uses, to /dev/null. For a pair (N1, N2),
(I(N2) - I(N1)) / (N2 - N1) is the cost of one call; the difference between `on` and `off` is
the cost of the audit line. The client's own work is in both figures and cancels out of the
difference. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.instrument import instructions, switch_on  # noqa: E402

WARM_UP = 20
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
}


async def child(audit: bool, calls: int) -> None:
    from mcp_service.app import build_service
    from observability.logs import configure_logging
    from tests.support.asgi import MCP_HEADERS, running
    from tests.support.service import FakeJwks, make_settings
    from tests.support.tokens import TokenFactory

    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 (set up before the loop matters)
        configure_logging("INFO", sink)
        settings = make_settings(
            rate_limit="off",
            ip_rate_limit="off",
            max_in_flight=0,
            metrics_enabled=False,
            audit_log=audit,
            readiness_interval_seconds=3600,
        )
        app = build_service(settings, jwks_fetch=FakeJwks()).app
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TokenFactory().token()}"}
        async with running(app) as client:
            for _ in range(WARM_UP):
                response = await client.post("/mcp", json=CALL, headers=headers)
                assert response.status_code == 200, response.text
            switch_on()  # blocking on purpose: nothing else runs while it switches
            for _ in range(calls):
                await client.post("/mcp", json=CALL, headers=headers)


def count(audit: bool, calls: int) -> int:
    return instructions(__file__, "--child", "on" if audit else "off", str(calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="100:300", help="N1:N2 calls (default 100:300)")
    parser.add_argument("--child", nargs=2, metavar=("AUDIT", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child[0] == "on", int(args.child[1])))
        return
    low, high = (int(n) for n in args.pair.split(":"))
    per_call = {}
    for audit in (False, True):
        first, second = count(audit, low), count(audit, high)
        per_call[audit] = (second - first) / (high - low)
        print(f"AUDIT_LOG={str(audit).lower():5}  {per_call[audit] / 1e6:.3f} M instr/call")
    extra = per_call[True] - per_call[False]
    print(f"the audit line: {extra / 1e3:.0f} k instr/call ({extra / per_call[False]:.1%})")


if __name__ == "__main__":
    main()
