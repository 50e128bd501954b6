"""Entra ID signing keys persisted in a data dir, and minting of JWTs signed with them.

On-disk layout under ``DATA_DIR/entra/``:

* ``keys.json`` -- ``{"order": [kid, ...], "current": kid}``; ``order`` is oldest first and is
  exactly what the JWKS publishes; ``current`` signs new tokens.
* ``keys/<kid>.key.pem`` -- PKCS#8 RSA-2048 private key (mode 0600).
* ``keys/<kid>.crt.pem`` -- self-signed certificate over that key, published as ``x5c``.

A ``kid`` is the base64url SHA-1 thumbprint of its certificate (also the ``x5t``), as in
Azure's JWKS. Several processes may share one data dir (the emulator, and a test minting
in-process): writers hold an ``flock`` and every public call re-checks ``keys.json``, so a
rotation made by one process is seen by the others on their next call.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ENTRA_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rayplane.invalid/emulators/azure/entra")
DEFAULT_CLIENT_ID = str(uuid.uuid5(ENTRA_NAMESPACE, "default-client"))
DEFAULT_AUDIENCE = "https://management.azure.com"
TOKEN_LIFETIME_SECONDS = 3600
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
#: ``none`` makes an unsigned token; ``HS256`` is HMAC keyed with the signing key's public PEM
#: (the classic algorithm-confusion attack). Both exist so validators can be tested to refuse them.
MINT_ALGORITHMS = RSA_ALGORITHMS | {"none", "HS256"}


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` by ``data``: readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created when missing) for the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def object_id_for_client(client_id: str) -> str:
    """The stable service-principal object id (``oid``/``sub``) the emulator gives ``client_id``."""
    return str(uuid.uuid5(ENTRA_NAMESPACE, f"sp:{client_id.lower()}"))


def issuer_for(origin: str, tenant: str) -> str:
    """The v2 issuer of ``tenant`` at ``origin``: ``{origin}/{tenant}/v2.0``."""
    return f"{origin.rstrip('/')}/{tenant}/v2.0"


def app_token_claims(
    *,
    origin: str,
    tenant: str,
    client_id: str,
    audience: str,
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    now: float | None = None,
    client_auth: str = "1",
) -> dict[str, Any]:
    """Claims of an app-only v2 access token, as Entra issues for client credentials.

    ``client_auth`` is the ``azpacr``/``appidacr`` value: ``"1"`` for a client secret,
    ``"2"`` for a certificate or client assertion.
    """
    issued = int(time.time() if now is None else now)
    issuer = issuer_for(origin, tenant)
    oid = object_id_for_client(client_id)
    return {
        "aud": audience,
        "iss": issuer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_seconds,
        "aio": b64url(os.urandom(24)),
        "azp": client_id,
        "azpacr": client_auth,
        "appid": client_id,
        "appidacr": client_auth,
        "idp": issuer,
        "idtyp": "app",
        "oid": oid,
        "rh": "0.emulator.",
        "sub": oid,
        "tid": tenant,
        "uti": b64url(os.urandom(16)),
        "ver": "2.0",
    }


def certificate_thumbprint(cert: x509.Certificate, algorithm: str = "sha1") -> str:
    """base64url thumbprint of ``cert``'s DER: ``sha1`` gives ``x5t``, ``sha256`` ``x5t#S256``."""
    digest = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()  # noqa: S303
    return b64url(cert.fingerprint(digest))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@dataclass(frozen=True)
class SigningKey:
    """One RSA signing key with the self-signed certificate published next to it."""

    kid: str
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh RSA-2048 key and a ten-year self-signed certificate over it."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator entra signing key")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return cls(certificate_thumbprint(cert), key, cert)

    def public_jwk(self, issuer: str | None = None) -> dict[str, Any]:
        """The key as a JWKS entry (``kty, use, alg, kid, x5t, n, e, x5c`` and maybe ``issuer``)."""
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        jwk: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(_int_bytes(numbers.n)),
            "e": b64url(_int_bytes(numbers.e)),
            "x5c": [base64.b64encode(der).decode("ascii")],
        }
        if issuer is not None:
            jwk["issuer"] = issuer
        return jwk


class KeyStore:
    """The signing keys persisted under ``data_dir`` (created with one key on first use)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "entra"
        self._index = self.root / "keys.json"
        self._lock = self.root / ".keys.lock"
        self._keys: dict[str, SigningKey] = {}
        self._order: list[str] = []
        self._current = ""
        self._stamp: tuple[int, int, int] | None = None
        self._refresh()

    # -- persistence -----------------------------------------------------------------
    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self._index.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp is not None and stamp == self._stamp:
            return
        if stamp is None:
            with locked(self._lock):
                if self._stat() is None:
                    key = SigningKey.generate()
                    self._store_key(key)
                    self._write_index([key.kid], key.kid)
        self._load()

    def _load(self) -> None:
        stamp = self._stat()
        index = json.loads(self._index.read_text())
        keys: dict[str, SigningKey] = {}
        for kid in index["order"]:
            keys[kid] = self._keys.get(kid) or self._read_key(kid)
        self._keys, self._order, self._current = keys, list(index["order"]), index["current"]
        self._stamp = stamp

    def _read_key(self, kid: str) -> SigningKey:
        key_pem = (self.root / "keys" / f"{kid}.key.pem").read_bytes()
        private_key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"signing key {kid} is not an RSA key")
        cert = x509.load_pem_x509_certificate((self.root / "keys" / f"{kid}.crt.pem").read_bytes())
        return SigningKey(kid, private_key, cert)

    def _store_key(self, key: SigningKey) -> None:
        key_pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(self.root / "keys" / f"{key.kid}.key.pem", key_pem, 0o600)
        cert_pem = key.certificate.public_bytes(serialization.Encoding.PEM)
        atomic_write(self.root / "keys" / f"{key.kid}.crt.pem", cert_pem)

    def _write_index(self, order: list[str], current: str) -> None:
        atomic_write(self._index, _compact_json({"order": order, "current": current}))

    # -- keys ------------------------------------------------------------------------
    @property
    def current_kid(self) -> str:
        """The kid that signs new tokens."""
        self._refresh()
        return self._current

    def kids(self) -> list[str]:
        """Every published kid, oldest first."""
        self._refresh()
        return list(self._order)

    def key(self, kid: str | None = None) -> SigningKey:
        """The key ``kid`` (the current one when None); KeyError when it is not published."""
        self._refresh()
        return self._keys[kid or self._current]

    def rotate(self) -> str:
        """Add a new key, make it the signer, keep older keys published; return its kid."""
        with locked(self._lock):
            self._load()
            key = SigningKey.generate()
            self._store_key(key)
            self._write_index([*self._order, key.kid], key.kid)
        self._load()
        return key.kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (tokens it signed stop verifying). The last key cannot go."""
        with locked(self._lock):
            self._load()
            if kid not in self._order:
                raise KeyError(kid)
            order = [k for k in self._order if k != kid]
            if not order:
                raise ValueError("cannot retire the only signing key")
            self._write_index(order, order[-1] if kid == self._current else self._current)
        self._load()

    def jwks(self, issuer: str | None = None) -> dict[str, Any]:
        """``{"keys": [...]}`` with every published key, oldest first."""
        self._refresh()
        return {"keys": [self._keys[kid].public_jwk(issuer) for kid in self._order]}

    # -- tokens ----------------------------------------------------------------------
    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        untrusted: bool = False,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` exactly as given.

        The header carries ``typ: JWT``, ``kid`` and ``x5t`` (overridable by ``headers``).
        ``kid`` picks a published key (KeyError if unknown); ``untrusted`` signs with a
        throw-away key that no JWKS lists. ``alg`` is one of :data:`MINT_ALGORITHMS`.
        """
        if alg not in MINT_ALGORITHMS:
            raise ValueError(f"unsupported alg {alg!r}; use one of {sorted(MINT_ALGORITHMS)}")
        key = SigningKey.generate() if untrusted else self.key(kid)
        header: dict[str, Any] = {"typ": "JWT", "kid": key.kid, "x5t": key.kid, **(headers or {})}
        if alg in RSA_ALGORITHMS:
            return jwt.encode(dict(claims), key.private_key, algorithm=alg, headers=header)
        header["alg"] = alg
        signing_input = f"{b64url(_compact_json(header))}.{b64url(_compact_json(claims))}"
        if alg == "none":
            return signing_input + "."
        secret = key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        origin: str,
        tenant: str,
        client_id: str = DEFAULT_CLIENT_ID,
        audience: str = DEFAULT_AUDIENCE,
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        kid: str | None = None,
        alg: str = "RS256",
        untrusted: bool = False,
    ) -> str:
        """An access token like the token endpoint's, with ``claims`` merged over the defaults.

        Defaults are :func:`app_token_claims` for (``origin``, ``tenant``, ``client_id``,
        ``audience``, ``lifetime_seconds``). A claim given as None is removed. ``kid``, ``alg``
        and ``untrusted`` are as for :meth:`sign`.
        """
        merged = app_token_claims(
            origin=origin,
            tenant=tenant,
            client_id=client_id,
            audience=audience,
            lifetime_seconds=lifetime_seconds,
        )
        merged.update(claims or {})
        final = {name: value for name, value in merged.items() if value is not None}
        return self.sign(final, kid=kid, alg=alg, untrusted=untrusted)

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Claims of an RS256 ``token`` signed by a published key (checks exp/nbf, and ``aud``
        when given); raises :class:`jwt.InvalidTokenError` otherwise."""
        kid = jwt.get_unverified_header(token).get("kid")
        try:
            key = self.key(str(kid)) if kid else None
        except KeyError:
            key = None
        if key is None:
            raise jwt.InvalidTokenError("token is not signed by a published key")
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            options={"verify_aud": audience is not None},
        )
