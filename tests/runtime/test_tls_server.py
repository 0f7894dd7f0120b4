"""Real TLS: a PostgreSQL of the test's own with ``ssl = on`` and a certificate signed by a
CA the test creates. ``verify-full`` with the right CA connects; a wrong CA, a wrong host
name and an expired certificate each fail, saying why; ``require`` encrypts."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aragora_repos import ConfigError, ConnectionFailure, Secret
from aragora_repos.backends.postgres import PostgresDatabase, connect_one
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.postgres

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> tuple[bytes, bytes]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class TlsServer:
    cluster: Cluster
    ca_file: Path
    other_ca_file: Path
    valid: tuple[bytes, bytes]
    expired: tuple[bytes, bytes]

    def dsn(self, sslmode: str, *, host: str = "127.0.0.1", ca: Path | None = None) -> str:
        root = f"&sslrootcert={ca or self.ca_file}" if sslmode.startswith("verify") else ""
        return f"postgresql://postgres@{host}:{self.cluster.port}/postgres?sslmode={sslmode}{root}"

    def serve(self, cert_and_key: tuple[bytes, bytes]) -> None:
        """Put this certificate in place and reload: new connections get it."""
        for name, data, mode in (
            ("server.crt", cert_and_key[0], 0o644),
            ("server.key", cert_and_key[1], 0o600),
        ):
            path = Path(self.cluster.datadir) / name
            path.write_bytes(data)
            path.chmod(mode)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        self.cluster.ctl("reload")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    cluster = Cluster.create()
    if cluster is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true requires the PostgreSQL server binaries (initdb)")
        pytest.skip("no PostgreSQL server binaries to start a TLS server")
    try:
        folder = tmp_path_factory.mktemp("tls")
        ca, other = _ca("aragora test CA"), _ca("some other CA")
        files = []
        for name, (_, cert) in (("ca.crt", ca), ("other-ca.crt", other)):
            path = folder / name
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            files.append(path)
        server = TlsServer(
            cluster,
            files[0],
            files[1],
            _server(ca, NOW - DAY, NOW + 30 * DAY),
            _server(ca, NOW - 30 * DAY, NOW - DAY),
        )
        server.serve(server.valid)
        with open(os.path.join(cluster.datadir, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        cluster.restart()
        yield server
    finally:
        cluster.destroy()


async def _ssl_in_use(dsn: str) -> bool:
    conn = await connect_one(Secret(dsn))
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await conn.close()


async def test_verify_full_with_the_right_ca_connects_encrypted(tls: TlsServer) -> None:
    assert await _ssl_in_use(tls.dsn("verify-full"))
    db = await PostgresDatabase.open(Secret(tls.dsn("verify-full")), max_size=2)
    try:
        row = await db.fetchrow("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", ())
        assert row is not None and row[0] is True
    finally:
        await db.close()


async def test_require_encrypts_and_disable_does_not(tls: TlsServer) -> None:
    assert await _ssl_in_use(tls.dsn("require"))
    assert not await _ssl_in_use(tls.dsn("disable"))  # the check can tell them apart


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong CA", "unable to get local issuer certificate"),
        ("wrong host name", "Hostname mismatch"),
    ],
)
async def test_a_certificate_that_does_not_verify_is_refused_saying_why(
    tls: TlsServer, case: str, reason: str
) -> None:
    dsn = (
        tls.dsn("verify-full", ca=tls.other_ca_file)
        if case == "wrong CA"
        else tls.dsn("verify-full", host="localhost")
    )
    for attempt in (lambda: connect_one(Secret(dsn)), lambda: PostgresDatabase.open(Secret(dsn))):
        with pytest.raises(ConnectionFailure) as info:
            await attempt()
        message = str(info.value)
        assert "the server's certificate does not verify" in message and reason in message


async def test_an_expired_certificate_is_refused_saying_so(tls: TlsServer) -> None:
    tls.serve(tls.expired)
    try:
        with pytest.raises(ConnectionFailure, match="certificate has expired"):
            await connect_one(Secret(tls.dsn("verify-full")))
    finally:
        tls.serve(tls.valid)
    assert await _ssl_in_use(tls.dsn("verify-full"))  # back to the valid one


async def test_production_takes_require_with_a_warning_and_verify_full_quietly(
    tls: TlsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ARAGORA_ENV", "production")
    assert await _ssl_in_use(tls.dsn("verify-full"))
    assert [r for r in caplog.records if r.name == "aragora_repos.config"] == []
    assert await _ssl_in_use(tls.dsn("require"))
    db = await PostgresDatabase.open(Secret(tls.dsn("require")), max_size=1)
    await db.close()
    warnings = [r.message for r in caplog.records if r.name == "aragora_repos.config"]
    assert len(warnings) == 2 and all("certificate is not checked" in w for w in warnings)
    with pytest.raises(ConfigError, match="sslmode=verify-full"):
        await connect_one(Secret(tls.dsn("prefer")))


async def test_a_refused_certificate_never_shows_the_password(tls: TlsServer) -> None:
    canary = "CANARY-tls-5e1f"
    dsn = tls.dsn("verify-full", ca=tls.other_ca_file).replace("postgres@", f"postgres:{canary}@")
    for attempt in (lambda: connect_one(Secret(dsn)), lambda: PostgresDatabase.open(Secret(dsn))):
        with pytest.raises(ConnectionFailure) as info:
            await attempt()
        shown = f"{info.value} {info.value!r} {info.value.__cause__!r}"
        assert "does not verify" in shown and canary not in shown
