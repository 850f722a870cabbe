"""TLS to Redis with a private CA, against a TLS-only `redis-server` the module starts with a CA
it makes: every connection (redis-py's and the rate limiter's) trusts what REDIS_TLS_* or the
URL's `ssl_*` parameters say, and a certificate it does not trust is named in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import RedisServer
from tests.support.redistopologies import ClusterNodes, TlsFiles, make_tls_files, tls_server
from tests.support.service import make_service

pytestmark = pytest.mark.redis

CHECKS = ("redis", "rate_limit")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def servers(
    files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RedisServer]]:
    """A TLS-only server, and one that also wants a client certificate."""
    directory = tmp_path_factory.mktemp("tls-redis")
    with (
        tls_server(directory, files, clients_need_certificates=False) as plain,
        tls_server(directory, files, clients_need_certificates=True) as mutual,
    ):
        yield {"server": plain, "mutual": mutual}


@pytest.fixture(scope="module")
def server(servers: dict[str, RedisServer]) -> RedisServer:
    return servers["server"]


@pytest.fixture(scope="module")
def mutual(servers: dict[str, RedisServer]) -> RedisServer:
    return servers["mutual"]


async def readiness(**settings: Any) -> dict[str, str]:
    """The Redis checks of a service built with `settings`, once its limiter has started."""
    service = make_service(rate_limit="100/minute", redis_connect_timeout_seconds=2, **settings)
    limiter = service.limiter
    assert limiter is not None
    await limiter.start()
    try:
        report = await service.readiness.evaluate()
        return {name: report.checks[name][0].state.value for name in CHECKS}
    finally:
        await limiter.close()
        await service.shared.close()


BOTH_OK = {"redis": "ok", "rate_limit": "ok"}
BOTH_DEGRADED = {"redis": "degraded", "rate_limit": "degraded"}


async def test_a_private_ca_in_redis_tls_ca_file_is_trusted_by_every_connection(
    server: RedisServer, files: TlsFiles
) -> None:
    assert await readiness(redis_url=server.url, redis_tls_ca_file=str(files.ca)) == BOTH_OK


async def test_a_private_ca_in_the_urls_ssl_ca_certs_is_trusted_by_every_connection(
    server: RedisServer, files: TlsFiles
) -> None:
    assert await readiness(redis_url=f"{server.url}?ssl_ca_certs={files.ca}") == BOTH_OK


@pytest.mark.parametrize("where", ["setting", "url"])
async def test_an_untrusted_certificate_is_named_in_the_log(
    server: RedisServer, files: TlsFiles, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    if where == "setting":
        settings = {"redis_url": server.url, "redis_tls_ca_file": str(files.other_ca)}
    else:
        settings = {"redis_url": f"{server.url}?ssl_ca_certs={files.other_ca}"}
    with caplog.at_level(logging.WARNING):
        assert await readiness(**settings) == BOTH_DEGRADED
    untrusted = [r for r in caplog.records if "TLS certificate not trusted" in r.getMessage()]
    assert {r.name for r in untrusted} >= {"cache.redis", "mcp_service.ratelimit"}


async def test_the_system_trust_store_alone_does_not_trust_a_private_ca(
    server: RedisServer,
) -> None:
    assert await readiness(redis_url=server.url) == BOTH_DEGRADED


async def test_verify_none_connects_without_the_ca(server: RedisServer) -> None:
    assert await readiness(redis_url=server.url, redis_tls_verify="none") == BOTH_OK


async def test_a_client_certificate_is_presented_by_every_connection(
    mutual: RedisServer, files: TlsFiles
) -> None:
    settings = {"redis_url": mutual.url, "redis_tls_ca_file": str(files.ca)}
    assert await readiness(**settings) == BOTH_DEGRADED  # the server wants a certificate
    assert (
        await readiness(
            **settings,
            redis_tls_cert_file=str(files.client_cert),
            redis_tls_key_file=str(files.client_key),
        )
        == BOTH_OK
    )


def test_check_config_refuses_an_unreadable_ca_file(tmp_path: Path, server: RedisServer) -> None:
    from tests.support.service import make_settings

    settings = make_settings(redis_url=server.url, redis_tls_ca_file=str(tmp_path / "missing.pem"))
    assert [name for name, _ in settings.serve_problems()] == ["REDIS_TLS_CA_FILE"]


async def test_a_tls_cluster_with_a_private_ca_is_trusted_by_every_connection(
    files: TlsFiles, tmp_path: Path
) -> None:
    with ClusterNodes(tmp_path, tls=files) as cluster:
        settings = {"redis_url": cluster.url, "redis_cluster": True}
        assert await readiness(**settings, redis_tls_ca_file=str(files.ca)) == BOTH_OK
        assert await readiness(**settings) == BOTH_DEGRADED
