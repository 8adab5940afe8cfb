"""The rollout controller: one API for operators (start, pause, resume, promote, abort, status)
and for gateways (assignment, chunks, reports), over the registries and the pure rules.

Everything is persisted: a restarted or second cloud replica continues the same
rollout. Concurrent replicas cannot apply one decision twice because every state change
is a compare-and-set on (state, stage). The gRPC service and the CLI call these methods;
a REST dashboard can call the same ones.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.models import CHALLENGER, CHAMPION, ModelRegistry
from cardiogate.cloud.registry.schema import rollout_events, rollout_members, rollouts
from cardiogate.cloud.registry.signing import Signer, sign_rollback_order
from cardiogate.cloud.rollout.decide import (
    ABORTED,
    COMPLETED,
    PAUSED,
    RUNNING,
    SKIP_CODES,
    Decision,
    MemberView,
    RolloutView,
    evaluate,
    member_action,
    order_cohort,
    stage_of,
)
from cardiogate.cloud.rollout.plan import RolloutPlan, stage_sizes
from cardiogate.core import metrics as registry
from cardiogate.core.artifacts import parse_version
from cardiogate.core.errors import PermanentError
from cardiogate.core.logs import get_logger
from cardiogate.proto.contracts import UpdateAction, UpdaterPhase

log = get_logger(__name__)
FINISHED = registry.counter("rollouts_finished", "Rollouts ended, by outcome (completed, promoted, aborted).",
                            ("outcome",))
for _outcome in ("completed", "promoted", "aborted"):
    FINISHED.labels(outcome=_outcome)  # every outcome is a series from the start, at 0

DAY_NS = 86_400 * 10**9


class RolloutError(PermanentError):
    """An operator request that cannot be applied (unknown rollout, wrong state, ...)."""


@dataclass(frozen=True)
class AssignmentOut:
    """What the gateway should do (the gRPC Assignment, without protobuf)."""

    action: UpdateAction
    version: str = ""
    rollout_id: str = ""
    signed_manifest: bytes = b""
    rollback_order: bytes = b""
    bake_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class GatewayReport:
    """An updater's report (the gRPC UpdaterReport, without protobuf)."""

    gateway_id: str
    model: str
    state: str
    active_version: str = ""
    candidate_version: str = ""
    rollout_id: str = ""
    windows: int = 0
    agreements: int = 0
    shadow_s: float = 0.0
    candidate_p99_ms: float = 0.0
    live_p99_ms: float = 0.0
    candidate_alarm_rate: float = 0.0
    live_alarm_rate: float = 0.0
    candidate_errors: int = 0
    load_failures: int = 0
    crashes: int = 0
    refusal_code: str = ""
    refusal_detail: str = ""
    alarm_active: bool = False


@dataclass(frozen=True)
class RolloutEvent:
    time_ns: int
    kind: str
    gateway_id: str | None
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class RolloutStatus:
    rollout_id: str
    model: str
    candidate_version: str
    baseline_version: str | None
    state: str
    stage: int
    sizes: tuple[int, ...]
    decision: str
    plan: RolloutPlan
    created_ns: int
    finished_ns: int | None
    members: tuple[tuple[MemberView, str], ...]  # with each gateway's refusal detail

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["members"] = [dict(asdict(m), refusal_detail=d) for m, d in self.members]
        return doc


# A member in one of these phases never ran the candidate live: an abort just discards it.
_UNSWITCHED = frozenset({UpdaterPhase.DOWNLOADING, UpdaterPhase.VERIFYING, UpdaterPhase.STAGED, UpdaterPhase.SHADOW,
                         UpdaterPhase.IDLE})
_FIGURES = ("windows", "agreements", "shadow_s", "candidate_p99_ms", "live_p99_ms", "candidate_alarm_rate",
            "live_alarm_rate", "candidate_errors", "load_failures", "crashes")


def _member(row: Row[Any]) -> MemberView:
    m = row._mapping
    figures = json.loads(m["figures"])
    return MemberView(m["gateway_id"], int(m["stage"]), m["status"], m["active_version"], bool(m["alarm_active"]),
                      **{k: figures[k] for k in _FIGURES if k in figures}, refusal_code=m["refusal_code"],
                      last_report_ns=m["last_report_ns"])


class RolloutController:
    def __init__(self, engine: Engine, models: ModelRegistry, fleet: FleetRegistry, signer: Signer | None, *,
                 poll_s: float = 30.0, chunk_bytes: int = 256 * 1024, rollback_ttl_s: float = 2 * 86400.0,
                 report_tick_s: float = 1.0, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.engine = engine
        self.models = models
        self.fleet = fleet
        self.signer = signer
        self.poll_s = poll_s
        self.chunk_bytes = chunk_bytes
        self.rollback_ttl_s = rollback_ttl_s
        self.report_tick_s = report_tick_s
        self._now = clock_ns
        self._last_tick: dict[str, int] = {}

    # -- operator API -------------------------------------------------------------------------
    def start(self, model: str, version: str, plan: RolloutPlan, actor: str = "") -> str:
        """Begin a staged rollout of ``version`` against the champion; returns its id."""
        plan.check()
        self.models.require(model, version)
        champion = self.models.alias(model, CHAMPION)
        if champion is None:
            raise RolloutError(f"{model} has no champion to compare against: promote one first "
                               "(`cardiogate models promote`)")
        if parse_version(version) <= parse_version(champion):
            raise RolloutError(f"{version} is not newer than the champion {champion}")
        if self.active(model) is not None:
            raise RolloutError(f"{model} already has a rollout in progress; abort or finish it first")
        cohort = self.fleet.cohort(plan.sites, plan.tags)
        if not cohort:
            raise RolloutError("the plan's sites/tags match no registered gateway")
        rollout_id = f"ro-{secrets.token_hex(5)}"
        ordered = order_cohort(rollout_id, cohort, plan.canary)
        sizes = stage_sizes(len(ordered), plan)
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(rollouts.insert().values(
                rollout_id=rollout_id, model=model, candidate_version=version, baseline_version=champion,
                plan=plan.to_json(), state=RUNNING, stage=0, stage_sizes=json.dumps(sizes), stage_started_ns=now,
                decision="started", created_ns=now, updated_ns=now, finished_ns=None, created_by=actor))
            conn.execute(rollout_members.insert(), [
                {"rollout_id": rollout_id, "gateway_id": g, "position": i, "stage": stage_of(i, sizes),
                 "status": "pending", "active_version": "", "alarm_active": False, "figures": "{}",
                 "refusal_code": "", "refusal_detail": "", "last_report_ns": None, "activated_ns": None}
                for i, g in enumerate(ordered)])
            self._event(conn, rollout_id, "started", actor=actor, model=model, candidate=version, baseline=champion,
                        stages=sizes, canary=ordered[:sizes[0]])
        self.models.set_alias(model, CHALLENGER, version, actor=actor, reason=f"rollout {rollout_id}")
        log.info("rollout started", rollout=rollout_id, model=model, candidate=version, baseline=champion,
                 stages=sizes)
        return rollout_id

    def pause(self, rollout_id: str, actor: str = "", reason: str = "") -> None:
        self._transition(rollout_id, RUNNING, PAUSED, "paused", actor, reason)

    def resume(self, rollout_id: str, actor: str = "", reason: str = "") -> None:
        self._transition(rollout_id, PAUSED, RUNNING, "resumed", actor, reason)

    def promote(self, rollout_id: str, actor: str = "", reason: str = "") -> None:
        """Skip the remaining stages: the candidate becomes champion and every gateway switches to it."""
        status = self.status(rollout_id)
        self._finish(status, (RUNNING, PAUSED), COMPLETED, "promoted", actor, reason or "promoted by operator")

    def abort(self, rollout_id: str, actor: str = "", reason: str = "") -> None:
        """Stop and roll back: gateways that switched get a signed order back to the baseline."""
        status = self.status(rollout_id)
        self._finish(status, (RUNNING, PAUSED), ABORTED, "aborted", actor, reason or "aborted by operator")

    def status(self, rollout_id: str) -> RolloutStatus:
        with self.engine.connect() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.rollout_id == rollout_id)).first()
            if row is None:
                raise RolloutError(f"no rollout {rollout_id!r}")
            members = conn.execute(select(rollout_members).where(rollout_members.c.rollout_id == rollout_id)
                                   .order_by(rollout_members.c.position)).all()
        r = row._mapping
        return RolloutStatus(r["rollout_id"], r["model"], r["candidate_version"], r["baseline_version"], r["state"],
                             int(r["stage"]), tuple(json.loads(r["stage_sizes"])), r["decision"],
                             RolloutPlan.from_json(r["plan"]), int(r["created_ns"]), r["finished_ns"],
                             tuple((_member(m), m.refusal_detail) for m in members))

    def list_rollouts(self, model: str | None = None) -> list[RolloutStatus]:
        """Rollouts, newest first."""
        query = select(rollouts.c.rollout_id).order_by(rollouts.c.created_ns.desc())
        if model is not None:
            query = query.where(rollouts.c.model == model)
        with self.engine.connect() as conn:
            ids = list(conn.execute(query).scalars())
        return [self.status(i) for i in ids]

    def active(self, model: str) -> str | None:
        """The running or paused rollout of ``model``, if any."""
        with self.engine.connect() as conn:
            found: str | None = conn.execute(select(rollouts.c.rollout_id).where(
                rollouts.c.model == model, rollouts.c.state.in_([RUNNING, PAUSED]))).scalar()
            return found

    def history(self, rollout_id: str) -> list[RolloutEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rollout_events).where(rollout_events.c.rollout_id == rollout_id)
                                .order_by(rollout_events.c.id)).all()
        return [RolloutEvent(r.time_ns, r.kind, r.gateway_id, r.actor, json.loads(r.detail)) for r in rows]

    # -- decisions ----------------------------------------------------------------------------
    def tick(self, rollout_id: str | None = None) -> dict[str, Decision]:
        """Evaluate running rollouts (or one) and apply the decisions; returns them by rollout."""
        with self.engine.connect() as conn:
            query = select(rollouts.c.rollout_id).where(rollouts.c.state == RUNNING)
            if rollout_id is not None:
                query = query.where(rollouts.c.rollout_id == rollout_id)
            ids = list(conn.execute(query).scalars())
        return {i: self._tick_one(i) for i in ids}

    def _tick_one(self, rollout_id: str) -> Decision:
        status = self.status(rollout_id)
        now = self._now()
        with self.engine.connect() as conn:
            started = conn.execute(select(rollouts.c.stage_started_ns)
                                   .where(rollouts.c.rollout_id == rollout_id)).scalar_one()
        view = RolloutView(rollout_id, status.state, status.stage, int(started), status.candidate_version,
                           status.plan, status.sizes, tuple(m for m, _ in status.members))
        decision = evaluate(view, now)
        if decision.action in ("abort", "complete"):
            to_state, kind = (ABORTED, "aborted") if decision.action == "abort" else (COMPLETED, "completed")
            with contextlib.suppress(RolloutError):  # another replica or report applied a decision first
                self._finish(status, (RUNNING,), to_state, kind, "controller", decision.reason)
        elif decision.action == "advance":
            with self.engine.begin() as conn:
                done = conn.execute(update(rollouts).where(
                    rollouts.c.rollout_id == rollout_id, rollouts.c.state == RUNNING,
                    rollouts.c.stage == status.stage).values(stage=status.stage + 1, stage_started_ns=now,
                                                              decision=decision.reason, updated_ns=now))
                if done.rowcount == 1:
                    switching = [m.gateway_id for m, _ in status.members if m.stage == status.stage]
                    self._event(conn, rollout_id, "stage_passed", actor="controller", stage=status.stage + 1,
                                reason=decision.reason, switching=switching,
                                next_stage=status.stage + 2 if status.stage + 1 < len(status.sizes) else None)
                    log.info("rollout stage passed", rollout=rollout_id, stage=status.stage + 1,
                             reason=decision.reason)
        elif decision.reason != status.decision:
            with self.engine.begin() as conn:  # only while running: never overwrite why it ended
                conn.execute(update(rollouts).where(rollouts.c.rollout_id == rollout_id, rollouts.c.state == RUNNING)
                             .values(decision=decision.reason, updated_ns=now))
        return decision

    # -- gateway API --------------------------------------------------------------------------
    def assignment(self, gateway_id: str, model: str, active_version: str, alarm_active: bool) -> AssignmentOut:
        """What ``gateway_id`` should run for ``model``: its rollout stage's say, else the champion.
        One indexed query per poll: the rollout row and this gateway's membership only."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(rollouts.c.state.label("r_state"), rollouts.c.stage.label("r_stage"),
                       rollouts.c.candidate_version, rollouts.c.plan, rollouts.c.stage_sizes, rollout_members)
                .join(rollout_members, rollout_members.c.rollout_id == rollouts.c.rollout_id)
                .where(rollouts.c.model == model, rollouts.c.state.in_([RUNNING, PAUSED]),
                       rollout_members.c.gateway_id == gateway_id)).first()
        reason = ""
        if found is not None:
            r = found._mapping
            plan = RolloutPlan.from_json(r["plan"])
            view = RolloutView(r["rollout_id"], r["r_state"], int(r["r_stage"]), 0, r["candidate_version"], plan,
                               tuple(json.loads(r["stage_sizes"])), ())
            action, reason = member_action(view, _member(found), alarm_active)
            if action != "baseline":
                record = self.models.require(model, r["candidate_version"])
                return AssignmentOut(action, record.version,
                                     r["rollout_id"], record.manifest, b"", plan.bake_s, reason)
        return self._champion_assignment(model, active_version, reason)

    def _champion_assignment(self, model: str, active: str, why: str) -> AssignmentOut:
        champion = self.models.alias(model, CHAMPION)
        if champion is None:
            return AssignmentOut(UpdateAction.NONE, reason=f"{model} has no champion")
        if active == champion:
            return AssignmentOut(UpdateAction.NONE, champion, reason=why or "runs the champion")
        record = self.models.require(model, champion)
        try:
            newer = not active or parse_version(active) < parse_version(champion)
        except ValueError:
            newer = True
        if newer:
            return AssignmentOut(UpdateAction.ACTIVATE, champion, "", record.manifest, b"", 0.0, "install the champion")
        if self.signer is None:
            return AssignmentOut(UpdateAction.NONE, reason="a rollback is due but this server has no signing key")
        # Deterministic within a day (same bytes on every poll), and never older than two days.
        issued = self._now() // DAY_NS * DAY_NS
        order = sign_rollback_order(self.signer, model=model, rollout_id=self._rollout_of(model, active),
                                    from_version=active, to_version=champion, issued_ns=issued,
                                    ttl_s=self.rollback_ttl_s)
        return AssignmentOut(UpdateAction.ROLLBACK, champion, "", record.manifest, order, 0.0,
                             f"roll back {active} -> champion {champion}")

    def _rollout_of(self, model: str, version: str) -> str:
        with self.engine.connect() as conn:
            found: str | None = conn.execute(select(rollouts.c.rollout_id).where(
                rollouts.c.model == model, rollouts.c.candidate_version == version)
                .order_by(rollouts.c.created_ns.desc())).scalar()
        return found or ""

    def chunk(self, model: str, version: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        return self.models.read_chunk(model, version, offset, min(max_bytes or self.chunk_bytes, 4 * 1024 * 1024))

    def report(self, rep: GatewayReport) -> None:
        """File an updater report on the gateway's membership in the model's latest rollout, then re-evaluate."""
        now = self._now()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(rollouts.c.rollout_id, rollouts.c.candidate_version, rollouts.c.baseline_version,
                       rollouts.c.state, rollout_members.c.status, rollout_members.c.activated_ns)
                .join(rollout_members, rollout_members.c.rollout_id == rollouts.c.rollout_id)
                .where(rollouts.c.model == rep.model, rollout_members.c.gateway_id == rep.gateway_id)
                .order_by(rollouts.c.created_ns.desc()).limit(1)).first()
            if row is None:
                return
            status = self._member_status(rep, row.candidate_version, row.baseline_version, row.state,
                                         row.status)
            figures = {k: getattr(rep, k) for k in _FIGURES}
            values: dict[str, Any] = {
                "status": status, "active_version": rep.active_version, "alarm_active": rep.alarm_active,
                "figures": json.dumps(figures, sort_keys=True), "refusal_code": rep.refusal_code,
                "refusal_detail": rep.refusal_detail[:2000], "last_report_ns": now}
            if status == "active" and row.activated_ns is None:
                values["activated_ns"] = now
            conn.execute(update(rollout_members).where(rollout_members.c.rollout_id == row.rollout_id,
                                                       rollout_members.c.gateway_id == rep.gateway_id).values(**values))
            if status != row.status:
                detail: dict[str, Any] = {"from": row.status, "to": status, "version": rep.active_version}
                if rep.refusal_code:
                    detail.update(refusal=rep.refusal_code, detail=rep.refusal_detail[:500])
                self._event(conn, row.rollout_id, "gateway", gateway_id=rep.gateway_id, actor=rep.gateway_id, **detail)
        # A changed status or a failure is judged at once; plain figures at most every report_tick_s
        # (the ticker covers the rest), so a large fleet's reports do not each re-read the rollout.
        urgent = status != row.status or rep.load_failures or rep.crashes or rep.refusal_code
        last = self._last_tick.get(row.rollout_id, 0)
        if row.state == RUNNING and (urgent or now - last >= self.report_tick_s * 1e9):
            self._last_tick[row.rollout_id] = now
            self.tick(row.rollout_id)

    @staticmethod
    def _member_status(rep: GatewayReport, candidate: str, baseline: str | None, state: str, prior: str) -> str:
        """The member's status from a report; reports about anything but this candidate change nothing."""
        if rep.active_version == candidate:
            return "active"
        if rep.candidate_version == candidate:
            if rep.refusal_code:
                return "skipped" if rep.refusal_code in SKIP_CODES else "refused"
            return rep.state
        if state == ABORTED and prior == "active" and rep.active_version == baseline:
            return "rolled_back"
        if state == ABORTED and prior in _UNSWITCHED:
            return "discarded"
        return prior

    # -- helpers ------------------------------------------------------------------------------
    def _transition(self, rollout_id: str, from_state: str, to_state: str, kind: str, actor: str,
                    reason: str) -> None:
        now = self._now()
        with self.engine.begin() as conn:
            done = conn.execute(update(rollouts).where(rollouts.c.rollout_id == rollout_id,
                                                       rollouts.c.state == from_state)
                                .values(state=to_state, updated_ns=now, decision=f"{kind}: {reason}".strip(": ")))
            if done.rowcount != 1:
                raise RolloutError(f"rollout {rollout_id!r} is not {from_state}")
            self._event(conn, rollout_id, kind, actor=actor, reason=reason)
        log.info(f"rollout {kind}", rollout=rollout_id, actor=actor, reason=reason)

    def _finish(self, status: RolloutStatus, from_states: tuple[str, ...], to_state: str, kind: str, actor: str,
                reason: str) -> None:
        """End the rollout and move the aliases in one transaction: no gateway may ever see a finished
        rollout with the old champion (it would be told to roll back a good candidate)."""
        now = self._now()
        why = f"rollout {status.rollout_id} {kind}"
        with self.engine.begin() as conn:
            done = conn.execute(update(rollouts).where(rollouts.c.rollout_id == status.rollout_id,
                                                       rollouts.c.state.in_(list(from_states)))
                                .values(state=to_state, updated_ns=now, finished_ns=now, decision=reason))
            if done.rowcount != 1:
                raise RolloutError(f"rollout {status.rollout_id!r} is not {' or '.join(from_states)}")
            if to_state == COMPLETED:
                self.models.set_alias(status.model, CHAMPION, status.candidate_version, actor=actor, reason=why,
                                      now_ns=now, conn=conn)
            self.models.set_alias(status.model, CHALLENGER, None, actor=actor, reason=why, now_ns=now, conn=conn)
            self._event(conn, status.rollout_id, kind, actor=actor, reason=reason,
                        switched=[m.gateway_id for m, _ in status.members
                                  if m.active_version == status.candidate_version])
        FINISHED.labels(outcome=kind).inc()
        level = log.error if to_state == ABORTED else log.info
        level(f"rollout {kind}", rollout=status.rollout_id, model=status.model, candidate=status.candidate_version,
              reason=reason)

    def _event(self, conn: Connection, rollout_id: str, kind: str, *, actor: str = "", gateway_id: str | None = None,
               **detail: Any) -> None:
        conn.execute(rollout_events.insert().values(rollout_id=rollout_id, time_ns=self._now(), kind=kind,
                                                    gateway_id=gateway_id, actor=actor,
                                                    detail=json.dumps(detail, sort_keys=True, default=str)))
