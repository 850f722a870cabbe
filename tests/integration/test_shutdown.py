"""SIGTERM lets every request in flight finish, then the process exits within its grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

from tests.support.pool import ADD_CALL, JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key


def test_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    jwks.delay = 1.5  # every request below waits on this one slow JWKS download
    env = pool_env(jwks.url, SHUTDOWN_GRACE_SECONDS="10")
    token = TokenFactory().token()
    with jwks.running():
        server = ServiceProcess(env, tmp_path)
        jwks.stop()  # no keys at start-up: the first calls trigger the (slow) download
        server.start()
        jwks.start()

        async def calls() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:

                async def one() -> int:
                    response = await client.post(
                        f"{server.url}/mcp", json=ADD_CALL, headers=bearer_headers(token)
                    )
                    return response.status_code

                pending = [asyncio.create_task(one()) for _ in range(20)]
                await asyncio.sleep(0.6)  # all are in flight, waiting on the JWKS
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*pending)

        time.sleep(2.5)  # past the failed start-up download's back-off
        signalled = time.monotonic()
        statuses = asyncio.run(calls())
        assert server.process is not None
        server.process.wait(15)
        exited = time.monotonic() - signalled
    assert statuses == [200] * 20
    # uvicorn shuts down cleanly, then re-raises the signal it caught: -SIGTERM is a clean exit.
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    assert exited < 10 + 2
    try:
        httpx.get(f"{server.url}/healthz", timeout=1)
        raise AssertionError("the server still answers after exiting")
    except httpx.TransportError:
        pass
