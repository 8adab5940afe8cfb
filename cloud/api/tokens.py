"""Access tokens: the embedded issuer (Ed25519-signed JWTs) and the verifier every request goes through.

The verifier trusts keys only from the configured issuer's JWKS (the embedded issuer's own, or
an external OIDC provider's, fetched and cached), and only public-key algorithms from an
allowlist; the algorithm a token names must also be the one its key is for, so a token can
never pick "none" or turn a public key into an HMAC secret. ``iss``, ``aud``, ``exp``, ``iat``
and ``sub`` are required; ``nbf`` is honoured when present.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardiogate.cloud.api.settings import ApiAuthSettings
from cardiogate.cloud.api.users import ROLES, User
from cardiogate.core.errors import PermanentError
from cardiogate.core.logs import get_logger

log = get_logger(__name__)


class AuthError(PermanentError):
    """A token (or login) that cannot be accepted; ``reason`` is a short, bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who is calling, as their verified token says."""

    subject: str
    role: str
    sites: frozenset[str]
    token_id: str = ""
    expires: int = 0


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The issuer's signing key; generated on first start, written owner-only (0600) and never overwritten."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another replica made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            log.info("api issuer key created", path=str(path))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuthError("config", f"{path} is not an Ed25519 private key")
    return key


class Issuer:
    """Signs short-lived EdDSA tokens for local users and publishes the public key as a JWKS."""

    def __init__(self, key: Ed25519PrivateKey, settings: ApiAuthSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._settings = settings
        self._clock = clock
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        jwk: dict[str, Any] = dict(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True))
        self._jwks = {"keys": [{**jwk, "kid": self.key_id, "alg": "EdDSA", "use": "sig"}]}

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def issue(self, user: User) -> tuple[str, int]:
        """A token for ``user`` and its lifetime in seconds."""
        now = int(self._clock())
        ttl = self._settings.token_ttl_s
        claims = {"sub": user.username, "role": user.role, "sites": list(user.sites), "iss": self._settings.issuer,
                  "aud": self._settings.audience, "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.key_id}), ttl


JwksSource = Callable[[], Awaitable[Mapping[str, Any]]]


def remote_jwks(url: str, timeout_s: float = 5.0) -> JwksSource:
    """Fetches an external provider's JWKS."""
    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: Mapping[str, Any] = response.json()
            return data
    return fetch


class TokenVerifier:
    """Checks bearer tokens against the issuer's keys; an unknown ``kid`` refreshes the cache (at most every 30 s)."""

    MIN_REFRESH_S = 30.0

    def __init__(self, settings: ApiAuthSettings, source: JwksSource, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._source = source
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def embedded(cls, settings: ApiAuthSettings, issuer: Issuer) -> TokenVerifier:
        async def local() -> Mapping[str, Any]:
            return issuer.jwks()
        return cls(settings, local)

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is not None and (age < self.MIN_REFRESH_S or (not force and age < self._settings.jwks_cache_s)):
                return
            try:
                data = await self._source()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("jwks fetch failed", error=str(exc))
                if self._fetched_at is None:
                    raise AuthError("jwks_unavailable", "the token issuer's keys cannot be fetched") from exc
                return
            keys: dict[str, jwt.PyJWK] = {}
            for jwk in data.get("keys", []):
                try:
                    key = jwt.PyJWK(jwk)
                except jwt.PyJWTError:
                    continue  # a key type or curve we do not accept
                if key.algorithm_name in self._settings.algorithms and jwk.get("use", "sig") == "sig":
                    keys[str(jwk.get("kid", ""))] = key
            self._keys, self._fetched_at = keys, now

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed", "the token is not a JWT") from exc
        alg, kid = header.get("alg"), str(header.get("kid", ""))
        if alg not in self._settings.algorithms:
            raise AuthError("algorithm", f"token algorithm {alg!r} is not accepted")
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise AuthError("unknown_key", "the token was not signed by a key of the issuer")
        if key.algorithm_name != alg:
            raise AuthError("algorithm", f"token algorithm {alg!r} does not match its key")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self._settings.audience,
                                issuer=self._settings.issuer, leeway=self._settings.leeway_s,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("expired", "the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("audience", "the token is not for this API") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("issuer", "the token is from another issuer") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("not_yet_valid", "the token is not valid yet") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("signature", "the token's signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("invalid", f"the token is invalid: {exc}") from exc
        role = claims.get("role")
        sites = claims.get("sites", [])
        if role not in ROLES or not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
            raise AuthError("claims", "the token carries no valid role and sites")
        return Principal(str(claims["sub"]), role, frozenset(sites), str(claims.get("jti", "")), int(claims["exp"]))


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (or a bare token), else None."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip() or None
    return None if rest else scheme
