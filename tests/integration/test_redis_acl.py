"""An ACL user limited to the deployment's prefix runs every shared feature. The module starts a
`redis-server` whose default user is off and whose service user may touch only `tenant:*` keys
and channels (`~tenant:* &tenant:*`; Redis 7 denies channels unless named) and no dangerous
command, and runs a fleet of two replicas as that user with REDIS_KEY_PREFIX=tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.pool import call_add
from tests.support.processes import RedisServer, cli
from tests.support.sharedfleet import (
    Fleet,
    admitted_across,
    fleet_on,
    operator_env,
    seconds_until_revoked_everywhere,
)
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.redis

ACL = (
    "user default off",
    "user admin on >admin-password ~* &* +@all",
    "user svc on >svc-password ~tenant:* &tenant:* +@all -@dangerous",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("acl-redis"), config=ACL) as redis_server:
        yield redis_server


@pytest.fixture(scope="module")
def fleet(server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    cwd = tmp_path_factory.mktemp("acl-fleet")
    with fleet_on(f"redis://svc:svc-password@127.0.0.1:{server.port}/0", "tenant", cwd) as fleet:
        yield fleet


def admin(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, username="admin", password="admin-password")


def test_the_user_is_refused_outside_the_prefix(server: RedisServer) -> None:
    user = redis.Redis(port=server.port, username="svc", password="svc-password")
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.set("mcp:v1:elsewhere", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.publish("mcp:v1:revocations", "x")
    finally:
        user.close()


def test_the_fleet_fetches_the_jwks_once(fleet: Fleet) -> None:
    token = TokenFactory().token()
    assert {call_add(replica.url, token).status_code for replica in fleet.replicas} == {200}
    assert fleet.jwks.requests == 1


def test_every_replica_is_ready_with_every_check_ok(fleet: Fleet) -> None:
    for replica in fleet.replicas:
        body = httpx.get(f"{replica.url}/readyz", timeout=5).json()
        assert body["status"] == "ok", body


def test_a_revocation_reaches_every_replica_within_a_second(fleet: Fleet, tmp_path: Path) -> None:
    assert seconds_until_revoked_everywhere(fleet.replicas, tmp_path) < 1.0
    listed = cli("revoke", "--list", env=operator_env(fleet.replicas[0].env), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"kind": "jti"' in listed.stdout


def test_exactly_the_limit_is_admitted_across_the_fleet(fleet: Fleet) -> None:
    assert admitted_across(fleet.replicas, 30) == 10


def test_verified_tokens_are_shared_under_the_prefix(fleet: Fleet, server: RedisServer) -> None:
    token = TokenFactory().token()
    assert call_add(fleet.replicas[0].url, token).status_code == 200
    client = admin(server)
    try:
        keys = [key.decode() for key in client.scan_iter(count=1000)]
    finally:
        client.close()
    assert any(key.startswith("tenant:v1:tok:") for key in keys)
    assert all(key.startswith("tenant:") for key in keys), keys
