"""Which gateway may send data for which patient pseudonym (and, optionally, which device).

An assignment is (gateway, patient, device) with device ``*`` meaning any device. A
batch is authorized only if every record is covered; otherwise nothing of it is
written. Assignments are read through a short-TTL cache: a new assignment takes
effect at once (a refusal re-reads before it refuses), a removed one within the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, select

from cardiogate.cloud.db import ANY_DEVICE, assignments, insert_for
from cardiogate.cloud.pki import GATEWAY_ID
from cardiogate.proto.v1 import telemetry_pb2 as pb


@dataclass(frozen=True)
class Grants:
    """One gateway's assignments: patient -> devices it may send from (``*`` = any)."""

    by_patient: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, patient: str, device_id: str) -> bool:
        devices = self.by_patient.get(patient)
        return devices is not None and (ANY_DEVICE in devices or device_id in devices)


def first_unauthorized(records: Iterable[pb.Record], grants: Grants) -> pb.Record | None:
    """The first record the gateway may not send, or None if all are covered."""
    for r in records:
        if not grants.allows(r.patient, r.device_id):
            return r
    return None


# -- administration ---------------------------------------------------------------------------------


def assign(engine: Engine, gateway_id: str, patient: str, device_id: str = ANY_DEVICE) -> bool:
    """Allow the gateway to send for the patient (from one device, or any); False if already so."""
    if not GATEWAY_ID.fullmatch(gateway_id):
        raise ValueError(f"invalid gateway id {gateway_id!r}")
    with engine.begin() as conn:
        stmt = insert_for(conn, assignments).values(gateway_id=gateway_id, patient=patient, device_id=device_id,
                                                    created_ns=time.time_ns())
        return conn.execute(stmt.on_conflict_do_nothing().returning(assignments.c.patient)).first() is not None


def unassign(engine: Engine, gateway_id: str, patient: str, device_id: str | None = None) -> int:
    """Remove the patient's assignments to the gateway (all devices unless one is named)."""
    stmt = delete(assignments).where(assignments.c.gateway_id == gateway_id, assignments.c.patient == patient)
    if device_id is not None:
        stmt = stmt.where(assignments.c.device_id == device_id)
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount


def list_assignments(engine: Engine, gateway_id: str | None = None) -> list[tuple[str, str, str]]:
    stmt = select(assignments.c.gateway_id, assignments.c.patient, assignments.c.device_id).order_by(
        assignments.c.gateway_id, assignments.c.patient, assignments.c.device_id)
    if gateway_id is not None:
        stmt = stmt.where(assignments.c.gateway_id == gateway_id)
    with engine.connect() as conn:
        return [(str(g), str(p), str(d)) for g, p, d in conn.execute(stmt)]


def load_grants(engine: Engine, gateway_id: str) -> Grants:
    by_patient: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for patient, device in conn.execute(select(assignments.c.patient, assignments.c.device_id)
                                            .where(assignments.c.gateway_id == gateway_id)):
            by_patient.setdefault(str(patient), set()).add(str(device))
    return Grants({p: frozenset(d) for p, d in by_patient.items()})


class GrantCache:
    """Per-gateway grants, each reused for ``ttl_s`` (0: read for every batch)."""

    def __init__(self, loader: Callable[[str], Grants], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._ttl = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, Grants]] = {}
        self.loads = 0

    def cached(self, gateway_id: str) -> Grants | None:
        entry = self._entries.get(gateway_id)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def load(self, gateway_id: str) -> Grants:
        """Read from the database (blocking) and cache."""
        grants = self._loader(gateway_id)
        self.loads += 1
        self._entries[gateway_id] = (self._clock(), grants)
        return grants
