"""The gateway's model updater: one state machine per model line.

    idle --SHADOW/ACTIVATE/ROLLBACK--> downloading --> verifying --> staged --> shadow
                                  (refuse: refused)       |            |          |
                                                          v            v          v
                                            refused (reported)    switch (ACTIVATE / ROLLBACK) -> idle
    any --NONE--> discard the candidate --> idle

The cloud decides (through assignments); the gateway verifies and refuses. Nothing is
switched while a high-priority alarm is active, and nothing unverified is ever loaded.
Each transition is persisted before it is acted on, and every file operation is atomic
(see store.py), so a SIGKILL at any step restarts on a valid model and resumes the
download from the bytes already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from cardiogate.core.backoff import PERMANENT_RETRY, RetryPolicy, retry_policy_for
from cardiogate.core.errors import rpc_error
from cardiogate.core.logs import get_logger
from cardiogate.edge.updater.manifest import (
    Manifest,
    Refusal,
    RollbackOrder,
    check_upgrade,
    verify_artifact,
    verify_manifest,
    verify_rollback_order,
)
from cardiogate.edge.updater.runners import (
    EcgWindow,
    Runner,
    RunnerFactory,
    RunnerLoadError,
    Window,
    default_runner_factory,
)
from cardiogate.edge.updater.shadow import NORMAL_LABELS, ShadowEvaluator, ShadowFigures
from cardiogate.edge.updater.store import ModelStore, Step
from cardiogate.proto.contracts import RefusalCode, UpdateAction, UpdaterPhase
from cardiogate.proto.v1 import rollout_pb2 as rpb

log = get_logger(__name__)

_SWITCHES = (UpdateAction.ACTIVATE, UpdateAction.ROLLBACK)


class UpdateSource(Protocol):
    """Where assignments and artifact bytes come from, and where reports go (gRPC in production)."""

    def get_assignment(self, request: rpb.AssignmentRequest) -> rpb.Assignment: ...

    def download_chunk(self, request: rpb.ChunkRequest) -> rpb.Chunk: ...

    def report(self, report: rpb.UpdaterReport) -> None: ...


@dataclass(frozen=True)
class UpdaterConfig:
    model: str
    gateway_id: str
    gateway_version: str
    poll_s: float = 30.0
    chunk_bytes: int = 256 * 1024
    max_download_attempts: int = 3
    normal_labels: frozenset[str] = NORMAL_LABELS


@dataclass(frozen=True)
class Target:
    """What the cloud asked for, kept verbatim so it can be re-verified after a restart."""

    action: UpdateAction
    version: str
    rollout_id: str
    envelope: bytes
    rollback_order: bytes
    bake_s: float

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.envelope + b"\0" + self.rollback_order).hexdigest()

    def to_state(self) -> dict[str, Any]:
        return {"action": str(self.action), "version": self.version, "rollout_id": self.rollout_id,
                "envelope": self.envelope.hex(), "rollback_order": self.rollback_order.hex(), "bake_s": self.bake_s}

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> Target:
        return cls(UpdateAction(str(doc["action"])), str(doc["version"]), str(doc["rollout_id"]),
                   bytes.fromhex(str(doc["envelope"])), bytes.fromhex(str(doc["rollback_order"])), float(doc["bake_s"]))


def _never() -> bool:
    return False


def _no_step(_name: str) -> None:
    return None


SwitchCallback = Callable[[str, Path, Runner], None]


class Updater:
    """Drives one model line: call ``start()`` once, then ``step()`` repeatedly (or ``run``);
    feed live windows through ``observe()`` from any thread."""

    def __init__(self, config: UpdaterConfig, store: ModelStore, source: UpdateSource, *,
                 runner_factory: RunnerFactory = default_runner_factory, alarm_active: Callable[[], bool] = _never,
                 on_switch: SwitchCallback | None = None, step_hook: Step = _no_step,
                 clock: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.store = store
        self.source = source
        self._factory = runner_factory
        self._alarm_active = alarm_active
        self._on_switch = on_switch
        self._hook = step_hook
        self._clock = clock
        self._wall_ns = wall_ns
        self._lock = threading.Lock()  # guards the runners and the shadow evaluator against observe()
        self.phase = UpdaterPhase.IDLE
        self.active: str | None = None
        self.target: Target | None = None
        self.manifest: Manifest | None = None
        self.refusal: tuple[str, RefusalCode, str] | None = None  # (fingerprint, code, detail)
        self.attempts = 0
        self.crashes = 0
        self.load_failures = 0
        self.live_runner: Runner | None = None
        self._candidate: Runner | None = None
        self._shadow: ShadowEvaluator | None = None
        self._poll_s = config.poll_s
        self._refused = PERMANENT_RETRY.backoff()  # grows while the cloud keeps refusing; reset by an answer
        self._chunk = config.chunk_bytes
        self._next_poll = 0.0
        self._waiting_alarm = False
        self._watch_rollout = ""  # a rollout whose candidate we made live: crashes still count against it

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Recover the disk, count a crash if we died with a candidate loaded, load the live model."""
        self.active = self.store.recover()
        state = self.store.load_state()
        self._watch_rollout = str(state.get("watch_rollout", ""))
        if state.get("running") and (state.get("candidate_loaded") or self._watch_rollout):
            self.crashes = int(state.get("crashes", 0)) + 1
            log.error("updater restarted after dying with a candidate loaded", model=self.config.model,
                      crashes=self.crashes)
        else:
            self.crashes = int(state.get("crashes", 0))
        self.load_failures = int(state.get("load_failures", 0))
        self.attempts = int(state.get("attempts", 0))
        refused = state.get("refusal")
        if isinstance(refused, list) and len(refused) == 3 and refused[1] in RefusalCode._value2member_map_:
            self.refusal = (str(refused[0]), RefusalCode(refused[1]), str(refused[2]))
        self._load_live()
        if isinstance(state.get("target"), dict):
            try:
                target = Target.from_state(state["target"])
            except (KeyError, ValueError) as exc:
                log.warning("discarding unreadable updater state", error=str(exc))
            else:
                phase = UpdaterPhase.from_wire(0, str(state.get("phase", "")))
                if phase in (UpdaterPhase.REFUSED, UpdaterPhase.FAILED) and self.refusal is not None:
                    self.target, self.phase = target, phase
                else:
                    self._adopt(target, resumed=phase)
        self._save()

    def close(self) -> None:
        """A clean stop: the next start must not count a crash."""
        self._save(running=False)

    def run(self, stop: threading.Event) -> None:
        """Blocking loop for a worker thread; returns soon after ``stop`` is set."""
        self.start()
        try:
            while not stop.is_set():
                delay = self.step()
                if delay > 0:
                    stop.wait(delay)
        finally:
            self.close()

    # -- the state machine --------------------------------------------------------------------
    def step(self) -> float:
        """Do one unit of work; returns how long to wait before the next call (0: at once)."""
        try:
            now = self._clock()
            if now >= self._next_poll:  # also mid-download, so an abort is heard at once
                self._next_poll = now + self._poll_s
                self._poll()
            if self.phase == UpdaterPhase.DOWNLOADING:
                return self._download_one()
            if self.phase == UpdaterPhase.VERIFYING:
                self._verify_and_stage()
                return 0.0
            if self.phase == UpdaterPhase.STAGED and self.target is not None and self.target.action in _SWITCHES:
                self._switch()
            wait = self._next_poll - self._clock()
            return max(0.0, min(wait, 0.5) if self._waiting_alarm else wait)
        except grpc.RpcError as exc:
            return self._after_rpc_failure(exc)

    def _after_rpc_failure(self, exc: grpc.RpcError) -> float:
        """Wait by the error's class: the poll interval after an outage, minutes (growing) after a refusal of
        this gateway's identity, which polling every 30 s cannot fix."""
        code, details = getattr(exc, "code", None), getattr(exc, "details", None)  # a failed call carries both
        error = rpc_error(code().name if callable(code) else "UNAVAILABLE",
                          str(details() if callable(details) else exc))
        policy = retry_policy_for(error, RetryPolicy("poll", self._poll_s, self._poll_s))
        delay = self._refused.next_delay() if policy is PERMANENT_RETRY else self._poll_s
        log.warning("rollout service refused this gateway" if policy is PERMANENT_RETRY
                    else "rollout service unreachable", model=self.config.model, error=str(error), phase=self.phase,
                    retry_in_s=round(delay, 1))
        self._next_poll = self._clock() + delay
        return delay

    def _poll(self) -> None:
        request = rpb.AssignmentRequest(gateway_id=self.config.gateway_id, model=self.config.model,
                                        active_version=self.active or "",
                                        software_version=self.config.gateway_version,
                                        high_priority_alarm_active=self._alarm_active())
        assignment = self.source.get_assignment(request)
        self._refused.reset()
        if assignment.poll_s > 0:
            self._poll_s = min(max(assignment.poll_s, 0.05), 3600.0)
        if assignment.chunk_bytes > 0:
            self._chunk = min(assignment.chunk_bytes, 4 * 1024 * 1024)
        self._reconcile(assignment)
        self.source.report(self.report())

    def _reconcile(self, a: rpb.Assignment) -> None:
        if self._watch_rollout and a.rollout_id != self._watch_rollout:
            self._watch_rollout = ""  # that rollout is over: its crash count no longer matters
            self.crashes = self.load_failures = 0
            self._save()
        action = UpdateAction.from_wire(a.action)
        if action in (None, UpdateAction.NONE) or not a.version:
            if self.target is not None:
                self._discard(f"the cloud no longer assigns it ({a.reason or 'no reason given'})")
            return
        target = Target(action, a.version, a.rollout_id, a.signed_manifest, a.rollback_order, a.bake_s)
        if self.refusal is not None and self.refusal[0] == target.fingerprint:
            return  # already refused exactly this; keep reporting the reason
        current = self.target
        if current is not None and (current.version, current.fingerprint) == (target.version, target.fingerprint):
            if current.action != target.action:
                log.info("assignment changed", model=self.config.model, version=target.version,
                         action=target.action, reason=a.reason)
                self.target = target
                if self.phase == UpdaterPhase.SHADOW and target.action in _SWITCHES:
                    self.phase = UpdaterPhase.STAGED
                self._save()
                if self.phase == UpdaterPhase.STAGED:
                    self._after_staged()
            return
        if target.version == self.active:
            if current is not None:
                self._discard("already live")
            return
        if current is not None:
            self._discard(f"replaced by {target.action} {target.version}")
        self._adopt(target)

    def _adopt(self, target: Target, resumed: UpdaterPhase | None = None) -> None:
        """Verify what the cloud sent before fetching a byte; resume where a previous run stopped."""
        fresh = self.target is None or self.target.fingerprint != target.fingerprint
        self.target = target
        if fresh and not resumed:
            self.attempts = 0
            self.crashes = 0
            self.load_failures = 0
            self.refusal = None
        try:
            manifest = verify_manifest(target.envelope, self.store.trusted)
            order: RollbackOrder | None = None
            if target.action == UpdateAction.ROLLBACK:
                if not target.rollback_order:
                    raise Refusal(RefusalCode.BAD_ROLLBACK_ORDER, "a rollback needs the cloud's signed rollback order")
                order = verify_rollback_order(target.rollback_order, self.store.trusted, self._wall_ns())
            if manifest.version != target.version:
                raise Refusal(RefusalCode.MALFORMED, f"assignment names {target.version}, manifest {manifest.version}")
            if self.active == target.version:
                self._finish("already live")
                return
            check_upgrade(manifest, model=self.config.model, active_version=self.active,
                          gateway_version=self.config.gateway_version, rollback=order)
        except Refusal as refusal:
            self._refuse(refusal)
            return
        self.manifest = manifest
        log.info("model assignment", model=self.config.model, action=target.action,
                 version=target.version, rollout=target.rollout_id, resumed=resumed or None)
        if self.store.installed(target.version) is not None:
            self.phase = UpdaterPhase.STAGED
            self._save()
            self._after_staged()
        else:
            self.phase = UpdaterPhase.VERIFYING if resumed == UpdaterPhase.VERIFYING else UpdaterPhase.DOWNLOADING
            self._save()

    def _download_one(self) -> float:
        assert self.manifest is not None and self.target is not None
        version, size = self.target.version, self.manifest.size_bytes
        offset = self.store.partial_size(version)
        if offset >= size:
            self.phase = UpdaterPhase.VERIFYING
            self._save()
            return 0.0
        chunk = self.source.download_chunk(rpb.ChunkRequest(
            gateway_id=self.config.gateway_id, model=self.config.model, version=version, offset=offset,
            max_bytes=min(self._chunk, size - offset)))
        if chunk.offset != offset or (not chunk.data and not chunk.eof):
            log.warning("unexpected chunk; retrying", model=self.config.model, asked=offset, got=chunk.offset)
            return self._poll_s
        done = self.store.write_chunk(version, offset, chunk.data)
        self._hook("download:chunk")
        if chunk.eof or done >= size:
            self.phase = UpdaterPhase.VERIFYING
            self._save()
        return 0.0

    def _verify_and_stage(self) -> None:
        assert self.manifest is not None and self.target is not None
        partial = self.store.partial_path(self.target.version)
        if not partial.exists():  # died while staging: the bytes are gone, fetch again
            self.phase = UpdaterPhase.DOWNLOADING
            self._save()
            return
        self._hook("verify:start")
        try:
            verify_artifact(partial, self.manifest)
        except Refusal as refusal:
            self.store.discard_partial(self.target.version)
            self.attempts += 1
            if self.attempts < self.config.max_download_attempts:
                log.warning("downloaded artifact failed verification; fetching again", model=self.config.model,
                            version=self.target.version, attempt=self.attempts, error=str(refusal))
                self.phase = UpdaterPhase.DOWNLOADING
                self._save()
            else:
                self._refuse(refusal)
            return
        self._hook("verify:done")
        self.store.stage(self.manifest, self._hook)
        self.phase = UpdaterPhase.STAGED
        self._save()
        self._after_staged()

    def _after_staged(self) -> None:
        assert self.target is not None
        if self.target.action == UpdateAction.SHADOW:
            runner = self._load_candidate()
            if runner is None:
                return
            with self._lock:
                self._candidate = runner
                self._shadow = ShadowEvaluator(runner, normal_labels=self.config.normal_labels, clock=self._clock)
            self.phase = UpdaterPhase.SHADOW
            self._save()
            log.info("shadow run started", model=self.config.model, version=self.target.version,
                     bake_s=self.target.bake_s)
        else:
            self._switch()

    def _load_candidate(self) -> Runner | None:
        assert self.target is not None
        if self._candidate is not None:
            return self._candidate
        manifest = self.store.installed(self.target.version)
        if manifest is None:
            self.phase = UpdaterPhase.DOWNLOADING
            self._save()
            return None
        self._save(candidate_loaded=True)
        try:
            return self._factory(self.store.artifact_path(manifest), manifest)
        except (RunnerLoadError, OSError, ValueError) as exc:
            self.load_failures += 1
            self._refuse(Refusal(RefusalCode.LOAD_FAILED, str(exc)), keep_files=False)
            return None

    def _switch(self) -> None:
        assert self.target is not None
        if self._alarm_active():
            if not self._waiting_alarm:
                log.info("switch waits for the active high-priority alarm to clear", model=self.config.model,
                         version=self.target.version)
            self._waiting_alarm = True
            return
        self._waiting_alarm = False
        runner = self._load_candidate()
        if runner is None:
            return
        manifest = self.store.installed(self.target.version)
        if manifest is None:
            self.phase = UpdaterPhase.DOWNLOADING
            self._save()
            return
        was = self.active
        self._hook("switch:start")
        self.store.switch(self.target.version, self._hook)
        with self._lock:
            self.live_runner = runner
            self._candidate = None
            self._shadow = None
        self.active = self.target.version
        log.info("model switched", model=self.config.model, was=was, now=self.active,
                 action=self.target.action, rollout=self.target.rollout_id)
        if self._on_switch is not None:
            self._on_switch(self.active, self.store.artifact_path(manifest), runner)
        if self.target.action == UpdateAction.ACTIVATE and self.target.rollout_id:
            self._watch_rollout = self.target.rollout_id
        self._finish("switched")

    def _finish(self, why: str) -> None:
        """The target is done: it is live (or was already)."""
        self.phase = UpdaterPhase.IDLE
        self.target = None
        self.manifest = None
        self._save(candidate_loaded=False)
        log.debug("assignment complete", model=self.config.model, why=why)

    def _discard(self, why: str) -> None:
        target = self.target
        with self._lock:
            self._candidate = None
            self._shadow = None
        if target is not None and target.version != self.active:
            self.store.remove(target.version)
            log.info("candidate discarded", model=self.config.model, version=target.version, why=why)
        self.phase = UpdaterPhase.IDLE
        self.target = None
        self.manifest = None
        self.refusal = None
        self._waiting_alarm = False
        self._save(candidate_loaded=False)

    def _refuse(self, refusal: Refusal, keep_files: bool = False) -> None:
        assert self.target is not None
        log.error("model refused", model=self.config.model, version=self.target.version, code=refusal.code,
                  detail=refusal.detail, rollout=self.target.rollout_id)
        with self._lock:
            self._candidate = None
            self._shadow = None
        if not keep_files:
            self.store.remove(self.target.version)
        self.refusal = (self.target.fingerprint, refusal.code, refusal.detail)
        self.phase = UpdaterPhase.FAILED if refusal.code == RefusalCode.LOAD_FAILED else UpdaterPhase.REFUSED
        self._save(candidate_loaded=False)

    def _load_live(self) -> None:
        """Load the live model; if it will not load, fall back to the last good version."""
        for _ in range(2):
            if self.active is None:
                return
            manifest = self.store.installed(self.active)
            try:
                if manifest is None:
                    raise RunnerLoadError("files not intact")
                runner = self._factory(self.store.artifact_path(manifest), manifest)
            except (RunnerLoadError, OSError, ValueError) as exc:
                self.load_failures += 1
                fallback = self.store.last_good
                log.error("live model will not load", model=self.config.model, version=self.active,
                          error=str(exc), fallback=fallback)
                if fallback is None or fallback == self.active or self.store.installed(fallback) is None:
                    return
                self.store.write_pointer("current", fallback)
                self.active = fallback
                continue
            with self._lock:
                self.live_runner = runner
            if self._on_switch is not None and manifest is not None:
                self._on_switch(self.active, self.store.artifact_path(manifest), runner)
            return

    def _save(self, running: bool = True, candidate_loaded: bool | None = None) -> None:
        if candidate_loaded is None:
            candidate_loaded = self._candidate is not None
        self.store.save_state({
            "phase": self.phase, "target": self.target.to_state() if self.target else None,
            "refusal": list(self.refusal) if self.refusal else None, "attempts": self.attempts,
            "crashes": self.crashes, "load_failures": self.load_failures, "running": running,
            "candidate_loaded": candidate_loaded, "watch_rollout": self._watch_rollout})

    # -- live data ----------------------------------------------------------------------------
    def observe(self, window: Window, live_label: str | None = None, live_ms: float | None = None) -> str | None:
        """One live window: returns the live label (computed here unless the caller already has it)
        and, during a shadow run, also feeds it to the candidate. A candidate failure is only counted;
        a live model failure raises to the caller, whose model-failure alarm it is."""
        with self._lock:
            if live_label is None:
                if self.live_runner is None:
                    return None
                began = time.perf_counter()
                live_label = self.live_runner.predict(window)
                live_ms = (time.perf_counter() - began) * 1000.0
            if self._shadow is not None:
                errors = self._shadow.candidate_errors
                self._shadow.observe(window, live_label, live_ms)
                if self._shadow.candidate_errors > errors:
                    self.crashes += 1
            return live_label

    def figures(self) -> ShadowFigures:
        with self._lock:
            return self._shadow.figures() if self._shadow is not None else ShadowFigures()

    def report(self) -> rpb.UpdaterReport:
        f = self.figures()
        target = self.target
        code, detail = (self.refusal[1], self.refusal[2]) if self.refusal else (None, "")
        downloaded = self.store.partial_size(target.version) if target is not None else 0
        return rpb.UpdaterReport(
            gateway_id=self.config.gateway_id, model=self.config.model,
            rollout_id=target.rollout_id if target else self._watch_rollout, state=self.phase, phase=self.phase.wire,
            active_version=self.active or "",
            candidate_version=target.version if target else "",
            shadow=rpb.ShadowStats(windows=f.windows, agreements=f.agreements, shadow_s=f.shadow_s,
                                   candidate_p99_ms=f.candidate_p99_ms, live_p99_ms=f.live_p99_ms,
                                   candidate_alarm_rate=f.candidate_alarm_rate, live_alarm_rate=f.live_alarm_rate,
                                   candidate_errors=f.candidate_errors),
            load_failures=self.load_failures, crashes=self.crashes, refusal_code=code or "", refusal_detail=detail,
            refusal=code.wire if code else rpb.REFUSAL_CODE_UNSPECIFIED,
            high_priority_alarm_active=self._alarm_active(), software_version=self.config.gateway_version,
            time_ns=self._wall_ns(), downloaded_bytes=downloaded)


async def run_updater(updater: Updater) -> None:
    """Run ``updater`` in a worker thread until cancelled, then stop it cleanly."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    worker = loop.run_in_executor(None, updater.run, stop)
    try:
        await asyncio.shield(worker)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(Exception):
            await worker
        raise


__all__ = ["EcgWindow", "Target", "UpdateSource", "Updater", "UpdaterConfig", "run_updater"]
