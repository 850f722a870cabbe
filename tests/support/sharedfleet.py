"""What every Redis topology must give a fleet, checked the same way against each: a
revocation reaching every replica, one budget per caller, one JWKS download."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.pool import call_add
from tests.support.processes import ServiceProcess, cli
from tests.support.tokens import TokenFactory

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
