"""TLS material for the simulator: a private CA, a server certificate, a token-signing key.

Owns: generating (once) and reusing PEM files in the simulator's state directory.
Must not import anything from ``bridge`` outside ``bridge.simulator``.

The CA is what clients trust (``Simulator.ca_file``); the server certificate carries
SAN ``IP:127.0.0.1`` and ``DNS:localhost`` so both spellings of the loopback host verify.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
SIGNING_KEY = "token-signing-key.pem"


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """Paths of the PEM files the simulator serves and signs with."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    signing_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        return ctx

    def signing_key_pem(self) -> bytes:
        return self.signing_key.read_bytes()


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def ensure_tls_material(directory: Path) -> TlsMaterial:
    """Create the CA, server certificate and signing key in ``directory`` unless present."""
    directory.mkdir(parents=True, exist_ok=True)
    material = TlsMaterial(
        ca_file=directory / CA_CERT,
        server_cert=directory / SERVER_CERT,
        server_key=directory / SERVER_KEY,
        signing_key=directory / SIGNING_KEY,
    )
    if all(
        p.exists()
        for p in (material.ca_file, material.server_cert, material.server_key, material.signing_key)
    ):
        return material
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Graph Simulator Test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(material.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(directory / CA_KEY, _key_pem(ca_key))
    _write(material.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    _write(material.server_key, _key_pem(server_key))
    _write(material.signing_key, _key_pem(_key()))
    material.ca_file.chmod(0o644)
    return material


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A self-signed app credential certificate, as an admin would upload to Entra ID."""

    cert_pem: bytes
    key_pem: bytes
    sha1_thumbprint_hex: str


def make_client_certificate(common_name: str = "graph-mail-bridge") -> ClientCertificate:
    """Generate a self-signed certificate + key for certificate client credentials."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return ClientCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
        sha1_thumbprint_hex=cert.fingerprint(hashes.SHA1()).hex().upper(),
    )


def certificate_thumbprints(cert_pem: bytes) -> tuple[bytes, bytes]:
    """(SHA-1, SHA-256) digests of a PEM certificate: the x5t and x5t#S256 values."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.fingerprint(hashes.SHA1()), cert.fingerprint(hashes.SHA256())


def certificate_public_key_pem(cert_pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
