"""The cloud's own history -> one :class:`FleetSample` per patient pseudonym at an explicit prediction time.

Sources (the cloud database, read only, never migrated or written): the stream processor's feature windows
(``feature_windows``, migration 0002_history), the gateways' alarm events (``alarm_events``, 0007_cloud_core) and
the clinicians' true/false answers from the API's ``labelAlarm`` (``alarm_labels``, 0007_cloud_core). Nothing
else is read: not the identity tables (the loader only ever sees pseudonyms), not ``latest_vitals`` or
``alarms_current`` (overwritten in place, so they always hold the future), not comments, commands or
acknowledgements (clinicians' actions after the alarm), not the label's note or client, and not risk reports
(the serving model's own outputs).

The models package may not import the cloud (tests/test_import_contract.py; the cloud imports the models, so the
reverse would also be a cycle), so the columns read are declared here with SQLAlchemy Core's ``table()`` /
``column()`` and checked against the database before anything is read: a database without them fails with
:class:`FleetHistoryError` naming each missing table and column. The test checks these declarations against the
cloud's own schema, so a migration that renames a column fails there, not silently here.

Prediction time (device time, ns, the clock windows are aligned to). By default one sample per labelled alarm at
its raise time: the device time of its first ``raised`` event, timed as the processor times alarms (trigger
sample, else onset sample, else decision). With ``prediction_times`` one sample per given pseudonym.

The cut: a row reaches the features only if it was known at the prediction time ``t``.

- A feature window is known at the later of its end (device time) and its ``computed_time_ns`` (the processor's
  clock, when the row now stored was written). The table keeps only a window's newest revision, so a window
  revised after ``t`` (late records arrived after ``t``) is dropped: the revision that was current at ``t`` is
  gone. With the processor's grace period (120 s by default) this also drops the last minutes before ``t``:
  at ``t`` they had not been published yet. Known windows are used only within ``lookback_s`` before ``t``.
- An alarm event counts when its device time is at or before ``t`` and it was published (gateway clock) at or
  before ``t``; only ``raised`` and ``escalated`` events are read, and the sample's own alarm is the anchor, not
  a prior alarm (its condition, priority, value and limit at raise time are known at ``t``).
- Labels are only ever targets.

Every row a cut drops is counted by reason in :attr:`FleetHistory.counts` (``dropped_*``; a row is counted once
per sample it was dropped for). Comparing device time with the processor's and the gateway's clocks assumes
synchronised clocks (the gateways correct device time); a skew larger than the grace period moves rows across
the cut.

Labels: ``alarm_labels`` keeps one row per (alarm, clinician); a clinician's second answer replaces the first.
The alarm's label is the LATEST answer across clinicians (``time_ns``; on a tie the greater username wins, so a
rerun agrees): a later answer is usually a review of an earlier one. Alarms with both true and false answers are
flagged (``label_disagreement``, ``counts["labels_disagreeing"]``); ``on_disagreement="drop"`` leaves them
unlabelled instead. With ``prediction_times`` the label is whether an alarm raised in ``(t, t + label_horizon_s]``
was true: True if any such alarm's label is true, False if there was at least one and every one is labelled
false, else None (no alarm, or an unlabelled one and no true one).

Needs SQLAlchemy (the ``[cloud]`` extra) and numpy; no pandas, never torch.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from google.protobuf.message import DecodeError
from sqlalchemy import Connection, Engine, column, create_engine, inspect, make_url, select, table

from cardiogate.proto.v1 import features_pb2

WIDTHS = (60, 300)
"""Window widths the processor writes (1 and 5 minutes)."""
DEFAULT_LOOKBACK_S = 30 * 60
"""Trailing period before the prediction time that window features and recent alarm counts cover."""
DEFAULT_LABEL_HORIZON_S = 15 * 60
"""With explicit prediction times: how far after ``t`` an alarm's label still answers for ``t``."""
COLUMN_FEATURES = ("hr_mean", "hr_min", "hr_max", "sdnn_ms", "rmssd_ms", "spo2_min", "spo2_mean", "systolic_mean",
                   "diastolic_mean", "af_burden", "signal_quality_mean", "completeness", "record_count")
"""Window columns that become features."""
PAYLOAD_FEATURES: tuple[Literal["mean_arterial_mean", "respiratory_rate_mean"], ...] = (
    "mean_arterial_mean", "respiratory_rate_mean")
"""FeatureWindow fields without a column of their own, read from the stored message."""
STATS = ("last", "mean", "min", "max", "slope")
"""Per feature and width: the newest known value, mean, min, max, and the least-squares slope per minute."""
PRIORITIES = ("high", "medium", "low", "technical")
ALARM_STATES = ("raised", "escalated")
"""The only alarm events read (cleared, acknowledged, silenced, ... are never read)."""
_WINDOW_KEYS = ("patient", "width_s", "start_device_time_ns", "end_device_time_ns", "revision", "computed_time_ns")
_ALARM_COLUMNS = ("alarm_id", "patient", "condition", "priority", "state", "value", "limit",
                  "onset_sample_device_time_ns", "trigger_sample_device_time_ns", "decision_time_ns",
                  "publish_time_ns")
_LABEL_COLUMNS = ("alarm_id", "username", "patient", "is_true", "time_ns")
REQUIRED: dict[str, tuple[str, ...]] = {
    "feature_windows": (*_WINDOW_KEYS, *COLUMN_FEATURES, "payload"),
    "alarm_events": _ALARM_COLUMNS,
    "alarm_labels": _LABEL_COLUMNS,
}
"""The tables and columns the loader reads; nothing else of the database is touched."""
_T = {name: table(name, *(column(c) for c in cols)) for name, cols in REQUIRED.items()}
NAN = math.nan


class FleetHistoryError(ValueError):
    """The database lacks what the loader reads (not a cloud database migrated to head)."""


@dataclass(frozen=True)
class WindowRow:
    """One stored feature window (its newest revision); missing values are NaN."""

    patient: str
    width_s: int
    start_ns: int
    end_ns: int
    revision: int
    computed_ns: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class AlarmRow:
    """One raised or escalated alarm event; ``time_ns`` is its device time, ``publish_ns`` the gateway's clock."""

    alarm_id: str
    patient: str
    condition: str
    priority: str
    state: str
    value: float
    limit: float
    time_ns: int
    publish_ns: int


@dataclass(frozen=True)
class LabelAnswer:
    """One clinician's current answer on one alarm (the note and client are never read)."""

    alarm_id: str
    patient: str
    username: str
    is_true: bool
    time_ns: int


@dataclass(frozen=True)
class ResolvedLabel:
    """What the answers on one alarm (or the alarms of a horizon) say."""

    label: bool | None
    answers: int
    disagreement: bool


@dataclass(frozen=True)
class FleetSample:
    """One patient at one prediction time: features known at ``prediction_time_ns`` and the label after it."""

    patient: str
    """Pseudonym."""
    prediction_time_ns: int
    """Device time, ns."""
    alarm_id: str | None
    """The alarm the sample is anchored at (default mode); None with explicit prediction times."""
    condition: str | None
    priority: str | None
    """The anchor alarm's priority at raise time (a later escalation is not known at ``t``)."""
    label: bool | None
    """The clinicians' true/false (see the module's label rule); NEVER a feature."""
    label_answers: int
    label_disagreement: bool
    features: Mapping[str, float]


@dataclass
class FleetHistory:
    """The samples, the counts of what was read and dropped, and a sentence that says what came out."""

    samples: list[FleetSample]
    counts: dict[str, int]
    message: str

    def feature_names(self) -> list[str]:
        """Every feature any sample has, sorted (alarm-count names depend on the conditions seen)."""
        return sorted({name for s in self.samples for name in s.features})

    def matrix(self, names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """(names, samples x names): a missing alarm count is 0, any other missing feature NaN. Pass a trained
        model's ``names`` to get its columns in its order."""
        cols = list(names) if names is not None else self.feature_names()
        x = np.full((len(self.samples), len(cols)), NAN)
        for i, s in enumerate(self.samples):
            for j, name in enumerate(cols):
                x[i, j] = s.features.get(name, 0.0 if name.startswith("alarms_") else NAN)
        return cols, x

    def labels(self) -> np.ndarray:
        """1.0 true, 0.0 false, NaN unlabelled, one per sample."""
        return np.array([NAN if s.label is None else float(s.label) for s in self.samples])

    def labelled(self) -> list[FleetSample]:
        return [s for s in self.samples if s.label is not None]


def check_schema(engine: Engine) -> None:
    """Raise :class:`FleetHistoryError` naming every table and column the loader reads that is missing."""
    found = inspect(engine)
    tables = set(found.get_table_names())
    missing = [f"table {name}" for name in REQUIRED if name not in tables]
    for name, cols in REQUIRED.items():
        if name in tables:
            have = {c["name"] for c in found.get_columns(name)}
            missing += [f"column {name}.{c}" for c in cols if c not in have]
    if missing:
        raise FleetHistoryError(
            f"the database {engine.url.render_as_string()} lacks {', '.join(missing)}: not a cardiogate cloud "
            "database at head (feature_windows: migration 0002_history; alarm_events, alarm_labels: 0007_cloud_core;"
            " any cloud service migrates it at start)")


def _num(value: Any) -> float:
    return NAN if value is None else float(value)


def _payload_values(payload: Any, counts: Counter[str]) -> dict[str, float]:
    """The payload-only fields; NaN (and counted) when the stored message does not parse."""
    try:
        w = features_pb2.FeatureWindow.FromString(bytes(payload or b""))
    except DecodeError:
        counts["window_payloads_unreadable"] += 1
        return dict.fromkeys(PAYLOAD_FEATURES, NAN)
    return {f: getattr(w, f) if w.HasField(f) else NAN for f in PAYLOAD_FEATURES}


def read_windows(conn: Connection, patient: str, widths: Sequence[int], counts: Counter[str]) -> list[WindowRow]:
    """One patient's stored windows of the given widths, oldest first."""
    t = _T["feature_windows"]
    query = (select(*t.c).where(t.c.patient == patient, t.c.width_s.in_(list(widths)))
             .order_by(t.c.width_s, t.c.start_device_time_ns))
    rows = []
    for r in conn.execute(query).mappings():
        values = {f: _num(r[f]) for f in COLUMN_FEATURES} | _payload_values(r["payload"], counts)
        rows.append(WindowRow(str(r["patient"]), int(r["width_s"]), int(r["start_device_time_ns"]),
                              int(r["end_device_time_ns"]), int(r["revision"]), int(r["computed_time_ns"]), values))
    return rows


def alarm_time(onset_ns: int, trigger_ns: int, decision_ns: int) -> int:
    """An alarm event's device time as the processor places it in windows: trigger, else onset, else decision."""
    return trigger_ns or onset_ns or decision_ns


def read_alarms(conn: Connection, patient: str) -> list[AlarmRow]:
    """One patient's raised and escalated alarm events, in device-time order."""
    t = _T["alarm_events"]
    query = select(*t.c).where(t.c.patient == patient, t.c.state.in_(ALARM_STATES))
    rows = [AlarmRow(str(r["alarm_id"]), str(r["patient"]), str(r["condition"]), str(r["priority"]), str(r["state"]),
                     _num(r["value"]), _num(r["limit"]),
                     alarm_time(int(r["onset_sample_device_time_ns"]), int(r["trigger_sample_device_time_ns"]),
                                int(r["decision_time_ns"])), int(r["publish_time_ns"]))
            for r in conn.execute(query).mappings()]
    return sorted(rows, key=lambda a: (a.time_ns, a.alarm_id, a.state))


def read_labels(conn: Connection) -> list[LabelAnswer]:
    """Every clinician's current answer (one row per alarm and clinician)."""
    t = _T["alarm_labels"]
    return [LabelAnswer(str(r["alarm_id"]), str(r["patient"]), str(r["username"]), bool(r["is_true"]),
                        int(r["time_ns"])) for r in conn.execute(select(*t.c)).mappings()]


def resolve_label(answers: Sequence[LabelAnswer],
                  on_disagreement: Literal["latest", "drop"] = "latest") -> ResolvedLabel:
    """The latest answer (ties: by username); with answers both ways, flagged, and None under ``drop``."""
    if not answers:
        return ResolvedLabel(None, 0, False)
    latest = max(answers, key=lambda a: (a.time_ns, a.username))
    disagreement = len({a.is_true for a in answers}) > 1
    label = None if disagreement and on_disagreement == "drop" else latest.is_true
    return ResolvedLabel(label, len(answers), disagreement)


def horizon_label(raises: Iterable[AlarmRow], resolved: Mapping[str, ResolvedLabel], t: int,
                  horizon_ns: int) -> ResolvedLabel:
    """Whether an alarm raised in ``(t, t + horizon]`` was true: True if any was, False if all were labelled false,
    else None."""
    ids = {a.alarm_id for a in raises if t < a.time_ns <= t + horizon_ns}
    found = [resolved.get(i, ResolvedLabel(None, 0, False)) for i in ids]
    labels = [r.label for r in found]
    label = True if True in labels else (False if labels and None not in labels else None)
    return ResolvedLabel(label, sum(r.answers for r in found), any(r.disagreement for r in found))


def known_windows(rows: Iterable[WindowRow], t: int, lookback_ns: int, counts: Counter[str]) -> list[WindowRow]:
    """The windows known at ``t`` within the lookback; every other row counted by why it was left out."""
    kept = []
    for w in rows:
        if w.end_ns > t:
            counts["dropped_windows_ending_after_prediction"] += 1
        elif w.computed_ns > t:
            counts["dropped_windows_revised_after_prediction" if w.revision
                   else "dropped_windows_computed_after_prediction"] += 1
        elif w.start_ns < t - lookback_ns:
            counts["dropped_windows_before_lookback"] += 1
        else:
            kept.append(w)
    return kept


def known_alarms(alarms: Iterable[AlarmRow], t: int, anchor: str | None, counts: Counter[str]) -> list[AlarmRow]:
    """Other alarms' events known at ``t``; later ones (and the anchor's own later events) counted and left out."""
    kept = []
    for a in alarms:
        if a.alarm_id == anchor and a.time_ns <= t:
            continue  # the anchor itself: its raise is the prediction time, not a prior alarm
        if a.time_ns > t:
            counts["dropped_alarm_events_after_prediction"] += 1
        elif a.publish_ns > t:
            counts["dropped_alarm_events_published_after_prediction"] += 1
        else:
            kept.append(a)
    return kept


def trend(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """last/mean/min/max/slope of the finite values of ``y`` over times ``x`` (minutes); NaN where undefined."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(y):
        return dict.fromkeys(STATS, NAN)
    dx = x - x.mean()
    var = float((dx * dx).sum())
    slope = float((dx * (y - y.mean())).sum()) / var if var > 0 else NAN
    return {"last": float(y[-1]), "mean": float(y.mean()), "min": float(y.min()), "max": float(y.max()),
            "slope": slope}


def window_features(windows: Sequence[WindowRow], t: int, widths: Sequence[int]) -> dict[str, float]:
    """Per width: how many windows, the age of the newest, and :func:`trend` of each window feature."""
    out: dict[str, float] = {}
    for width in widths:
        own = sorted((w for w in windows if w.width_s == width), key=lambda w: w.end_ns)
        prefix = f"w{width}s_"
        out[prefix + "windows"] = float(len(own))
        out[prefix + "newest_age_s"] = (t - own[-1].end_ns) / 1e9 if own else NAN
        x = np.array([(w.end_ns - t) / 60e9 for w in own])
        for name in (*COLUMN_FEATURES, *PAYLOAD_FEATURES):
            y = np.array([w.values[name] for w in own], dtype=float)
            out.update({f"{prefix}{name}_{stat}": v for stat, v in trend(x, y).items()})
    return out


def alarm_features(alarms: Sequence[AlarmRow], t: int, lookback_ns: int) -> dict[str, float]:
    """Counts of other alarms' raises before ``t`` (all, and in the lookback by priority and condition) and
    escalations in the lookback."""
    span = f"alarms_{lookback_ns // 60_000_000_000}m_"
    recent = [a for a in alarms if a.time_ns >= t - lookback_ns]
    raised = [a for a in recent if a.state == "raised"]
    out = {"alarms_before_total": float(sum(a.state == "raised" for a in alarms)),
           span + "raised": float(len(raised)), span + "escalated": float(len(recent) - len(raised))}
    out.update({f"{span}priority_{p}": 0.0 for p in PRIORITIES})
    keys = [f"priority_{a.priority}" for a in raised] + [f"condition_{a.condition}" for a in raised]
    out.update({span + key: float(n) for key, n in Counter(keys).items()})
    return out


def sample_features(windows: Sequence[WindowRow], alarms: Sequence[AlarmRow], anchor: AlarmRow | None, t: int,
                    widths: Sequence[int], lookback_ns: int, counts: Counter[str]) -> dict[str, float]:
    """Everything known at ``t``: window trends, prior alarm counts, and the anchor alarm's value and limit."""
    out = window_features(known_windows(windows, t, lookback_ns, counts), t, widths)
    out.update(alarm_features(known_alarms(alarms, t, anchor.alarm_id if anchor else None, counts), t, lookback_ns))
    out["alarm_value"] = anchor.value if anchor else NAN
    out["alarm_limit"] = anchor.limit if anchor else NAN
    return out


def first_raises(alarms: Iterable[AlarmRow]) -> dict[str, AlarmRow]:
    """Each alarm's first ``raised`` event (a replay under another sequence is not a new raise)."""
    found: dict[str, AlarmRow] = {}
    for a in alarms:
        if a.state == "raised" and (a.alarm_id not in found or a.time_ns < found[a.alarm_id].time_ns):
            found[a.alarm_id] = a
    return found


@dataclass(frozen=True)
class _Options:
    """The load's settings in the units the cut compares (ns)."""

    widths: tuple[int, ...]
    lookback_ns: int
    horizon_ns: int
    on_disagreement: Literal["latest", "drop"]


def _patient_samples(conn: Connection, patient: str, times: Sequence[int] | None,
                     answers: Mapping[str, list[LabelAnswer]], opt: _Options,
                     counts: Counter[str]) -> list[FleetSample]:
    """One patient's samples: at each labelled alarm's raise (``times`` None) or at the given times."""
    windows, alarms = read_windows(conn, patient, opt.widths, counts), read_alarms(conn, patient)
    raises = first_raises(alarms)
    resolved = {i: resolve_label(a, opt.on_disagreement) for i, a in answers.items()}
    anchors: list[tuple[int, AlarmRow | None, ResolvedLabel]]
    if times is None:
        counts["dropped_labelled_alarms_without_raise_event"] += sum(i not in raises for i in answers)
        anchors = [(raises[i].time_ns, raises[i], r) for i, r in sorted(resolved.items()) if i in raises]
    else:
        anchors = [(t, None, horizon_label(raises.values(), resolved, t, opt.horizon_ns)) for t in times]
    return [FleetSample(patient, t, a.alarm_id if a else None, a.condition if a else None,
                        a.priority if a else None, r.label, r.answers, r.disagreement,
                        sample_features(windows, alarms, a, t, opt.widths, opt.lookback_ns, counts))
            for t, a, r in anchors]


def _tally(samples: Sequence[FleetSample], answers: Sequence[LabelAnswer], opt: _Options,
           counts: Counter[str]) -> None:
    """What came out, beside what was dropped: answers, disagreements, samples by label."""
    by_alarm: dict[str, set[bool]] = defaultdict(set)
    for a in answers:
        by_alarm[a.alarm_id].add(a.is_true)
    counts["label_answers"] = len(answers)
    counts["labelled_alarms"] = len(by_alarm)
    counts["labels_disagreeing"] = sum(len(v) > 1 for v in by_alarm.values())
    if opt.on_disagreement == "drop":
        counts["dropped_labels_disagreeing"] = counts["labels_disagreeing"]
    counts["samples"] = len(samples)
    counts["samples_true"] = sum(s.label is True for s in samples)
    counts["samples_false"] = sum(s.label is False for s in samples)
    counts["samples_unlabelled"] = sum(s.label is None for s in samples)


def _message(counts: Mapping[str, int], explicit: bool) -> str:
    """One sentence for the log; with no samples, why (an empty database is an answer, not a crash)."""
    if not counts["samples"]:
        if explicit:
            return "no prediction times given: 0 samples"
        return ("no labelled alarms with a raise event: alarm_labels holds "
                f"{counts['label_answers']} answers on {counts['labelled_alarms']} alarms (clinicians label "
                "alarms with the API's labelAlarm), so 0 samples; or pass prediction_times")
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
    return (f"fleet history: {counts['samples']} samples ({counts['samples_true']} true, "
            f"{counts['samples_false']} false, {counts['samples_unlabelled']} unlabelled); "
            f"{counts['labels_disagreeing']} alarms with disagreeing labels; {dropped} row drops at the cut")


def _group(answers: Iterable[LabelAnswer]) -> dict[str, dict[str, list[LabelAnswer]]]:
    """patient -> alarm -> answers."""
    out: dict[str, dict[str, list[LabelAnswer]]] = defaultdict(lambda: defaultdict(list))
    for a in answers:
        out[a.patient][a.alarm_id].append(a)
    return out


def _validated(prediction_times: Mapping[str, int]) -> dict[str, list[int]]:
    """Pseudonym -> [t]; a time that is not a positive int (ns) is refused, since seconds would cut everything."""
    out = {}
    for patient, t in prediction_times.items():
        if not patient or isinstance(t, bool) or not isinstance(t, int | np.integer) or t <= 0:
            raise ValueError(f"prediction time for {patient!r}: a positive device time in ns, got {t!r}")
        out[patient] = [int(t)]
    return out


def _open(url: str) -> Engine:
    """An engine on ``url``; a SQLite file that is not there is an error, not a new empty database."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not Path(path).is_file():
        raise FleetHistoryError(f"no database file at {path} ({url})")
    return create_engine(url)


def load_fleet_history(db_url: str | Engine, prediction_times: Mapping[str, int] | None = None,
                       label_horizon_s: float = DEFAULT_LABEL_HORIZON_S, *, lookback_s: float = DEFAULT_LOOKBACK_S,
                       widths: Sequence[int] = WIDTHS, on_disagreement: Literal["latest", "drop"] = "latest",
                       log: Callable[[str], None] = lambda _m: None) -> FleetHistory:
    """Samples from the cloud database at ``db_url`` (a URL or an engine; read only, never migrated): one per
    labelled alarm at its raise time, or one per pseudonym of ``prediction_times`` (device time, ns)."""
    if on_disagreement not in ("latest", "drop"):
        raise ValueError(f"on_disagreement is 'latest' or 'drop', not {on_disagreement!r}")
    opt = _Options(tuple(widths), int(lookback_s * 1e9), int(label_horizon_s * 1e9), on_disagreement)
    times = None if prediction_times is None else _validated(prediction_times)
    engine = _open(db_url) if isinstance(db_url, str) else db_url
    try:
        check_schema(engine)
        counts: Counter[str] = Counter()
        with engine.connect() as conn:
            answers = read_labels(conn)
            grouped = _group(answers)
            patients = sorted(grouped) if times is None else sorted(times)
            samples = [s for p in patients
                       for s in _patient_samples(conn, p, None if times is None else times[p], grouped.get(p, {}),
                                                 opt, counts)]
    finally:
        if isinstance(db_url, str):
            engine.dispose()
    _tally(samples, answers, opt, counts)
    result = FleetHistory(samples, dict(sorted(counts.items())), _message(counts, times is not None))
    log(result.message)
    return result
