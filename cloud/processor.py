"""The cloud stream processor: telemetry -> per-patient feature windows -> risk reports.

A quixstreams application (consumer group ``cardiogate-processor``) reads the vitals, alarms,
device-event and ECG topics, keyed by patient (the waveform is not decoded: windows count ECG
samples, and the blocks are stored as received for ECG strips). The event time is the device
time (:func:`cardiogate.cloud.features.event_time_ns`).
Tumbling windows of 60 s and 300 s, aligned to the epoch, fold each patient's records with
:mod:`cardiogate.cloud.features` and emit one final window each: a FeatureWindow on
``features.1m`` / ``features.5m`` and a RiskReport (:mod:`cardiogate.cloud.risk`) on
``risk-events``, all keyed by patient; both go to the history tables
(:mod:`cardiogate.cloud.history`) and, when Redis answers, to ``cardiogate:latest:<patient>``
and the channel ``cardiogate:risk:<patient>``.

Closing: windows close on partition time (``closing_strategy="partition"``), the newest device
time of any record on the partition, once it passes the window's end plus ``grace_s``. A
patient whose gateway fell silent therefore gets its final window as soon as other patients
on the same partition move on. A partition with no traffic at all closes nothing: there is no
wall-clock closing, so a whole partition falling silent holds its last windows until any
record arrives there.

Late records: a record whose window has already closed is never dropped silently. quixstreams
3.28 with partition closing and a grace period accepts a record for a window it closed less
than ``grace`` ago, recreates that window and never emits it again; so this module decides
lateness itself, before the window, with quixstreams' own rule (a window is closed once its end
is at or before the aligned partition time minus grace; :func:`cardiogate.cloud.features.late_route`).
A late record whose window ends within ``revision_horizon_s`` of the partition time revises
it: the emit path saves each closed window's accumulator in the state (same store and patient
key), the late path folds the record in and publishes the window again, to the same topics and
tables, with ``revision`` + 1, ``late_record_count`` + 1 and a report of the same revision; a
window the gateway missed entirely is created at revision 0. One revision per late record, no
batching. Redis gets a revision only for the patient's newest window of its width. Saved
accumulators beyond the horizon are deleted when the next one is saved. Older records go
unchanged (the Record bytes, the original key and headers plus ``late-window-s``) to
``features.late``. Counted in ``processor_late_records_total{width_s,route}`` (``revised``,
``late_topic``). The lateness watermark is in memory: right after a restart, until the
partition's first records re-establish it, quixstreams' own late check is the backstop, and what
it rejects is counted with ``route="rejected"`` and logged with its offset, not routed.

Delivery: exactly-once by default (``processing_guarantee``). Checked against tansu (memory
storage): the transactional producer initialises and commits, and tests/integration/test_processor.py
passes with it, as it does with "at-least-once"; what was not checked on tansu is a transaction
aborted by a crash. Kafka outputs are transactional with the consumed offsets; the history tables
and Redis are written outside the transaction, so they are at-least-once in either mode and made
idempotent instead: the upsert keeps the highest revision per (patient, width_s, start), and a
replayed window overwrites itself with the same values. "at-least-once" is the fallback for
brokers without transactions; topic consumers then keep one window per that key.

Alarms do not wait for windows: a raised or escalated physiological alarm of high or medium
priority (:func:`cardiogate.cloud.risk.triggers_provisional`) produces a provisional report at
once, to the same places as a window's report. It is assessed on the patient's open 1-minute
window as it stands (read from that window's state store, in the same checkpoint, so it
already holds the alarm), else on the last closed 1-minute window, and raised to the alarm's
floor (:func:`cardiogate.cloud.risk.provisional_assessment`). A late alarm (its minute already
closed) is old news and gets none.

ECG blocks go to ``ecg_blocks`` through a sink: rows gather in memory and are written with one
multi-row insert per checkpoint (``commit_interval_s``), before the offsets commit, so a crash
replays them and the key (gateway, stream_id, sequence) drops the duplicates. A thread prunes
blocks older than ``ecg_retention_s`` (device time against the wall clock) every
``ecg_prune_interval_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quixstreams import Application, State
from quixstreams.models import Deserializer, SerializationContext, Serializer
from quixstreams.models.topics import TopicConfig
from quixstreams.sinks import BaseSink
from sqlalchemy import Engine

from cardiogate.cloud import features, history
from cardiogate.cloud.features import LATE_TOPIC, ON_TIME, REVISED, Accumulator
from cardiogate.cloud.kafka_bridge import ensure_topics
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.risk import News2Baseline, RiskModel, provisional_assessment, triggers_provisional
from cardiogate.cloud.settings import CloudSettings
from cardiogate.core import metrics as registry
from cardiogate.core.logs import get_logger
from cardiogate.core.tracing import child_span, setup_tracing, traceparent_of
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)

WIDTHS_S = (60, 300)
_KAFKA_DEFAULT_RETENTION_MS = str(7 * 86_400_000)  # sizes the changelog topics
LATE_RECORDS = registry.counter("processor_late_records", "Records that arrived after their window closed.",
                                ("width_s", "route"))
WINDOWS = registry.counter("processor_windows", "Feature windows emitted.", ("width_s",))
UNDECODABLE = registry.counter("processor_undecodable_records", "Messages that are not cardiogate records.")
EVENT_LAG = registry.gauge("processor_event_time_lag_seconds",
                           "Wall clock minus the device time of the record processed last: how far behind "
                           "real time the windows are (a gateway's backlog shows here too).")
PROVISIONAL = registry.counter("processor_provisional_reports", "Provisional risk reports on raised alarms.")
ECG_STORED = registry.counter("processor_ecg_blocks_written", "ECG blocks written to ecg_blocks (replays included).")
ECG_PRUNED = registry.counter("processor_ecg_blocks_pruned", "ECG blocks deleted after the retention period.")
PROVISIONAL_WIDTH_S = 60  # the open window a provisional report is assessed on


@dataclass(slots=True)
class Item:
    """A decoded record on its way through the pipeline, with its route per window width and, for a
    revision, the oldest window end still revisable (what the saved accumulators are pruned to)."""

    record: pb.Record
    raw: bytes
    route: dict[int, str] = field(default_factory=dict)
    floor_ms: dict[int, int] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[bytes, dict[int, str], dict[int, int]]]:
        """Pickled as its wire bytes: quixstreams copies a value by pickling it at every branch of the
        pipeline, and the record is never changed after decoding, so ``raw`` says all of it (half the cost
        of pickling the message)."""
        return _item_from_wire, (self.raw, self.route, self.floor_ms)


def _item_from_wire(raw: bytes, route: dict[int, str], floor_ms: dict[int, int]) -> Item:
    record = pb.Record()
    record.ParseFromString(raw)
    return Item(record, raw, route, floor_ms)


class RecordDeserializer(Deserializer):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def __call__(self, value: bytes, ctx: SerializationContext) -> Item | None:
        record = pb.Record()
        try:
            record.ParseFromString(value or b"")
        except Exception:
            record = pb.Record()
        if not record.stream_id or not record.patient:
            UNDECODABLE.inc()
            return None
        return Item(record, value)


class RawRecordSerializer(Serializer):
    def __call__(self, value: Item, ctx: SerializationContext) -> bytes:
        return value.raw


def device_time_ms(value: Any, headers: Any, timestamp: float, timestamp_type: int) -> int:
    t = features.event_time_ns(value.record) if isinstance(value, Item) else None
    return int(timestamp) if t is None else t // 1_000_000


class LateGate:
    """Per (width, partition): the newest event time passed to the window, and where each record goes."""

    def __init__(self, grace_ms: int, horizon_ms: int) -> None:
        self._grace_ms = grace_ms
        self._horizon_ms = horizon_ms
        self._marks: dict[tuple[int, int], int] = {}

    def annotate(self, item: Item | None, key: Any, timestamp_ms: int, headers: Any, partition: int) -> Item | None:
        if item is None:
            return None
        for width_s in WIDTHS_S:
            mark = self._marks.get((width_s, partition))
            route = features.late_route(timestamp_ms, width_s * 1000, mark, self._grace_ms, self._horizon_ms)
            item.route[width_s] = route
            if route == ON_TIME:
                self._marks[(width_s, partition)] = max(mark or 0, timestamp_ms)
            elif route == LATE_TOPIC:
                LATE_RECORDS.labels(width_s=str(width_s), route=LATE_TOPIC).inc()
            elif mark is not None:
                item.floor_ms[width_s] = mark - self._horizon_ms
        return item


class LatestState:
    """Redis: the latest window and report per patient, and a pub/sub channel of reports; optional."""

    def __init__(self, url: str | None) -> None:
        self._client: Any = None
        if url is None:
            return
        try:
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
            client.ping()
            self._client = client
        except Exception as exc:
            log.warning("redis does not answer; latest state and risk pub/sub are off", url=url, error=repr(exc))

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def publish(self, report: features_pb2.RiskReport, window: features_pb2.FeatureWindow | None = None) -> None:
        if self._client is None:
            return
        patient = report.patient
        mapping = {"risk": report.SerializeToString()}
        if window is not None:
            mapping[f"features.{window.width_s // 60}m"] = window.SerializeToString()
        try:
            pipe = self._client.pipeline()
            pipe.hset(f"cardiogate:latest:{patient}", mapping=mapping)
            pipe.publish(f"cardiogate:risk:{patient}", report.SerializeToString())
            pipe.execute()
        except Exception as exc:
            log.warning("redis write failed; latest state and risk pub/sub are off", error=repr(exc))
            self._client = None


class HistorySink(BaseSink):
    """The history tables, written once per checkpoint: ECG blocks, windows and reports gather in memory and go
    in one transaction on flush, before the offsets commit (a crash replays them; the keys absorb duplicates).

    One transaction per window would cost a database commit (an fsync on SQLite) for every window and revision:
    a gateway's backlog makes thousands of them."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine
        self._rows: list[dict[str, Any]] = []
        self._windows: list[features_pb2.FeatureWindow] = []
        self._reports: list[features_pb2.RiskReport] = []

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int,
            offset: int) -> None:
        gateway = next((v.decode(errors="replace") for k, v in headers or [] if k == "gateway" and v), "")
        row = history.ecg_row(value.record, gateway)
        if row is not None:
            self._rows.append(row)

    def save(self, windows: list[features_pb2.FeatureWindow], reports: list[features_pb2.RiskReport]) -> None:
        """Windows and reports for the next flush (the processing thread calls this)."""
        self._windows.extend(windows)
        self._reports.extend(reports)

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        windows, self._windows = self._windows, []
        reports, self._reports = self._reports, []
        if not (rows or windows or reports):
            return
        with self._engine.begin() as conn:
            if rows:
                history.save_ecg(conn, rows)
            if windows or reports:
                history.save(conn, _newest(windows), _newest(reports))
        ECG_STORED.inc(len(rows))

    def on_paused(self) -> None:
        self._rows, self._windows, self._reports = [], [], []


def _newest(items: list[Any]) -> list[Any]:
    """One window or report per key: the highest revision, then the newest computation (what the upsert keeps)."""
    best: dict[tuple[str, int, int], Any] = {}
    for item in items:
        start = getattr(item, "start_device_time_ns", None)
        if start is None:
            start = item.window_start_device_time_ns
        key = (item.patient, item.width_s, start)
        kept = best.get(key)
        if kept is None or (item.revision, item.computed_time_ns) >= (kept.revision, kept.computed_time_ns):
            best[key] = item
    return list(best.values())


class Processor:
    """Builds the quixstreams application; ``run`` blocks until ``stop``."""

    def __init__(self, settings: CloudSettings, engine: Engine, model: RiskModel | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        p, k = settings.processor, settings.kafka
        self._settings = settings
        self._engine = engine
        self._model = model or News2Baseline()
        self._clock = clock
        self._grace_ms = round(p.grace_s * 1000)
        self._horizon_ms = round(p.revision_horizon_s * 1000)
        self.gate = LateGate(self._grace_ms, self._horizon_ms)
        self.latest = LatestState(p.redis_url)
        self._retention_ns = round(p.ecg_retention_s * 1e9)
        self._prune_interval_s = p.ecg_prune_interval_s
        self._stopped = threading.Event()
        self._open_window_store = ""
        self.app = _Application(
            broker_address=k.bootstrap, consumer_group=p.consumer_group, auto_offset_reset=p.auto_offset_reset,
            state_dir=str(p.state_dir), processing_guarantee=p.processing_guarantee,
            commit_interval=p.commit_interval_s, loglevel="WARNING",
            # fetch.wait.max.ms: a broker that holds a fetch until the limit (tansu does) would otherwise add up to
            # half a second to every alarm's provisional report
            consumer_extra_config={"session.timeout.ms": p.session_timeout_ms,
                                   "heartbeat.interval.ms": max(500, p.session_timeout_ms // 6),
                                   "fetch.wait.max.ms": 100})
        config = TopicConfig(num_partitions=k.partitions, replication_factor=1)
        inputs = [self.app.topic(name, key_deserializer="bytes", value_deserializer=RecordDeserializer(),
                                 timestamp_extractor=device_time_ms, config=config)
                  for name in (k.topic_vitals, k.topic_alarms, k.topic_events, k.topic_ecg)]
        for topic in inputs:  # tansu describes only the configs a topic was created with
            topic.broker_config.extra_config.setdefault("retention.ms", _KAFKA_DEFAULT_RETENTION_MS)

        def output(name: str, serializer: Any = "bytes") -> Any:
            return self.app.topic(name, key_serializer="bytes", value_serializer=serializer, config=config)

        late_topic = output(p.topic_late, RawRecordSerializer())
        risk_topic = output(p.topic_risk)
        sdf = self.app.dataframe(inputs[0])
        for topic in inputs[1:]:
            sdf = sdf.concat(self.app.dataframe(topic))
        sdf = sdf.filter(_decoded)
        sdf = sdf.apply(self._annotate, metadata=True)
        # Every branch of ``sdf`` costs a copy of every record (quixstreams pickles the value at a branch), so
        # the rare routes (late, revised, provisional) share one branch and split only below it, and the
        # branches run in this order: the windows, then the rare ones (a provisional report reads the open
        # 1-minute window, which must already hold its alarm), then the ECG history.
        features_topics = {60: output(p.topic_features_1m), 300: output(p.topic_features_5m)}
        for width_s in WIDTHS_S:
            window = (sdf.filter(_routed(width_s, ON_TIME))
                      .tumbling_window(width_s * 1000, grace_ms=self._grace_ms, name=f"features_{width_s}s",
                                       on_late=self._rejected)
                      .reduce(_fold, _first))
            if width_s == PROVISIONAL_WIDTH_S:
                self._open_window_store = window.name
            out = window.final(closing_strategy="partition").apply(self._emit(width_s), stateful=True, metadata=True)
            self._publish_to(out, features_topics[width_s], risk_topic)
        self._sdf = sdf
        rare = sdf.filter(_rare)
        for width_s in WIDTHS_S:
            late = rare.filter(_routed(width_s, LATE_TOPIC)).set_headers(_late_header(width_s))
            late.to_topic(late_topic)
            revised = rare.filter(_routed(width_s, REVISED)).apply(self._revise(width_s), stateful=True,
                                                                    metadata=True)
            self._publish_to(revised, features_topics[width_s], risk_topic)
        rare.filter(_provisional_trigger).apply(self._provisional, stateful=True, metadata=True).to_topic(risk_topic)
        self.history = HistorySink(engine)
        sdf.filter(_is_ecg).sink(self.history)

    @staticmethod
    def _publish_to(published: Any, features_topic: Any, risk_topic: Any) -> None:
        """(window, report) pairs: the window to its features topic, the report to risk-events."""
        published.apply(_first_of).to_topic(features_topic)
        published.apply(_second_of).to_topic(risk_topic)

    @staticmethod
    def _partition() -> int:
        from quixstreams.context import message_context

        return int(message_context().partition)

    def _annotate(self, item: Item | None, key: Any, timestamp: int, headers: Any) -> Item | None:
        EVENT_LAG.set(time.time() - timestamp / 1000.0)
        return self.gate.annotate(item, key, timestamp, headers, self._partition())

    def _rejected(self, value: Any, key: Any, timestamp_ms: int, late_by_ms: int, start: int, end: int,
                  store_name: str, topic: str, partition: int, offset: int) -> bool:
        width_s = (end - start) // 1000
        LATE_RECORDS.labels(width_s=str(width_s), route="rejected").inc()
        log.error("record for a closed window rejected by the window store (after a restart)", topic=topic,
                  partition=partition, offset=offset, window_s=width_s, late_by_ms=late_by_ms)
        return False

    def _emit(self, width_s: int) -> Callable[..., tuple[bytes, bytes]]:
        def emit(value: dict[str, Any], key: bytes, timestamp: int, headers: Any,
                 state: State[Any, Any]) -> tuple[bytes, bytes]:
            acc: Accumulator = value["value"]
            start_ms = value["start"]
            if self._horizon_ms > 0:
                self._save_closed(state, width_s, start_ms, {"acc": acc, "revision": 0},
                                  start_ms + width_s * 1000 - self._horizon_ms)
            WINDOWS.labels(width_s=str(width_s)).inc()
            return self._publish(state, key, width_s, start_ms, acc, 0, state.get(f"previous_hr_mean:{width_s}"))

        return emit

    def _revise(self, width_s: int) -> Callable[..., tuple[bytes, bytes]]:
        """Late records of a closed window within the horizon: fold into its saved accumulator, publish again."""
        width_ms = width_s * 1000

        def revise(item: Item, key: bytes, timestamp: int, headers: Any,
                   state: State[Any, Any]) -> tuple[bytes, bytes]:
            start_ms = timestamp - timestamp % width_ms
            closed = features.fold_late(state.get(_closed_key(width_s, start_ms)), item.record)
            self._save_closed(state, width_s, start_ms, closed, item.floor_ms.get(width_s))
            before = state.get(_closed_key(width_s, start_ms - width_ms))
            acc_before = before["acc"] if before is not None else None
            previous_hr = acc_before["hr_sum"] / acc_before["hr_n"] if acc_before and acc_before["hr_n"] else None
            LATE_RECORDS.labels(width_s=str(width_s), route=REVISED).inc()
            return self._publish(state, key, width_s, start_ms, closed["acc"], closed["revision"], previous_hr)

        return revise

    def _save_closed(self, state: State[Any, Any], width_s: int, start_ms: int, closed: dict[str, Any],
                     floor_ms: int | None) -> None:
        """Save a closed window's accumulator for revisions; a new one prunes those beyond the horizon."""
        new = not state.exists(_closed_key(width_s, start_ms))
        state.set(_closed_key(width_s, start_ms), closed)
        if new and floor_ms is not None:
            index = f"closed:{width_s}"
            kept, dropped = features.retained_starts([*state.get(index, []), start_ms], width_s * 1000, floor_ms)
            for start in dropped:
                state.delete(_closed_key(width_s, start))
            state.set(index, kept)

    def _publish(self, state: State[Any, Any], key: bytes, width_s: int, start_ms: int, acc: Accumulator,
                 revision: int, previous_hr: float | None) -> tuple[bytes, bytes]:
        """A window and its report to Redis (the patient's newest window only), the history tables and Kafka."""
        patient = key.decode(errors="replace")
        window = features.finalize(acc, patient, width_s, start_ms * 1_000_000, revision=revision,
                                   computed_time_ns=self._clock())
        previous = None if previous_hr is None else features_pb2.FeatureWindow(width_s=width_s, hr_mean=previous_hr)
        report = self._model.assess(window, previous)
        newest = state.get(f"newest:{width_s}")
        if newest is None or start_ms >= newest:
            state.set(f"newest:{width_s}", start_ms)
            if window.HasField("hr_mean"):
                state.set(f"previous_hr_mean:{width_s}", window.hr_mean)
            if width_s == PROVISIONAL_WIDTH_S:
                state.set(_LAST_WINDOW, window.SerializeToString().hex())
            self.latest.publish(report, window)
        self.history.save([window], [report])
        return window.SerializeToString(), report.SerializeToString()

    def _provisional(self, item: Item, key: bytes, timestamp: int, headers: Any, state: State[Any, Any]) -> bytes:
        alarm = item.record.alarm
        patient = key.decode(errors="replace")
        window = self._open_window(key, timestamp, patient)
        if window is None and (stored := state.get(_LAST_WINDOW)) is not None:
            window = features_pb2.FeatureWindow.FromString(bytes.fromhex(stored))
        previous = None
        if window is not None and (hr := state.get(f"previous_hr_mean:{PROVISIONAL_WIDTH_S}")) is not None:
            previous = features_pb2.FeatureWindow(width_s=PROVISIONAL_WIDTH_S, hr_mean=hr)
        assessed = self._model.assess(window, previous) if window is not None else None
        with child_span("processor.provisional_risk", traceparent_of(headers), kind="consumer",
                        attributes={"alarm.id": alarm.alarm_id, "alarm.condition": alarm.condition}) as traceparent:
            report = provisional_assessment(alarm, timestamp * 1_000_000, assessed, self._clock())
            report.patient = patient
            report.trace_parent = traceparent
            self.latest.publish(report)
            self.history.save([], [report])
        PROVISIONAL.inc()
        return report.SerializeToString()

    def _open_window(self, key: bytes, timestamp_ms: int, patient: str) -> features_pb2.FeatureWindow | None:
        """The patient's open 1-minute window as it stands, from the window's store in this checkpoint."""
        width_ms = PROVISIONAL_WIDTH_S * 1000
        start = timestamp_ms - timestamp_ms % width_ms
        try:
            transaction: Any = self._sdf.processing_context.checkpoint.get_store_transaction(
                stream_id=self._sdf.stream_id, partition=self._partition(), store_name=self._open_window_store)
            stored = transaction.as_state(prefix=key).get_window(start, start + width_ms)
        except Exception as exc:  # internal API of quixstreams: fall back to the last closed window
            log.warning("open window not readable; provisional report from the last window", error=repr(exc))
            return None
        acc = stored.get("value", stored) if isinstance(stored, dict) else None  # the reducer's accumulator
        if not isinstance(acc, dict) or "records" not in acc:
            return None
        return features.finalize(acc, patient, PROVISIONAL_WIDTH_S, start * 1_000_000, computed_time_ns=self._clock())

    def prune_ecg(self) -> int:
        """Delete ECG blocks past the retention period; returns how many."""
        with self._engine.begin() as conn:
            pruned = history.prune_ecg(conn, self._clock() - self._retention_ns)
        ECG_PRUNED.inc(pruned)
        return pruned

    def _prune_loop(self) -> None:
        while not self._stopped.wait(self._prune_interval_s):
            try:
                if pruned := self.prune_ecg():
                    log.info("ecg blocks pruned", count=pruned)
            except Exception as exc:  # the database may be away for a while; try again next round
                log.warning("ecg prune failed", error=repr(exc))

    def run(self) -> None:
        pruner = threading.Thread(target=self._prune_loop, daemon=True, name="processor-ecg-prune")
        pruner.start()
        try:
            self.app.run()
        finally:
            self._stopped.set()

    def stop(self) -> None:
        self._stopped.set()
        self.app.stop()


_LAST_WINDOW = f"last_window:{PROVISIONAL_WIDTH_S}"


def _decoded(item: Item | None) -> bool:
    return item is not None


def _rare(item: Item) -> bool:
    """Late for a window, or revising a closed one, or an alarm that may make a provisional report."""
    return any(route != ON_TIME for route in item.route.values()) or item.record.WhichOneof("body") == "alarm"


def _provisional_trigger(item: Item) -> bool:
    record = item.record
    return (record.WhichOneof("body") == "alarm" and item.route[PROVISIONAL_WIDTH_S] == ON_TIME
            and triggers_provisional(record.alarm))


def _is_ecg(item: Item) -> bool:
    return item.record.WhichOneof("body") == "samples"


def _routed(width_s: int, route: str) -> Callable[[Item], bool]:
    def check(item: Item) -> bool:
        return item.route[width_s] == route

    return check


def _closed_key(width_s: int, start_ms: int) -> str:
    return f"closed:{width_s}:{start_ms}"


def _late_header(width_s: int) -> Callable[[Any, Any, int, Any], list[tuple[str, bytes]]]:
    def headers(value: Any, key: Any, timestamp: int, headers: Any) -> list[tuple[str, bytes]]:
        return [*(headers or []), ("late-window-s", str(width_s).encode())]

    return headers


def _fold(acc: Accumulator, item: Item) -> Accumulator:
    return features.fold(acc, item.record)


def _first(item: Item) -> Accumulator:
    return features.fold(features.new_accumulator(), item.record)


def _first_of(pair: tuple[bytes, bytes]) -> bytes:
    return pair[0]


def _second_of(pair: tuple[bytes, bytes]) -> bytes:
    return pair[1]


class _Application(Application):
    """quixstreams installs signal handlers on ``run``, which only the main thread may do."""

    def _setup_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            super()._setup_signal_handlers()  # type: ignore[no-untyped-call]

    def _on_assign(self, consumer: Any, topic_partitions: list[Any]) -> None:
        """Logged so that operators (and local stacks waiting for a ready processor) see when it consumes."""
        super()._on_assign(consumer, topic_partitions)
        log.info("processor partitions assigned", partitions=len(topic_partitions))


def run_processor(settings: CloudSettings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (main thread) or until ``stop`` is set."""
    setup_tracing(settings.tracing, "cardiogate-processor")
    ensure_topics(settings.kafka)
    engine = open_database(settings.db_url)
    processor = Processor(settings, engine)
    metrics_server = registry.start(settings.processor.metrics, "processor")
    watcher = None
    if stop is not None:
        def stop_when_set() -> None:
            stop.wait()
            processor.stop()

        watcher = threading.Thread(target=stop_when_set, daemon=True, name="processor-stop")
        watcher.start()
    print(f"cloud: processor reading {settings.kafka.bootstrap}, history in {engine.url.render_as_string()}",
          flush=True)
    try:
        processor.run()
    finally:
        engine.dispose()
        if metrics_server is not None:
            metrics_server.close()
