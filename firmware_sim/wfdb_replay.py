"""Replay of recorded ECG (WFDB records such as MIT-BIH or BIDMC, and CinC 2017 .mat/.hea) through a watch.

A record is read once, converted to microvolts and resampled to the watch's rate with a
polyphase filter at the exact rational ratio (360 -> 250 Hz is 25/36). Annotated beats, when
the record has them, give the beat times, so the heart rate and RR intervals a watch sends
agree with the ECG it streams. The interface matches PatientSimulator's ECG and beat methods
(:class:`cardiogate.sim.rhythm.EcgBeatSource`), so a watch can be driven by either.
"""

from __future__ import annotations

import bisect
import math
import re
import tarfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import wfdb  # type: ignore[import-untyped]
from scipy.signal import resample_poly  # type: ignore[import-untyped]

from cardiogate.sim.rhythm import Beat, Episode, episodes_from_beats, reported_rate_bpm

F64 = npt.NDArray[np.float64]
# Annotation codes that mark a beat (the reference-beat set used for R-peak scoring in the product brief).
BEAT_SYMBOLS = frozenset({"N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f",
                          "Q", "?"})
_RHYTHM_NAMES = {"N": "sinus", "AFIB": "af", "VT": "vt"}
_UNIT_TO_UV = {"uv": 1.0, "mv": 1000.0, "v": 1_000_000.0}


def resample_ratio(source_rate_hz: float, target_rate_hz: int) -> tuple[int, int]:
    """(up, down) with target/source = up/down exactly, e.g. 360 -> 250 Hz gives (25, 36)."""
    ratio = Fraction(target_rate_hz) / Fraction(source_rate_hz).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def rhythm_name(aux_note: str) -> str:
    """MIT-BIH rhythm label ('(AFIB') to the simulator's names (af); unknown labels lower-cased."""
    label = aux_note.strip("\x00 ").lstrip("(")
    return _RHYTHM_NAMES.get(label, label.lower())


class RecordedEcgSource:
    """A recorded ECG (microvolts at ``source_rate_hz``) and its annotated beats, replayed at ``target_rate_hz``.

    With ``loop`` the record repeats forever (beats too); without it, reads past the end return
    fewer samples (an empty array once exhausted) and no beats.
    """

    def __init__(self, signal_uv: npt.ArrayLike, source_rate_hz: float, target_rate_hz: int = 250, *,
                 beat_samples: Sequence[int] = (), beat_symbols: Sequence[str] = (),
                 beat_rhythms: Sequence[str] = (), loop: bool = False, name: str = "record") -> None:
        if target_rate_hz <= 0 or source_rate_hz <= 0:
            raise ValueError("sample rates must be positive")
        x = np.nan_to_num(np.asarray(signal_uv, dtype=np.float64), nan=0.0)  # invalid samples read as 0 uV
        if x.ndim != 1 or x.size == 0:
            raise ValueError("signal_uv must be a non-empty 1-D array")
        up, down = resample_ratio(source_rate_hz, target_rate_hz)
        self._x: F64 = x.copy() if up == down else np.asarray(resample_poly(x, up, down), dtype=np.float64)
        self.name = name
        self.loop = loop
        self.ecg_rate_hz = target_rate_hz
        self.source_rate_hz = source_rate_hz
        symbols = list(beat_symbols) or ["N"] * len(beat_samples)
        rhythms = list(beat_rhythms) or ["sinus"] * len(beat_samples)
        if not len(beat_samples) == len(symbols) == len(rhythms):
            raise ValueError("beat_samples, beat_symbols and beat_rhythms must have the same length")
        times = [s / source_rate_hz for s in beat_samples]
        self._beats = [Beat(t, sym, rh, t - times[i - 1] if i else None)
                       for i, (t, sym, rh) in enumerate(zip(times, symbols, rhythms, strict=True))]
        self._times = times

    @property
    def n_samples(self) -> int:
        """Samples in one pass of the record at the target rate."""
        return int(self._x.size)

    @property
    def duration_s(self) -> float:
        """Length of one pass of the record."""
        return self.n_samples / self.ecg_rate_hz

    @property
    def beat_indices(self) -> npt.NDArray[np.int64]:
        """Annotated beats as sample indices at the target rate (one pass)."""
        return np.round(np.asarray(self._times, dtype=np.float64) * self.ecg_rate_hz).astype(np.int64)

    def ecg_uv(self, first_index: int, count: int) -> F64:
        """``count`` samples from ``first_index``: wrapped when looping, cut short at the end otherwise."""
        if first_index < 0 or count < 0:
            raise ValueError("first_index and count must be non-negative")
        if self.loop:
            return self._x[(first_index + np.arange(count)) % self.n_samples]
        return self._x[first_index:first_index + count].copy()

    def beats_between(self, t0_s: float, t1_s: float) -> list[Beat]:
        """Annotated beats with t0_s <= t < t1_s (repeating each pass when looping)."""
        if not self._beats or t1_s <= t0_s:
            return []
        if not self.loop:
            return self._beats[bisect.bisect_left(self._times, t0_s):bisect.bisect_left(self._times, t1_s)]
        d = self.duration_s
        out: list[Beat] = []
        for lap in range(max(0, math.floor(t0_s / d)), math.floor(t1_s / d) + 1):
            lo = bisect.bisect_left(self._times, t0_s - lap * d)
            hi = bisect.bisect_left(self._times, t1_s - lap * d)
            out.extend(self._lapped(i, lap) for i in range(lo, hi))
        return out

    def _lapped(self, i: int, lap: int) -> Beat:
        beat = self._beats[i]
        if lap == 0:
            return beat
        rr = beat.rr_s if i else self._times[0] + self.duration_s - self._times[-1]
        return Beat(beat.t_s + lap * self.duration_s, beat.symbol, beat.rhythm, rr)

    def beats_until(self, t_s: float) -> list[Beat]:
        """Beats since the start of the replay, before ``t_s``."""
        return self.beats_between(0.0, t_s)

    def rr_intervals_s(self, t0_s: float, t1_s: float) -> list[float]:
        """RR intervals (s) ending at each beat in [t0_s, t1_s)."""
        return [b.rr_s for b in self.beats_between(t0_s, t1_s) if b.rr_s is not None]

    def _last_before(self, t_s: float, count: int) -> list[Beat]:
        lap = max(0, math.floor(t_s / self.duration_s)) if self.loop else 0
        out: list[Beat] = []
        while lap >= 0 and len(out) < count and self._beats:
            hi = bisect.bisect_right(self._times, t_s - lap * self.duration_s)
            out = [self._lapped(i, lap) for i in range(max(0, hi - count + len(out)), hi)] + out
            lap = lap - 1 if self.loop else -1
        return out[-count:]

    def heart_rate_bpm(self, t_s: float) -> float:
        """Heart rate a watch would report at ``t_s`` (60 / mean of the last 4 RR); 0 before two beats."""
        rate = reported_rate_bpm(self._last_before(t_s, 5), t_s, 4)
        return 0.0 if rate is None else rate

    def sensor_contact(self, t_s: float) -> bool:
        """True while there is signal: always when looping, until the end otherwise."""
        return self.loop or 0.0 <= t_s < self.duration_s

    def critical_episodes(self, until_s: float, sustain_s: float = 10.0) -> list[Episode]:
        """VT runs, pauses > 3 s and sustained HR < 40 / > 150 bpm in the annotated beats up to ``until_s``."""
        return episodes_from_beats(self.beats_between(0.0, until_s), sustain_s=sustain_s)


class WfdbRecordSource(RecordedEcgSource):
    """A WFDB record read with the ``wfdb`` package; ``channel`` is an index or a signal name (e.g. 'MLII')."""

    def __init__(self, record_path: str | Path, channel: int | str = 0, target_rate_hz: int = 250, *,
                 loop: bool = False, annotation: str | None = "atr") -> None:
        base = Path(record_path)
        if base.suffix in {".hea", ".dat", ".mat", ".atr"}:
            base = base.with_suffix("")
        header = wfdb.rdheader(str(base))
        names = [str(n) for n in header.sig_name]
        if isinstance(channel, str):
            if channel not in names:
                raise ValueError(f"{base}: no signal named {channel!r} (has {names})")
            index = names.index(channel)
        elif not 0 <= channel < len(names):
            raise ValueError(f"{base}: channel {channel} out of range (has {len(names)} signals)")
        else:
            index = channel
        record = wfdb.rdrecord(str(base), channels=[index])
        units = str(record.units[0]).lower()
        if units not in _UNIT_TO_UV:
            raise ValueError(f"{base}: signal {names[index]!r} is in {units!r}, not a voltage")
        signal = np.asarray(record.p_signal[:, 0], dtype=np.float64) * _UNIT_TO_UV[units]
        samples: list[int] = []
        symbols: list[str] = []
        rhythms: list[str] = []
        if annotation is not None and base.with_name(f"{base.name}.{annotation}").exists():
            ann = wfdb.rdann(str(base), annotation)
            rhythm = "sinus"
            for sample, symbol, aux in zip(ann.sample, ann.symbol, ann.aux_note, strict=True):
                if symbol == "+" and aux.strip("\x00 "):
                    rhythm = rhythm_name(aux)
                elif symbol in BEAT_SYMBOLS:
                    samples.append(int(sample))
                    symbols.append(str(symbol))
                    rhythms.append(rhythm)
        super().__init__(signal, float(record.fs), target_rate_hz, beat_samples=samples, beat_symbols=symbols,
                         beat_rhythms=rhythms, loop=loop, name=f"{base.name}:{names[index]}")


_GAIN = re.compile(r"^(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>[-+0-9]+)\))?(?:/(?P<units>\S+))?$")


def read_cinc2017(tar_path: str | Path, record_name: str, target_rate_hz: int = 250, *,
                  loop: bool = False) -> RecordedEcgSource:
    """A PhysioNet/CinC 2017 record (single lead, .hea + .mat in WFDB format 16) read straight from the
    challenge tarball, without extracting it. Scans the archive, so allow a second or so."""
    wanted = {f"{record_name}.hea", f"{record_name}.mat"}
    found: dict[str, bytes] = {}
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            fh = tar.extractfile(member) if base in wanted and member.isfile() else None
            if fh is not None:
                found[base] = fh.read()
                if len(found) == len(wanted):
                    break
    if len(found) != len(wanted):
        raise FileNotFoundError(f"record {record_name} (.hea and .mat) not found in {tar_path}")
    signal_uv, fs = _format16_signal(found[f"{record_name}.hea"].decode(), found[f"{record_name}.mat"])
    return RecordedEcgSource(signal_uv, fs, target_rate_hz, loop=loop, name=record_name)


def _format16_signal(header: str, data: bytes) -> tuple[F64, float]:
    """Microvolts and rate of a single-signal WFDB record stored as format 16 (optionally '16+offset')."""
    lines = [ln.split() for ln in header.splitlines() if ln.strip() and not ln.startswith("#")]
    record, signal = lines[0], lines[1]
    if int(record[1]) != 1:
        raise ValueError("only single-signal records are supported here")
    fs = float(record[2].split("/")[0])
    n_samples = int(record[3]) if len(record) > 3 else None
    fmt, _, offset = signal[1].partition("+")
    if fmt != "16":
        raise ValueError(f"WFDB format {signal[1]!r} not supported here (only 16)")
    m = _GAIN.match(signal[2]) if len(signal) > 2 else None
    gain = float(m["gain"]) if m else 200.0
    gain = gain or 200.0  # WFDB: gain 0 means the default 200 adu/mV
    adc_zero = int(signal[4]) if len(signal) > 4 else 0
    baseline = int(m["baseline"]) if m and m["baseline"] else adc_zero
    units = (m["units"] if m and m["units"] else "mV").lower()
    if units not in _UNIT_TO_UV:
        raise ValueError(f"signal units {units!r} are not a voltage")
    adu = np.frombuffer(data, dtype="<i2", offset=int(offset or 0))
    if n_samples is not None:
        adu = adu[:n_samples]
    return (adu.astype(np.float64) - baseline) / gain * _UNIT_TO_UV[units], fs
