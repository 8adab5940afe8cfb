"""A gateway's timeline for the fleet console: what changed, not every heartbeat.

Built from what the registry already keeps: the heartbeat history and the rollout events that
name the gateway. :func:`timeline` is pure: it walks the heartbeats in time order and emits an
entry where something changed (health, software version, a model version), where the gateway
fell silent for longer than ``silence_s`` and where it came back (a restart, a reboot or a lost
link look alike from here), plus every rollout event (shadow start, switch, refusal, rollback).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import strawberry
from sqlalchemy import Engine, select
from strawberry.scalars import JSON
from strawberry.types import Info

from cardiogate.cloud.api.access import FLEET_READ, site_filter
from cardiogate.cloud.api.context import context_of, permitted
from cardiogate.cloud.api.objects import ns_time, time_ns
from cardiogate.cloud.api.resolvers import bad_input, field
from cardiogate.cloud.registry.schema import gateways, heartbeats, rollout_events

SILENCE_S = 90.0  # three missed 30-s heartbeats
MAX_ENTRIES = 500


@dataclass(frozen=True)
class Beat:
    time_ns: int
    health: str
    software_version: str
    model_versions: dict[str, str]


@dataclass(frozen=True)
class RolloutEvent:
    time_ns: int
    rollout_id: str
    kind: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Entry:
    time_ns: int
    kind: str  # first_heartbeat, health, software, model, silent, back, rollout
    summary: str
    detail: dict[str, Any]


def timeline(beats: Sequence[Beat], events: Iterable[RolloutEvent], silence_s: float = SILENCE_S) -> list[Entry]:
    """Entries oldest first (heartbeats must come oldest first)."""
    out: list[Entry] = []
    previous: Beat | None = None
    for beat in beats:
        if previous is None:
            out.append(Entry(beat.time_ns, "first_heartbeat", f"first heartbeat: {beat.health}, "
                             f"software {beat.software_version}", {"models": beat.model_versions}))
        else:
            gap_s = (beat.time_ns - previous.time_ns) / 1e9
            if gap_s > silence_s:
                out.append(Entry(previous.time_ns, "silent", f"no heartbeat for {gap_s:.0f} s",
                                 {"seconds": round(gap_s, 1)}))
                out.append(Entry(beat.time_ns, "back", "heartbeats again (restart or link back)", {}))
            if beat.health != previous.health:
                out.append(Entry(beat.time_ns, "health", f"health {previous.health} -> {beat.health}",
                                 {"from": previous.health, "to": beat.health}))
            if beat.software_version != previous.software_version:
                out.append(Entry(beat.time_ns, "software",
                                 f"software {previous.software_version} -> {beat.software_version}",
                                 {"from": previous.software_version, "to": beat.software_version}))
            for name in sorted(set(beat.model_versions) | set(previous.model_versions)):
                old, new = previous.model_versions.get(name), beat.model_versions.get(name)
                if old != new:
                    out.append(Entry(beat.time_ns, "model", f"model {name}: {old or 'none'} -> {new or 'none'}",
                                     {"model": name, "from": old, "to": new}))
        previous = beat
    for e in events:
        who = f" by {e.actor}" if e.actor else ""
        out.append(Entry(e.time_ns, "rollout", f"rollout {e.rollout_id}: {e.kind}{who}",
                         {"rolloutId": e.rollout_id, "event": e.kind, **e.detail}))
    out.sort(key=lambda entry: entry.time_ns)
    return out[-MAX_ENTRIES:]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def load(engine: Engine, gateway_id: str, since_ns: int, only_sites: Sequence[str] | None) -> list[Entry] | None:
    """The gateway's entries since ``since_ns``; None when it is unknown or outside ``only_sites``."""
    with engine.connect() as conn:
        site = conn.execute(select(gateways.c.site_id).where(gateways.c.gateway_id == gateway_id)).first()
        if site is None or (only_sites is not None and site.site_id not in only_sites):
            return None
        h = heartbeats.c
        beats = [Beat(r.time_ns, r.health, r.software_version,
                      {str(k): str(v) for k, v in _json_object(r.model_versions).items()})
                 for r in conn.execute(select(h.time_ns, h.health, h.software_version, h.model_versions)
                                       .where(h.gateway_id == gateway_id, h.time_ns >= since_ns).order_by(h.time_ns))]
        e = rollout_events.c
        events = [RolloutEvent(r.time_ns, r.rollout_id, r.kind, r.actor, _json_object(r.detail))
                  for r in conn.execute(select(rollout_events).where(e.gateway_id == gateway_id, e.time_ns >= since_ns)
                                        .order_by(e.id))]
    return timeline(beats, events)


@strawberry.type
class TimelineEntry:
    time: datetime | None
    kind: str
    summary: str
    detail: JSON


@strawberry.type
class FleetQuery:
    @field("A gateway's timeline since `since` (default: the last 24 h): health, software and model changes, "
           "silences and returns (restarts), rollout events; oldest first, at most 500.")
    async def gateway_timeline(self, info: Info[Any, Any], gateway_id: strawberry.ID,
                               since: datetime | None = None) -> list[TimelineEntry]:
        caller = permitted(info, FLEET_READ)
        now_ns = time_ns(datetime.now(UTC))
        start_ns = time_ns(since) if since is not None else now_ns - int(timedelta(days=1).total_seconds() * 1e9)
        if start_ns > now_ns:
            raise bad_input("since lies in the future")
        scope = site_filter(caller.principal)
        engine = context_of(info).services.data.engine
        entries = await asyncio.to_thread(load, engine, str(gateway_id), start_ns,
                                          None if scope is None else sorted(scope))
        if entries is None:
            raise bad_input(f"no gateway {str(gateway_id)!r} you may see")
        return [TimelineEntry(time=ns_time(e.time_ns), kind=e.kind, summary=e.summary, detail=cast(JSON, e.detail))
                for e in entries]

