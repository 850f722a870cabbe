"""Three `mcp-service serve` processes sharing one real Redis and one counting JWKS endpoint."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.pool import ADD_CALL, JWKS_PATH, bearer_headers, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer, ServiceProcess, cli
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

SECRET = "integration-secret-" + "x" * 20
COOLDOWN = 1.0


def fleet_env(jwks: JwksServer, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return pool_env(
        jwks.url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        TOKEN_CACHE_SECRET=SECRET,
        JWKS_KID_MISS_COOLDOWN_SECONDS=str(COOLDOWN),
        IP_RATE_LIMIT="off",  # the floods below come from one address on purpose
        **extra,
    )


def start_fleet(env: dict[str, str], cwd: Path, size: int = 3) -> list[ServiceProcess]:
    fleet = [ServiceProcess(env, cwd).launch() for _ in range(size)]
    try:
        for replica in fleet:
            replica.wait_ready()
    except Exception:
        for replica in fleet:
            replica.stop()
        raise
    return fleet


def call(replica: ServiceProcess, token: str) -> httpx.Response:
    return call_add(replica.url, token, timeout=10)


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer(jwks_of(rsa_key()), JWKS_PATH).running() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(
    jwks: JwksServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServiceProcess]]:
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    replicas = start_fleet(fleet_env(jwks, redis_url, prefix), tmp_path_factory.mktemp("fleet"))
    try:
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def test_a_cold_start_of_three_replicas_fetches_the_jwks_once(
    fleet: list[ServiceProcess], jwks: JwksServer
) -> None:
    token = TokenFactory().token()
    for replica in fleet:
        assert call(replica, token).status_code == 200
    assert jwks.requests == 1


def test_a_key_rotation_costs_one_more_fetch(fleet: list[ServiceProcess], jwks: JwksServer) -> None:
    before = jwks.requests
    jwks.document = jwks_of(rsa_key(), rsa_key("rotated"))
    time.sleep(COOLDOWN)  # let any window a previous test opened close
    token = TokenFactory(key=rsa_key("rotated")).token()
    for replica in fleet:
        response = call(replica, token)
        assert response.status_code == 200, response.text
    assert jwks.requests == before + 1


def test_random_kids_cost_at_most_one_fetch_per_cooldown_window(
    fleet: list[ServiceProcess], jwks: JwksServer
) -> None:
    time.sleep(COOLDOWN)
    before = jwks.requests
    factory = TokenFactory()
    tokens = [factory.token(headers={"kid": uuid.uuid4().hex}) for _ in range(1000)]

    async def flood() -> list[int]:
        limit = asyncio.Semaphore(32)
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(n: int, token: str) -> int:
                async with limit:
                    response = await client.post(
                        f"{fleet[n % 3].url}/mcp", json=ADD_CALL, headers=bearer_headers(token)
                    )
                    return response.status_code

            return await asyncio.gather(*(one(n, t) for n, t in enumerate(tokens)))

    started = time.monotonic()
    statuses = asyncio.run(flood())
    elapsed = time.monotonic() - started
    assert set(statuses) == {401}
    windows = math.ceil(elapsed / COOLDOWN) + 1
    assert 1 <= jwks.requests - before <= windows


def test_a_revocation_reaches_every_replica_within_a_second(
    fleet: list[ServiceProcess], redis_url: str, tmp_path: Path
) -> None:
    jti = f"jti-{uuid.uuid4()}"
    token = TokenFactory().token(jti=jti)
    for replica in fleet:
        assert call(replica, token).status_code == 200
    env = {
        k: v
        for k, v in fleet[0].env.items()
        if k in {"REDIS_URL", "REDIS_KEY_PREFIX", "TOKEN_CACHE_SECRET"}
    }
    result = cli("revoke", "--jti", jti, "--reason", "test", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    revoked_at = time.monotonic()
    for replica in fleet:
        while True:
            response = call(replica, token)
            if response.status_code == 401:
                assert response.json()["reason"] == "revoked"
                break
            assert time.monotonic() - revoked_at < 1.0, "revocation not seen within 1 s"
            time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0
    listed = cli("revoke", "--list", env=env, cwd=tmp_path)
    assert jti in listed.stdout


def test_a_subject_revocation_spares_later_sign_ins(
    fleet: list[ServiceProcess], tmp_path: Path
) -> None:
    old = TokenFactory().token(sub="dave", iat=int(time.time()) - 60)
    env = {
        k: v
        for k, v in fleet[0].env.items()
        if k in {"REDIS_URL", "REDIS_KEY_PREFIX", "TOKEN_CACHE_SECRET"}
    }
    assert cli("revoke", "--sub", "dave", env=env, cwd=tmp_path).returncode == 0
    time.sleep(1.1)
    fresh = TokenFactory().token(sub="dave", iat=int(time.time()) + 1)
    for replica in fleet:
        assert call(replica, old).json()["reason"] == "revoked"
        assert call(replica, fresh).status_code == 200


def test_redis_stopped_and_restarted_mid_run(jwks: JwksServer, tmp_path: Path) -> None:
    """Valid calls keep working within the timeout budget, and sharing resumes afterwards."""
    timeout = 0.25
    with RedisServer(tmp_path) as redis_server:
        env = fleet_env(
            jwks,
            redis_server.url,
            "outage",
            TOKEN_CACHE_L2="true",
            REDIS_TIMEOUT_SECONDS=str(timeout),
            REDIS_BREAKER_COOLOFF_SECONDS="0.5",
        )
        replicas = start_fleet(env, tmp_path)
        try:
            factory = TokenFactory()
            for replica in replicas:
                assert call(replica, factory.token()).status_code == 200

            redis_server.kill()
            slowest = 0.0
            for n in range(60):
                started = time.monotonic()
                response = call(replicas[n % 3], factory.token())
                slowest = max(slowest, time.monotonic() - started)
                assert response.status_code == 200, response.text
            assert slowest < timeout + 0.75

            redis_server.start()  # same port: the replicas reconnect on their own
            jti = f"jti-{uuid.uuid4()}"
            token = factory.token(jti=jti)
            deadline = time.monotonic() + 30
            env_cli = {k: env[k] for k in ("REDIS_URL", "REDIS_KEY_PREFIX", "TOKEN_CACHE_SECRET")}
            while cli("revoke", "--jti", jti, env=env_cli, cwd=tmp_path).returncode != 0:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            for replica in replicas:
                while call(replica, token).status_code != 401:
                    assert time.monotonic() < deadline, "sharing did not resume"
                    time.sleep(0.1)
        finally:
            for replica in replicas:
                replica.stop()
