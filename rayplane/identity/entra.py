"""Validation of Entra ID v2 access tokens with PyJWT.

Contract of ``EntraValidator.validate``:
- only RS256 is accepted; ``none``, HS* and every other algorithm are refused before any
  key is looked at (an HS256 token "signed" with our public RSA key must not verify);
- the token's ``tid`` must be accepted by the caller-supplied ``known_tid`` check *before*
  anything is fetched, so strangers cannot make us download metadata for arbitrary tenants;
- the issuer, audience, ``exp`` and ``nbf`` are checked against the tenant's OpenID metadata;
- metadata and JWKS are cached for ``cache_seconds``; an unknown ``kid`` triggers one refetch
  of the JWKS (keys rotate), at most once per ``refetch_interval`` per JWKS URL, so a flood
  of tokens with made-up kids cannot turn into a flood of fetches.
Concurrency: fetches of one URL are serialised by a per-URL lock; readers of a fresh cache
never wait.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from rayplane.common.errors import Unauthenticated

ALGORITHM = "RS256"


@dataclass
class _Cached:
    value: Any
    fetched_at: float


class EntraValidator:
    def __init__(
        self,
        *,
        authority: str,
        audiences: list[str],
        ca_bundle: str | None = None,
        cache_seconds: int = 3600,
        refetch_interval: float = 10.0,
        leeway_seconds: int = 30,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.audiences = audiences
        self.cache_seconds = cache_seconds
        self.refetch_interval = refetch_interval
        self.leeway = leeway_seconds
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self._client = client or httpx.AsyncClient(verify=verify, timeout=10.0)
        self._metadata: dict[str, _Cached] = {}
        self._jwks: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.jwks_fetches = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    def _lock(self, url: str) -> asyncio.Lock:
        return self._locks.setdefault(url, asyncio.Lock())

    async def _get_json(self, url: str) -> Any:
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            # The token may be fine; we just cannot check it now. Refuse rather than trust.
            raise Unauthenticated(f"cannot reach the token issuer's metadata ({type(exc).__name__})") from None

    async def _metadata_for(self, tid: str) -> dict[str, Any]:
        url = f"{self.authority}/{tid}/v2.0/.well-known/openid-configuration"
        cached = self._metadata.get(url)
        if cached and time.monotonic() - cached.fetched_at < self.cache_seconds:
            return dict(cached.value)
        async with self._lock(url):
            cached = self._metadata.get(url)
            if cached and time.monotonic() - cached.fetched_at < self.cache_seconds:
                return dict(cached.value)
            doc = await self._get_json(url)
            if not isinstance(doc, dict) or "jwks_uri" not in doc or "issuer" not in doc:
                raise Unauthenticated("the issuer's OpenID metadata is incomplete")
            self._metadata[url] = _Cached(doc, time.monotonic())
            return doc

    async def _signing_key(self, jwks_uri: str, kid: str) -> jwt.PyJWK:
        cached = self._jwks.get(jwks_uri)
        fresh = cached is not None and time.monotonic() - cached.fetched_at < self.cache_seconds
        if fresh and cached is not None:
            key = cached.value.get(kid)
            if key is not None:
                return key  # type: ignore[no-any-return]
        async with self._lock(jwks_uri):
            cached = self._jwks.get(jwks_uri)
            age = time.monotonic() - cached.fetched_at if cached else None
            if cached is not None and kid in cached.value and age is not None and age < self.cache_seconds:
                return cached.value[kid]  # type: ignore[no-any-return]
            if cached is None or age is None or age >= self.cache_seconds or age >= self.refetch_interval:
                doc = await self._get_json(jwks_uri)
                self.jwks_fetches += 1
                try:
                    keyset = jwt.PyJWKSet.from_dict(doc)
                except jwt.PyJWTError:
                    raise Unauthenticated("the issuer's JWKS could not be read") from None
                keys = {k.key_id: k for k in keyset.keys if k.key_id}
                self._jwks[jwks_uri] = _Cached(keys, time.monotonic())
                cached = self._jwks[jwks_uri]
            key = cached.value.get(kid)
            if key is None:
                raise Unauthenticated("the token is signed with an unknown key (kid)")
            return key  # type: ignore[no-any-return]

    async def validate(self, token: str, known_tid: Callable[[str], Awaitable[bool]]) -> dict[str, Any]:
        """The verified claims of ``token``; raise ``Unauthenticated`` with a reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is neither a Rayplane API key nor a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted; only RS256 is")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token header has no kid")
        tid = unverified.get("tid")
        try:
            tid = str(uuid.UUID(str(tid)))
        except ValueError:
            raise Unauthenticated("the token has no valid tid claim") from None
        if not await known_tid(tid):
            raise Unauthenticated("the token's tenant (tid) is not a Rayplane tenant")
        if not self.audiences:
            raise Unauthenticated("Entra ID sign-in is not configured on this server (RAYPLANE_ENTRA_AUDIENCE)")
        metadata = await self._metadata_for(tid)
        issuer = str(metadata["issuer"]).replace("{tenantid}", tid)
        key = await self._signing_key(str(metadata["jwks_uri"]), kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audiences,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token's audience (aud) is not this API") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token's issuer (iss) does not match its tenant") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token signature does not verify") from None
        if not isinstance(claims.get("oid"), str) or not claims["oid"]:
            raise Unauthenticated("the token lacks the oid claim")
        if str(claims.get("tid")) != tid:
            raise Unauthenticated("the token's tid changed under verification")
        return claims

    async def validate_app(
        self, token: str, *, tenant_id: str, audience: str, app_ids: frozenset[str]
    ) -> dict[str, Any]:
        """The verified claims of an app-only token that ``app_ids`` obtained in ``tenant_id``
        for ``audience`` (a service calling us, e.g. the Marketplace's webhook).

        Same rules as ``validate`` (RS256 only; ``tid`` compared with ``tenant_id`` before
        anything is fetched; signature, ``iss``, ``aud``, ``exp``, ``nbf``), plus ``azp`` (v2
        tokens) or ``appid`` (v1) must be one of ``app_ids``. The v1 issuer
        ``https://sts.windows.net/<tid>/`` is accepted beside the metadata's v2 one when the
        authority is Microsoft's, since Entra signs both versions with the same keys.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted; only RS256 is")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token header has no kid")
        if str(unverified.get("tid", "")).lower() != tenant_id.lower():
            raise Unauthenticated("the token's tenant (tid) is not the expected one")
        metadata = await self._metadata_for(tenant_id)
        issuers = [str(metadata["issuer"]).replace("{tenantid}", tenant_id)]
        if self.authority == "https://login.microsoftonline.com":
            issuers.append(f"https://sts.windows.net/{tenant_id}/")
        key = await self._signing_key(str(metadata["jwks_uri"]), kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuers,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token's audience (aud) is not this application") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token's issuer (iss) does not match its tenant") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token signature does not verify") from None
        caller = claims.get("azp") or claims.get("appid")
        if not isinstance(caller, str) or caller.lower() not in {a.lower() for a in app_ids}:
            raise Unauthenticated("the token was not issued to the expected application (azp/appid)")
        return claims
