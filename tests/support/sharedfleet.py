"""What every Redis topology must give a fleet, checked the same way against each: a
revocation reaching every replica, one budget per caller, one JWKS download."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.faults.replicas import running_replicas
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess, cli
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

# Replicas in the fleets these tests start: two in CI (the time budget); more with
# TEST_FLEET_SIZE=5, say, on a machine with cores to spare.
FLEET_SIZE = int(os.environ.get("TEST_FLEET_SIZE", "2"))

SHARED_SETTINGS = (
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_CLUSTER",
    "REDIS_TLS_CA_FILE",
    "REDIS_TLS_CERT_FILE",
    "REDIS_TLS_KEY_FILE",
    "TOKEN_CACHE_SECRET",
)


def operator_env(env: Mapping[str, str]) -> dict[str, str]:
    """The settings `mcp-service revoke` needs to reach the fleet's Redis."""
    return {name: env[name] for name in SHARED_SETTINGS if name in env}


def seconds_until_revoked_everywhere(
    fleet: Sequence[ServiceProcess], cwd: Path, limit: float = 5.0
) -> float:
    """Revoke a token every replica accepted; how long until every replica refuses it."""
    jti = f"jti-{uuid.uuid4()}"
    token = TokenFactory().token(jti=jti)
    for replica in fleet:
        assert call_add(replica.url, token).status_code == 200
    result = cli("revoke", "--jti", jti, env=operator_env(fleet[0].env), cwd=cwd)
    assert result.returncode == 0, result.stderr
    revoked_at = time.monotonic()
    for replica in fleet:
        while True:
            response = call_add(replica.url, token, timeout=10)
            if response.status_code == 401 and response.json()["reason"] == "revoked":
                break
            if time.monotonic() - revoked_at > limit:
                return limit
            time.sleep(0.02)
    return time.monotonic() - revoked_at


def admitted_across(fleet: Sequence[ServiceProcess], calls: int) -> int:
    """How many of `calls` calls by one new caller, spread over the fleet, were admitted."""
    token = TokenFactory().token(sub=f"budget-{uuid.uuid4().hex[:8]}")
    statuses = [call_add(fleet[n % len(fleet)].url, token).status_code for n in range(calls)]
    assert set(statuses) <= {200, 429}, statuses
    return statuses.count(200)


SECRET = "shared-fleet-test-secret-" + "x" * 16


@dataclass(frozen=True)
class Fleet:
    replicas: list[ServiceProcess]
    jwks: JwksServer  # counts the fleet's JWKS downloads


@contextmanager
def fleet_on(redis_url: str, prefix: str, cwd: Path, **settings: str) -> Iterator[Fleet]:
    """FLEET_SIZE replicas sharing `redis_url` under `prefix` (sealed JWKS, token L2,
    revocations, `10/minute` per caller), and the JWKS endpoint they count fetches on."""
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(
        jwks.url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        TOKEN_CACHE_SECRET=SECRET,
        TOKEN_CACHE_L2="true",
        RATE_LIMIT="10/minute",
        IP_RATE_LIMIT="off",
        **settings,
    )
    with jwks.running(), running_replicas(env, cwd, FLEET_SIZE) as replicas:
        yield Fleet(replicas, jwks)
