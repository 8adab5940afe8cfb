"""The fleet registry: sites, gateways and their tags, devices, patient pseudonyms, who is
assigned where, and what each gateway last said about itself.

Assignments are the ingest's own ``assignments`` table, written through cardiogate.cloud.authz:
assigning a patient's device to a gateway here is exactly what authorises that gateway
to send for it.
Heartbeats are kept as history and summarised on the gateway row for cheap listing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from cardiogate.cloud import authz
from cardiogate.cloud.db import ANY_DEVICE, insert_for
from cardiogate.cloud.registry.schema import devices, gateway_tags, gateways, heartbeats, patients, sites
from cardiogate.core.errors import PermanentError
from cardiogate.proto.v1 import fleet_pb2

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class FleetError(PermanentError):
    """A request the registry refuses (bad identifier, unknown site, ...)."""


def _check_id(kind: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise FleetError(f"invalid {kind} {value!r}")
    return value


@dataclass(frozen=True)
class GatewayRecord:
    gateway_id: str
    site_id: str | None
    tags: tuple[str, ...]
    created_ns: int
    last_seen_ns: int | None
    software_version: str
    model_versions: dict[str, str]
    health: str
    outbox_records: int
    connected_devices: int


@dataclass(frozen=True)
class Heartbeat:
    gateway_id: str
    time_ns: int
    software_version: str = ""
    model_versions: dict[str, str] = field(default_factory=dict)
    health: str = ""
    outbox_records: int = 0
    outbox_bytes: int = 0
    oldest_unsent_age_ms: int = 0
    devices: tuple[dict[str, Any], ...] = ()
    received_ns: int = 0

    @property
    def connected_devices(self) -> int:
        return sum(1 for d in self.devices if d.get("connected"))


def heartbeat_from_proto(msg: fleet_pb2.GatewayHeartbeat, received_ns: int | None = None) -> Heartbeat:
    """The registry's record of one gRPC heartbeat."""
    devs = tuple({"device_id": d.device_id, "patient": d.patient, "connected": d.connected,
                  "rssi_dbm": d.rssi_dbm if d.HasField("rssi_dbm") else None,
                  "battery_percent": d.battery_percent if d.HasField("battery_percent") else None,
                  "last_seen_ns": d.last_seen_ns} for d in msg.devices)
    return Heartbeat(msg.gateway_id, msg.time_ns, msg.software_version, dict(msg.model_versions), msg.health,
                     msg.outbox_records, msg.outbox_bytes, msg.oldest_unsent_age_ms, devs,
                     time.time_ns() if received_ns is None else received_ns)


class FleetRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- sites, gateways, tags ----------------------------------------------------------------
    def add_site(self, site_id: str, name: str = "") -> None:
        _check_id("site id", site_id)
        with self.engine.begin() as conn:
            stmt = insert_for(conn, sites).values(site_id=site_id, name=name, created_ns=time.time_ns())
            conn.execute(stmt.on_conflict_do_update(index_elements=["site_id"], set_={"name": name}))

    def sites(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.site_id, r.name) for r in conn.execute(select(sites).order_by(sites.c.site_id))]

    def add_gateway(self, gateway_id: str, site_id: str | None = None, tags: Iterable[str] = ()) -> None:
        """Register (or move) a gateway; its tags are replaced by ``tags``."""
        _check_id("gateway id", gateway_id)
        with self.engine.begin() as conn:
            self._require_site(conn, site_id)
            self._ensure_gateway(conn, gateway_id)
            conn.execute(update(gateways).where(gateways.c.gateway_id == gateway_id).values(site_id=site_id))
            self._replace_tags(conn, gateway_id, tags)

    def set_tags(self, gateway_id: str, tags: Iterable[str]) -> None:
        with self.engine.begin() as conn:
            if conn.execute(select(gateways.c.gateway_id).where(gateways.c.gateway_id == gateway_id)).first() is None:
                raise FleetError(f"unknown gateway {gateway_id!r}")
            self._replace_tags(conn, gateway_id, tags)

    def gateway(self, gateway_id: str) -> GatewayRecord | None:
        found = self.gateways(ids=[gateway_id])
        return found[0] if found else None

    def gateways(self, *, site: str | None = None, tag: str | None = None,
                 ids: Sequence[str] | None = None) -> list[GatewayRecord]:
        query = select(gateways).order_by(gateways.c.gateway_id)
        if site is not None:
            query = query.where(gateways.c.site_id == site)
        if ids is not None:
            query = query.where(gateways.c.gateway_id.in_(list(ids)))
        if tag is not None:
            query = query.where(gateways.c.gateway_id.in_(select(gateway_tags.c.gateway_id)
                                                          .where(gateway_tags.c.tag == tag)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            tags: dict[str, list[str]] = {}
            for t in conn.execute(select(gateway_tags).order_by(gateway_tags.c.tag)):
                tags.setdefault(t.gateway_id, []).append(t.tag)
        return [GatewayRecord(r.gateway_id, r.site_id, tuple(tags.get(r.gateway_id, ())), r.created_ns,
                              r.last_seen_ns, r.software_version, json.loads(r.model_versions), r.health,
                              r.outbox_records, r.connected_devices) for r in rows]

    def cohort(self, sites_: Sequence[str] = (), tags: Sequence[str] = ()) -> list[str]:
        """Gateways at any of ``sites_`` (all sites if empty) carrying any of ``tags`` (any if empty)."""
        query = select(gateways.c.gateway_id).order_by(gateways.c.gateway_id)
        if sites_:
            query = query.where(gateways.c.site_id.in_(list(sites_)))
        if tags:
            query = query.where(gateways.c.gateway_id.in_(select(gateway_tags.c.gateway_id)
                                                          .where(gateway_tags.c.tag.in_(list(tags)))))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    # -- devices, patients, assignments -------------------------------------------------------
    def add_device(self, device_id: str, kind: str = "", name: str = "", site_id: str | None = None) -> None:
        _check_id("device id", device_id)
        with self.engine.begin() as conn:
            self._require_site(conn, site_id)
            stmt = insert_for(conn, devices).values(device_id=device_id, kind=kind, name=name, site_id=site_id,
                                                    created_ns=time.time_ns())
            conn.execute(stmt.on_conflict_do_update(index_elements=["device_id"],
                                                    set_={"kind": kind, "name": name, "site_id": site_id}))

    def add_patient(self, pseudonym: str, site_id: str | None = None) -> None:
        """Only pseudonyms are stored: the registry never holds a name or a record number."""
        if not re.fullmatch(r"^[a-z0-9][a-z0-9-]{2,63}$", pseudonym):
            raise FleetError(f"invalid patient pseudonym {pseudonym!r}")
        with self.engine.begin() as conn:
            self._require_site(conn, site_id)
            stmt = insert_for(conn, patients).values(pseudonym=pseudonym, site_id=site_id, created_ns=time.time_ns())
            conn.execute(stmt.on_conflict_do_update(index_elements=["pseudonym"], set_={"site_id": site_id}))

    def assign(self, patient: str, gateway_id: str, device_id: str = ANY_DEVICE) -> bool:
        """Allow ``gateway_id`` to send ``patient``'s data from ``device_id`` (or any); the ingest's
        own authorisation call, so both always agree. False if it was already allowed."""
        try:
            return authz.assign(self.engine, gateway_id, patient, device_id)
        except ValueError as exc:
            raise FleetError(str(exc)) from None

    def unassign(self, patient: str, gateway_id: str, device_id: str | None = None) -> int:
        """Withdraw the patient's assignment to the gateway (every device unless one is named)."""
        return authz.unassign(self.engine, gateway_id, patient, device_id)

    def assignments(self, *, gateway_id: str | None = None, patient: str | None = None) -> list[tuple[str, str, str]]:
        """(gateway, patient, device) rows."""
        rows = authz.list_assignments(self.engine, gateway_id)
        return [r for r in rows if patient is None or r[1] == patient]

    # -- heartbeats ---------------------------------------------------------------------------
    def record_heartbeat(self, hb: Heartbeat) -> None:
        """Keep the heartbeat and refresh the gateway's summary (an unknown gateway is registered, site-less)."""
        _check_id("gateway id", hb.gateway_id)
        received = hb.received_ns or time.time_ns()
        models = json.dumps(hb.model_versions, sort_keys=True)
        with self.engine.begin() as conn:
            self._ensure_gateway(conn, hb.gateway_id)
            conn.execute(heartbeats.insert().values(
                gateway_id=hb.gateway_id, time_ns=hb.time_ns, received_ns=received,
                software_version=hb.software_version, model_versions=models, health=hb.health,
                outbox_records=hb.outbox_records, outbox_bytes=hb.outbox_bytes,
                oldest_unsent_age_ms=hb.oldest_unsent_age_ms, connected_devices=hb.connected_devices,
                devices=json.dumps(list(hb.devices), sort_keys=True)))
            conn.execute(update(gateways).where(gateways.c.gateway_id == hb.gateway_id).values(
                last_seen_ns=received, software_version=hb.software_version, model_versions=models, health=hb.health,
                outbox_records=hb.outbox_records, outbox_bytes=hb.outbox_bytes,
                oldest_unsent_age_ms=hb.oldest_unsent_age_ms, connected_devices=hb.connected_devices))

    def heartbeats(self, gateway_id: str, limit: int = 100) -> list[Heartbeat]:
        """The most recent heartbeats, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(heartbeats).where(heartbeats.c.gateway_id == gateway_id)
                                .order_by(heartbeats.c.received_ns.desc(), heartbeats.c.id.desc())
                                .limit(limit)).all()
        return [Heartbeat(r.gateway_id, r.time_ns, r.software_version, json.loads(r.model_versions), r.health,
                          r.outbox_records, r.outbox_bytes, r.oldest_unsent_age_ms, tuple(json.loads(r.devices)),
                          r.received_ns) for r in rows]

    def prune_heartbeats(self, older_than_ns: int) -> int:
        """Drop history older than ``older_than_ns`` (the gateway summaries stay)."""
        with self.engine.begin() as conn:
            return conn.execute(delete(heartbeats).where(heartbeats.c.received_ns < older_than_ns)).rowcount

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _require_site(conn: Connection, site_id: str | None) -> None:
        if site_id is not None and conn.execute(select(sites.c.site_id)
                                                .where(sites.c.site_id == site_id)).first() is None:
            raise FleetError(f"unknown site {site_id!r}: add it first")

    @staticmethod
    def _ensure_gateway(conn: Connection, gateway_id: str) -> None:
        stmt = insert_for(conn, gateways).values(
            gateway_id=gateway_id, site_id=None, created_ns=time.time_ns(), software_version="",
            model_versions="{}", health="", outbox_records=0, outbox_bytes=0, oldest_unsent_age_ms=0,
            connected_devices=0)
        conn.execute(stmt.on_conflict_do_nothing())

    @staticmethod
    def _replace_tags(conn: Connection, gateway_id: str, tags: Iterable[str]) -> None:
        wanted = sorted({_check_id("tag", t) for t in tags})
        conn.execute(delete(gateway_tags).where(gateway_tags.c.gateway_id == gateway_id))
        if wanted:
            conn.execute(gateway_tags.insert(), [{"gateway_id": gateway_id, "tag": t} for t in wanted])
