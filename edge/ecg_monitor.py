"""One device's ECG, watched continuously: beats, heart rate, signal quality, lead-off, rhythm.

Glue between the ECG frames a processor assembles and the pure analysers: the streaming
DSP (cardiogate.edge.dsp), the beat morphology rule and, when a model is loaded, the rhythm model
(cardiogate.edge.inference), run every ``rhythm_every_s`` on the last ``rhythm_window_s`` of signal.
Sample indices are derived from device time, so a gap or a clock jump restarts the
analysis instead of stitching unrelated signal together. Pure apart from the model's
own latency measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cardiogate.edge.dsp.analyzer import AnalyzerConfig, EcgAnalyzer
from cardiogate.edge.dsp.beats import label_beats
from cardiogate.edge.ecg_assembler import EcgFrame
from cardiogate.edge.inference import InferenceError, RhythmClassifier, RhythmResult

_NS = 1_000_000_000
RHYTHM_NAMES = {"N": "normal", "A": "af", "O": "other", "~": "noisy"}


@dataclass(frozen=True, slots=True)
class MonitoredBeat:
    device_time_ns: int
    label: str  # "N" or "V"


@dataclass
class MonitorOutput:
    """What one frame added. ``complete_ns``: device time up to which beat detection is final."""

    beats: list[MonitoredBeat] = field(default_factory=list)
    complete_ns: int | None = None
    heart_rate_bpm: float | None = None
    sqi: float | None = None
    lead_off: bool | None = None
    af_evidence: bool | None = None
    rhythm: RhythmResult | None = None
    rhythm_error: InferenceError | None = None
    rhythm_end_ns: int | None = None
    rhythm_window_uv: npt.NDArray[np.float64] | None = None  # the signal the model saw (for shadow models)
    interrupted: bool = False  # the signal restarted here (gap, clock jump): beat history before it is unrelated


class EcgMonitor:
    """Streaming analysis of one device's ECG at its own sample rate."""

    def __init__(self, sample_rate_hz: float, scale_uv: float, rhythm: RhythmClassifier | None = None,
                 rhythm_every_s: float = 10.0, rhythm_window_s: float = 30.0, mains_hz: float | None = 50.0) -> None:
        self.fs = sample_rate_hz
        self.scale_uv = scale_uv
        self._config = AnalyzerConfig(units_per_mv=1000.0 / scale_uv, mains_hz=mains_hz if mains_hz and
                                      mains_hz < sample_rate_hz / 2 else None)
        self._analyzer = EcgAnalyzer(sample_rate_hz, self._config)
        self._rhythm = rhythm
        self._rhythm_every = int(rhythm_every_s * sample_rate_hz)
        self._keep = int(max(rhythm_window_s, 2.0) * sample_rate_hz)
        self._base_ns: int | None = None
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0  # sample index of _buffer[0]
        self._next_rhythm_at: int | None = None
        self.beats_seen = 0

    def _index_of(self, device_ns: int) -> int:
        assert self._base_ns is not None
        return round((device_ns - self._base_ns) * self.fs / _NS)

    def _time_of(self, index: int) -> int:
        assert self._base_ns is not None
        return self._base_ns + round(index * _NS / self.fs)

    def _restart(self, frame: EcgFrame) -> None:
        self._base_ns = frame.first_sample_ns
        self._analyzer = EcgAnalyzer(self.fs, self._config)
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0
        self._next_rhythm_at = None

    def push(self, frame: EcgFrame) -> MonitorOutput:
        if frame.sample_rate_hz != self.fs or frame.scale_uv != self.scale_uv:
            raise ValueError("an ECG monitor serves one sample rate and scale; make a new one")
        if self._base_ns is None:
            self._restart(frame)
        first = self._index_of(frame.first_sample_ns)
        expected = self._buffer_start + self._buffer.size
        interrupted = False
        if first < expected - 1 or first > expected + self.fs * 60:  # backwards (clock jump) or a very long gap
            self._restart(frame)
            first, expected, interrupted = 0, 0, True
        if first != expected:  # a gap: the analyser restarts itself at the jump; the buffer restarts too
            self._buffer = np.zeros(0, dtype=np.float64)
            self._buffer_start = first
            self._next_rhythm_at = None  # the model waits for its minimum length of new signal
            interrupted = True
        x = frame.samples.astype(np.float64)
        update = self._analyzer.process(x, first)
        self._buffer = np.concatenate([self._buffer, x])
        if self._buffer.size > self._keep:
            drop = self._buffer.size - self._keep
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        out = MonitorOutput(heart_rate_bpm=update.heart_rate_bpm, sqi=update.sqi, lead_off=update.lead_off,
                            af_evidence=None if update.af is None else update.af.af, interrupted=interrupted)
        if update.peaks.size:
            local = update.peaks - self._buffer_start
            inside = (local >= 0) & (local < self._buffer.size)
            labels = label_beats(self._buffer, local[inside].astype(np.int64), self.fs)
            out.beats = [MonitoredBeat(self._time_of(int(p)), lab)
                         for p, lab in zip(update.peaks[inside], labels, strict=True)]
            self.beats_seen += len(out.beats)
        end = first + x.size
        out.complete_ns = self._time_of(end - update.lookahead_samples)
        self._maybe_classify(end, out)
        return out

    def _maybe_classify(self, end: int, out: MonitorOutput) -> None:
        if self._rhythm is None:
            return
        if self._next_rhythm_at is None:
            self._next_rhythm_at = self._buffer_start + self._rhythm.min_device_samples(self.fs)
        if end < self._next_rhythm_at:
            return
        self._next_rhythm_at = end + self._rhythm_every
        try:
            out.rhythm = self._rhythm.classify(self._buffer, self.fs, self.scale_uv)
        except InferenceError as exc:
            out.rhythm_error = exc
        out.rhythm_end_ns = self._time_of(end)
        out.rhythm_window_uv = self._buffer * self.scale_uv

    def set_rhythm_model(self, rhythm: RhythmClassifier | None) -> None:
        """Swap the rhythm model (after an update switched versions); the signal history stays."""
        self._rhythm = rhythm


