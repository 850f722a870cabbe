"""A rolling restart behind nginx loses no request.

nginx runs on loopback with the committed deploy/nginx configuration (addresses swapped for
loopback ports) in front of three replicas, and load runs through it the whole time. Each
replica in turn is drained as an ALB deregistration does it (marked `down` in the upstream,
`nginx -s reload`, and nothing of nginx's left talking to it), then sent SIGTERM and must exit
within SHUTDOWN_GRACE_SECONDS, then started again on its port, waited for (/readyz ok) and put
back. (SIGTERM with requests in flight is tests/integration/test_shutdown.py.)

The load opens a connection per request: a reload makes nginx's old workers close their idle
client connections, a race between nginx and the client that an ALB deregistration does not
have; here it is the replicas that are being restarted, not the load balancer.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.faults.replicas import fleet_env, metric, running_replicas, wait_for_readiness
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.nginx import Nginx, require_nginx
from tests.support.pool import JWKS_PATH
from tests.support.processes import JwksServer, free_port
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

GRACE = 5.0


def test_restarting_the_replicas_one_by_one_behind_nginx_loses_no_request(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    require_nginx()
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = fleet_env(
        jwks.url,
        redis_url,
        redis_prefix,
        RATE_LIMIT="100000/minute",
        IP_RATE_LIMIT="off",  # every request comes from nginx's address
        TRUSTED_PROXIES="127.0.0.1",
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    factory = TokenFactory()
    tokens = [factory.token(sub=f"user-{n % 20}") for n in range(100)]
    with jwks.running(), running_replicas(env, tmp_path, 3) as replicas:
        ports = [replica.port for replica in replicas]
        nginx = Nginx(tmp_path / "nginx", ports, ports[0], free_port())
        with nginx.running():

            def plan(n: int) -> Call:
                return add_call(nginx.url, tokens[n % len(tokens)])

            load = BackgroundLoad(plan, concurrency=8, duration=120, keepalive=False).start()
            windows = []
            try:
                time.sleep(1.0)
                for replica in replicas:
                    assert replica.process is not None
                    drained = time.monotonic()
                    nginx.drain(replica.port)
                    signalled = time.monotonic()
                    replica.process.send_signal(signal.SIGTERM)
                    code = replica.process.wait(GRACE + 5)
                    exited = time.monotonic() - signalled
                    assert code in (0, -signal.SIGTERM), replica.log()[-2000:]
                    assert exited < GRACE, f"exited {exited:.1f} s after SIGTERM"
                    replica.launch().wait_ready()  # same port: nginx's upstream is unchanged
                    wait_for_readiness(replica, "ok", 20)
                    nginx.set_down([])
                    windows.append((drained, time.monotonic()))
                time.sleep(1.0)
            finally:
                report = load.report()

            served = [
                metric(r, "mcp_http_request_duration_seconds_count", route="/mcp") for r in replicas
            ]

    assert not report.unexpected(), report.summary()
    for start, end in windows:  # the load ran through every restart, served by the others
        assert report.sent_between(start, end), report.summary()
    # every replica was put back and took traffic again in its new life
    assert all(count > 0 for count in served), served
