"""Local accounts of the embedded token issuer.

Passwords are stored only as argon2id hashes and never logged. A failed login costs the same
for an unknown user as for a wrong password (a dummy hash is checked), so the response time
does not tell which usernames exist.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select

from cardiogate.cloud.api.tables import api_users
from cardiogate.core.errors import PermanentError
from cardiogate.core.logs import get_logger

log = get_logger(__name__)

ROLES = ("nurse", "clinician", "operator", "admin")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


class UserError(PermanentError, ValueError):
    """A user that cannot be created as asked (bad name, role, site, weak password, duplicate)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    sites: tuple[str, ...]
    disabled: bool


def add_user(engine: Engine, username: str, password: str, role: str, sites: Iterable[str] = ()) -> User:
    """Create a local user (``cardiogate api user add``). Nurses and clinicians need at least one site."""
    site_list = tuple(sorted(set(sites)))
    if not _USERNAME.fullmatch(username):
        raise UserError(f"invalid username {username!r}: lowercase letters, digits, . _ @ - (at most 64)")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if bad := [s for s in site_list if not _SITE.fullmatch(s)]:
        raise UserError(f"invalid site id(s) {bad}")
    if role in ("nurse", "clinician") and not site_list:
        raise UserError(f"a {role} needs at least one site")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    with engine.begin() as conn:
        if conn.execute(select(api_users.c.username).where(api_users.c.username == username)).first():
            raise UserError(f"user {username!r} exists already")
        conn.execute(api_users.insert().values(username=username, password_hash=_hasher.hash(password), role=role,
                                               sites=json.dumps(list(site_list)), disabled=False,
                                               created_ns=time.time_ns()))
    log.info("api user added", username=username, role=role, sites=list(site_list))
    return User(username, role, site_list, False)


def set_disabled(engine: Engine, username: str, disabled: bool = True) -> bool:
    with engine.begin() as conn:
        return conn.execute(api_users.update().where(api_users.c.username == username)
                            .values(disabled=disabled)).rowcount > 0


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The user if the password matches and the account is enabled, else None."""
    with engine.connect() as conn:
        row = conn.execute(select(api_users).where(api_users.c.username == username)).first()
    try:
        _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(api_users.update().where(api_users.c.username == username)
                         .values(password_hash=_hasher.hash(password)))
    return User(row.username, row.role, tuple(json.loads(row.sites)), bool(row.disabled))
