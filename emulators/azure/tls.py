"""TLS material for the emulator: a persisted self-signed CA and a server certificate it signs.

Files under the data dir: ``ca.pem`` (the CA certificate; hand it to clients as their CA
bundle), ``tls/ca-key.pem``, ``tls/server.pem`` and ``tls/server-key.pem``. The CA is made
once and kept, so ``ca.pem`` stays valid across restarts; the server certificate is remade
when it is missing, expires within 30 days, was not issued by that CA, or does not name every
requested host in its subjectAltName.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulators.azure.keys import atomic_write, locked

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
_CA_DAYS = 3650
_SERVER_DAYS = 825
_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files uvicorn and clients need."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Rayplane Azure emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Rayplane Azure emulator local CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: Sequence[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _server_cert_usable(cert_path: Path, ca_cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < _RENEW_BEFORE:
        return False
    return all(_general_name(h) in sans for h in hosts)


def ensure_tls(data_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> TlsMaterial:
    """Create (or reuse) the CA and a server certificate for ``hosts``; return their paths.

    Safe to call from several processes at once (an ``flock`` serialises creation).
    """
    if not hosts:
        raise ValueError("at least one host is needed for the server certificate")
    material = TlsMaterial(
        ca_path=data_dir / "ca.pem",
        cert_path=data_dir / "tls" / "server.pem",
        key_path=data_dir / "tls" / "server-key.pem",
    )
    ca_key_path = data_dir / "tls" / "ca-key.pem"
    with locked(data_dir / "tls" / ".lock"):
        if material.ca_path.exists() and ca_key_path.exists():
            ca_cert = x509.load_pem_x509_certificate(material.ca_path.read_bytes())
            loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{ca_key_path} is not an EC private key")
            ca_key = loaded
        else:
            ca_key, ca_cert = _make_ca()
            atomic_write(ca_key_path, _pem_key(ca_key), 0o600)
            atomic_write(material.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
        if not _server_cert_usable(material.cert_path, ca_cert, hosts):
            key, cert = _make_server_cert(ca_key, ca_cert, hosts)
            atomic_write(material.key_path, _pem_key(key), 0o600)
            atomic_write(material.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return material
