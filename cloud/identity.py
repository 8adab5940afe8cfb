"""Gateway identity in the cloud database: enrollment tokens, issued certificates, revocation.

Tokens are random, stored only as their SHA-256, bound to one gateway id, expire,
and are consumed with a compare-and-set so that two replicas racing on the same
token cannot both issue a certificate. Revocation is a table the ingest reads on
every new stream, so it takes effect without restarting anything.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import Engine, select, update

from cardiogate.cloud.db import certificates, enrollment_tokens, insert_for, revoked_certificates
from cardiogate.cloud.pki import GATEWAY_ID
from cardiogate.core.errors import PermanentError


class EnrollmentRefused(PermanentError):
    """The token is unknown, used, expired or for another gateway (deliberately not said which)."""


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain hash is enough; no slow KDF is needed.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(engine: Engine, gateway_id: str, ttl_s: float, now_ns: int | None = None) -> str:
    """A new one-time enrollment token for ``gateway_id``; shown once, stored hashed."""
    if not GATEWAY_ID.fullmatch(gateway_id):
        raise ValueError(f"invalid gateway id {gateway_id!r}")
    token = secrets.token_urlsafe(32)
    now = time.time_ns() if now_ns is None else now_ns
    with engine.begin() as conn:
        conn.execute(enrollment_tokens.insert().values(token_hash=token_hash(token), gateway_id=gateway_id,
                                                       created_ns=now, expires_ns=now + int(ttl_s * 1e9)))
    return token


def consume_token(engine: Engine, gateway_id: str, token: str, now_ns: int | None = None) -> str:
    """Mark the token used (once, atomically); returns its hash to link the issued certificate."""
    now = time.time_ns() if now_ns is None else now_ns
    digest = token_hash(token)
    with engine.begin() as conn:
        done = conn.execute(update(enrollment_tokens)
                            .where(enrollment_tokens.c.token_hash == digest,
                                   enrollment_tokens.c.gateway_id == gateway_id,
                                   enrollment_tokens.c.used_ns.is_(None),
                                   enrollment_tokens.c.expires_ns > now)
                            .values(used_ns=now))
    if done.rowcount != 1:
        raise EnrollmentRefused("enrollment token is invalid, expired, already used or not for this gateway")
    return digest


def record_certificate(engine: Engine, token_digest: str | None, gateway_id: str, serial: str,
                       not_before_ns: int, not_after_ns: int) -> None:
    """Remember an issued certificate: only known serials are accepted by the ingest."""
    with engine.begin() as conn:
        conn.execute(certificates.insert().values(serial=serial, gateway_id=gateway_id, not_before_ns=not_before_ns,
                                                  not_after_ns=not_after_ns, issued_ns=time.time_ns()))
        if token_digest is not None:
            conn.execute(update(enrollment_tokens).where(enrollment_tokens.c.token_hash == token_digest)
                         .values(used_serial=serial))


def revoke_serial(engine: Engine, serial: str, reason: str = "") -> bool:
    """Revoke one certificate; False if the CA never issued it (it is listed anyway)."""
    serial = serial.lower().removeprefix("0x")
    with engine.begin() as conn:
        owner = conn.execute(select(certificates.c.gateway_id).where(certificates.c.serial == serial)).scalar()
        stmt = insert_for(conn, revoked_certificates).values(serial=serial, gateway_id=owner or "",
                                                             revoked_ns=time.time_ns(), reason=reason)
        conn.execute(stmt.on_conflict_do_nothing())
    return owner is not None


def revoke_gateway(engine: Engine, gateway_id: str, reason: str = "") -> list[str]:
    """Revoke every certificate ever issued to the gateway; returns their serials."""
    with engine.begin() as conn:
        serials = list(conn.execute(select(certificates.c.serial)
                                    .where(certificates.c.gateway_id == gateway_id)).scalars())
        for serial in serials:
            stmt = insert_for(conn, revoked_certificates).values(serial=serial, gateway_id=gateway_id,
                                                                 revoked_ns=time.time_ns(), reason=reason)
            conn.execute(stmt.on_conflict_do_nothing())
    return serials


def certificate_status(engine: Engine, serial: str) -> str:
    """"ok", "revoked", or "unknown" (never issued by enrollment: refused too, so a certificate
    signed outside the database cannot bypass revocation)."""
    with engine.connect() as conn:
        revoked = conn.execute(select(revoked_certificates.c.serial)
                               .where(revoked_certificates.c.serial == serial)).first()
        if revoked is not None:
            return "revoked"
        known = conn.execute(select(certificates.c.serial).where(certificates.c.serial == serial)).first()
    return "ok" if known is not None else "unknown"
