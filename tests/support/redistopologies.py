"""Redis as AWS runs it, on loopback: a cluster of primaries, a primary with its replica, and
a private CA for TLS. Every server is a `RedisServer` of the test's own, stopped by its PID."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import RedisServer, free_port

FAST = ("--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + 10_000 < 65_536 and _free(port + 10_000):
            return port


class ClusterNodes:
    """`size` primaries (no replicas) joined by `redis-cli --cluster create`; with `tls`, TLS
    only, the cluster bus included, with the certificates of `tls`."""

    def __init__(self, workdir: Path, size: int = 3, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        secure = () if tls is None else (*tls_options(tls, False), "--tls-cluster", "yes")
        self.nodes = [
            RedisServer(
                workdir,
                port=(port := free_cluster_port()),
                tls=tls is not None,
                options=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(workdir / f"nodes-{port}.conf"),
                    *FAST,
                    *secure,
                ),
            )
            for _ in range(size)
        ]
        self.replicas: list[RedisServer] = []

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, **self._tls())

    def _tls(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.tls.ca)}

    def start(self) -> ClusterNodes:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        secure = [] if self.tls is None else ["--tls", "--cacert", str(self.tls.ca)]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            [cli, *secure, *create],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while not all(self._ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ready")
            time.sleep(0.1)
        return self

    def _ok(self, node: RedisServer) -> bool:
        client = redis.Redis(port=node.port, **self._tls())
        try:
            return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()

    def add_replica(self, primary: RedisServer) -> RedisServer:
        """A new node, joined as a replica of `primary` and in sync with it."""
        replica = RedisServer(
            primary.workdir,
            port=(port := free_cluster_port()),
            options=(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(primary.workdir / f"nodes-{port}.conf"),
                *FAST,
            ),
        )
        self.replicas.append(replica.start())
        cli = shutil.which("redis-cli") or "redis-cli"
        join = [f"127.0.0.1:{port}", f"127.0.0.1:{primary.port}", "--cluster-slave"]
        subprocess.run(
            [cli, "--cluster", "add-node", *join], check=True, capture_output=True, timeout=30
        )
        client, known_by = redis.Redis(port=port), redis.Redis(port=primary.port)
        try:
            primary_id = known_by.execute_command("CLUSTER", "MYID")
            deadline = time.monotonic() + 20
            # In sync, and known to its primary as its replica (a manual failover needs both).
            while client.info("replication").get("master_link_status") != "up" or not (
                known_by.execute_command("CLUSTER", "REPLICAS", primary_id)
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster replica did not sync")
                time.sleep(0.05)
        finally:
            client.close()
            known_by.close()
        return replica

    @staticmethod
    def fail_over_to(replica: RedisServer) -> None:
        """`CLUSTER FAILOVER` on a replica: it is promoted, its primary demoted."""
        client = redis.Redis(port=replica.port)
        try:
            deadline = time.monotonic() + 20
            asked = 0.0
            while client.info("replication").get("role") != "master":
                if time.monotonic() > deadline:
                    raise RuntimeError("the failover did not happen")
                if time.monotonic() - asked > 3:  # a manual failover gives up after 5 s
                    client.execute_command("CLUSTER", "FAILOVER")
                    asked = time.monotonic()
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        for node in [*self.nodes, *self.replicas]:
            node.kill()

    def __enter__(self) -> ClusterNodes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def primary_and_replica(workdir: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and a replica of it, in sync."""
    sync_now = ("--repl-diskless-sync-delay", "0")  # the default waits 5 s for more replicas
    primary = RedisServer(workdir, options=sync_now).start()
    replica = RedisServer(
        workdir, options=("--replicaof", "127.0.0.1", str(primary.port), *sync_now)
    )
    try:
        replica.start()
        client = redis.Redis(port=replica.port)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync")
            time.sleep(0.05)
        client.close()
        yield primary, replica
    finally:
        replica.kill()
        primary.kill()


def fail_over(old: RedisServer, new: RedisServer) -> None:
    """What ElastiCache does on a failover: the replica is promoted, the primary demoted."""
    promoted = redis.Redis(port=new.port)
    demoted = redis.Redis(port=old.port)
    try:
        promoted.execute_command("REPLICAOF", "NO", "ONE")
        demoted.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
    finally:
        promoted.close()
        demoted.close()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it alone must fail


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    usage = x509.oid.ExtendedKeyUsageOID
    # A server's certificate is also what a cluster node shows when it connects to its peers.
    uses = [usage.SERVER_AUTH, usage.CLIENT_AUTH] if server else [usage.CLIENT_AUTH]
    builder = builder.add_extension(x509.ExtendedKeyUsage(uses), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_tls_files(directory: Path) -> TlsFiles:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate it signed,
    and another CA."""
    ca, ca_key = _ca("mcp-service test CA")
    other, _ = _ca("some other CA")
    server, server_key = _leaf("redis", ca, ca_key, server=True)
    client, client_key = _leaf("mcp-service", ca, ca_key, server=False)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        other_ca=directory / "other-ca.pem",
    )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca.public_bytes(pem))
    files.other_ca.write_bytes(other.public_bytes(pem))
    files.server_cert.write_bytes(server.public_bytes(pem))
    files.client_cert.write_bytes(client.public_bytes(pem))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files


def tls_options(files: TlsFiles, clients_need_certificates: bool) -> tuple[str, ...]:
    """`redis-server` options for TLS with the CA's server certificate."""
    return (
        "--tls-cert-file",
        str(files.server_cert),
        "--tls-key-file",
        str(files.server_key),
        "--tls-ca-cert-file",
        str(files.ca),
        "--tls-auth-clients",
        "yes" if clients_need_certificates else "no",
    )


def tls_server(directory: Path, files: TlsFiles, *, clients_need_certificates: bool) -> RedisServer:
    """A TLS-only redis-server with the CA's server certificate."""
    return RedisServer(directory, tls=True, options=tls_options(files, clients_need_certificates))
