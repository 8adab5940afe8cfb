"""Who may do what on the local MQTT plane: identities, roles and per-identity command topics.

Every client of the site's broker logs in as its own identity (the broker username), and
each identity has one role. A command is sent on a topic that ends in the sender's identity,
``<prefix>/<site>/<patient>/commands/<identity>`` or
``<prefix>/<site>/gateway/<gateway_id>/commands/<identity>``, and the broker's ACL lets an
identity publish only on its own topics. So the last topic level is the identity the broker
authenticated, and the gateway judges the command by that identity's role, never by the
``by`` a payload claims. The identity -> role map is the file ``cardiogate gateway mqtt-setup``
writes beside the broker's files (no secrets in it); the gateway re-reads it when it changes,
so an identity added or removed during a credential rotation takes effect without a restart.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cardiogate.core.settings import ConfigError

Role = Literal["gateway", "nurse", "clinician", "admin", "viewer"]
ROLES: tuple[Role, ...] = ("gateway", "nurse", "clinician", "admin", "viewer")

# What each role may command. The gateway publishes and reads; a viewer (a dashboard) only reads.
PERMITTED: Mapping[Role, frozenset[str]] = {
    "gateway": frozenset(),
    "viewer": frozenset(),
    "nurse": frozenset({"acknowledge", "silence", "unsilence"}),
    "clinician": frozenset({"acknowledge", "silence", "unsilence", "set_limits"}),
    "admin": frozenset({"pair", "unpair"}),
}
# Broker usernames become topic levels, so no '/', '+', '#' or '$'; the same rule as gateway ids.
IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PATIENT_LEAVES = ("alarms", "alarm_state", "audit", "vitals", "state")  # what the gateway publishes per patient
IDENTITIES_SCHEMA = 1

Refusal = Callable[[str], str | None]  # command name -> why the sender may not, or None when it may


def patient_command_topic(prefix: str, site: str, patient: str, identity: str) -> str:
    return f"{prefix}/{site}/{patient}/commands/{identity}"


def gateway_command_topic(prefix: str, site: str, gateway_id: str, identity: str) -> str:
    return f"{prefix}/{site}/gateway/{gateway_id}/commands/{identity}"


def sender_of(topic: str) -> str | None:
    """The identity a command topic ends in, or None for the old topics without one."""
    parts = topic.split("/")
    if len(parts) >= 2 and parts[-2] == "commands" and IDENTITY.fullmatch(parts[-1]):
        return parts[-1]
    return None


@dataclass(frozen=True, slots=True)
class Identities:
    """The site's identities and their roles."""

    site: str
    roles: Mapping[str, Role]

    def refusal(self, identity: str | None) -> Refusal:
        """What this sender may not do (every command, for a topic without an identity or an unknown one)."""
        if identity is None:
            return lambda command: (f"{command} refused: commands are obeyed only on .../commands/<identity> "
                                    "topics, sent by an authenticated identity")
        role = self.roles.get(identity)
        if role is None:
            return lambda command: f"{command} refused: {identity!r} is not an identity of site {self.site}"
        allowed = PERMITTED[role]
        return lambda command: None if command in allowed else (
            f"{command} refused: identity {identity!r} has role {role}, which may not {command}")

    def to_json(self) -> str:
        return json.dumps({"schema": IDENTITIES_SCHEMA, "site": self.site, "identities": dict(sorted(
            self.roles.items()))}, indent=2) + "\n"


def parse_identities(text: str, source: str = "identities") -> Identities:
    """The identity file's content (ValueError naming what is wrong)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != IDENTITIES_SCHEMA:
        raise ValueError(f"{source}: expected a JSON object with schema {IDENTITIES_SCHEMA}")
    site, raw = doc.get("site"), doc.get("identities")
    if not isinstance(site, str) or not isinstance(raw, dict):
        raise ValueError(f"{source}: needs 'site' (a string) and 'identities' (an object of identity: role)")
    roles: dict[str, Role] = {}
    for identity, role in raw.items():
        matched = next((r for r in ROLES if r == role), None)
        if not IDENTITY.fullmatch(identity) or matched is None:
            raise ValueError(f"{source}: bad entry {identity!r}: {role!r} (roles: {', '.join(ROLES)})")
        roles[identity] = matched
    return Identities(site, roles)


class IdentityFile:
    """The identity file, re-read when it changes; a broken rewrite keeps the last good content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._current = self._read()

    def _read(self) -> Identities:
        st = os.stat(self.path)
        identities = parse_identities(self.path.read_text(encoding="utf-8"), str(self.path))
        self._stamp = (st.st_mtime_ns, st.st_size)
        return identities

    def current(self) -> Identities:
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._current = self._read()
        except (OSError, ValueError):
            pass  # keep judging by the last good file; a half-written one must not open or close the plane
        return self._current


def open_identity_file(path: Path | None, gateway_id: str, username: str | None) -> IdentityFile | None:
    """The gateway's identity file, None for an open plane (ConfigError when it cannot be used).

    The gateway's own identity must be its gateway_id with the gateway role: the ACL grants its
    events topic by that name, and a mismatch would lose every answer to a command silently.
    """
    if path is None:
        return None
    try:
        identities = IdentityFile(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"mqtt.identities_file: {exc}".splitlines()[0]) from None
    if username is not None and username != gateway_id:
        raise ConfigError(f"mqtt.username {username!r} must be the gateway_id {gateway_id!r} (its broker identity)")
    if identities.current().roles.get(gateway_id) != "gateway":
        raise ConfigError(f"mqtt.identities_file: {gateway_id!r} is not listed with the gateway role; re-run "
                          "`cardiogate gateway mqtt-setup` with --identity <gateway_id>:gateway")
    return identities


def sender(identities: IdentityFile | None, topic: str) -> tuple[str, Refusal] | None:
    """Who sent a command on ``topic`` and what that identity may not do; None on an open plane."""
    if identities is None:
        return None
    identity = sender_of(topic)
    return identity or "anonymous", identities.current().refusal(identity)
