"""One device's ECG, watched continuously: beats, heart rate, signal quality, lead-off, rhythm.

Glue between the ECG frames a processor assembles and the pure analysers: the streaming
DSP (cardiogate.edge.dsp), the VT evidence (beat morphology against the patient's own sinus beat,
a second lead and a pulse waveform when the device has them: cardiogate.edge.dsp.vt_watch) and,
when a model is loaded, the rhythm model
(cardiogate.edge.inference), run every ``rhythm_every_s`` on the last ``rhythm_window_s`` of signal.
Sample indices are derived from device time, so a gap or a clock jump restarts the
analysis instead of stitching unrelated signal together. Pure apart from the model's
own latency measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from cardiogate.edge.dsp.analyzer import AnalyzerConfig, EcgAnalyzer
from cardiogate.edge.dsp.vf import VfJudgement, VfRhythm, VfVerdict, VfWatch, judge
from cardiogate.edge.dsp.vt import VtConfig, VtVerdict
from cardiogate.edge.dsp.vt_watch import VtWatch
from cardiogate.edge.ecg_assembler import EcgFrame
from cardiogate.edge.inference import InferenceError, RhythmClassifier, RhythmResult

_NS = 1_000_000_000
RHYTHM_NAMES = {"N": "normal", "A": "af", "O": "other", "~": "noisy"}
AuxKind = Literal["ecg", "pulse"]


@dataclass(frozen=True, slots=True)
class MonitoredBeat:
    device_time_ns: int
    label: str  # "N" or "V"
    vt_confirmed: bool | None = None  # for "V" beats with VT rejection on: does the evidence support a VT?
    vt_reason: str = ""  # why (shown on the alarm or on the "VT unconfirmed" advisory)
    vt_corroborated: bool = False  # confirmed on positive evidence: a second lead or the pulse shows it too
    vt_run: int = 0  # the longest ventricular run the check saw in any lead (a lead's detector may miss beats)
    # The check waits for the pulse that covers this one-lead run, until this device time at the latest
    # (``vt_confirmed`` None meanwhile): the engine counts the run but holds the alarm.
    vt_pending_until_ns: int | None = None
    # Not a new beat: the beat that brought a waiting run to the limit, restated with the check's final verdict
    # (sent once, on the chunk where the wait ended). Counters of beats skip it.
    vt_decision: bool = False
    # Counted while the lead is in ventricular flutter/fibrillation (cardiogate.edge.dsp.vf.VfRhythm): a wave, not a
    # beat. The alarm engine still sees it (a VT run in progress counts on, asystole must not read flutter as a
    # pause), but it is no beat to report and no part of a heart rate.
    in_vf: bool = False


@dataclass
class MonitorOutput:
    """What one frame added. ``complete_ns``: device time up to which beat detection is final."""

    beats: list[MonitoredBeat] = field(default_factory=list)
    complete_ns: int | None = None
    heart_rate_bpm: float | None = None  # None while the lead is in VF/VFL: its waves are no heart rate
    sqi: float | None = None
    lead_off: bool | None = None
    af_evidence: bool | None = None
    rhythm: RhythmResult | None = None
    rhythm_error: InferenceError | None = None
    rhythm_end_ns: int | None = None
    rhythm_window_uv: npt.NDArray[np.float64] | None = None  # the signal the model saw (for shadow models)
    interrupted: bool = False  # the signal restarted here (gap, clock jump): beat history before it is unrelated
    vf: list[tuple[int, VfVerdict, str]] = field(default_factory=list)  # (window end ns, verdict, why) per VF window


class EcgMonitor:
    """Streaming analysis of one device's ECG at its own sample rate."""

    def __init__(self, sample_rate_hz: float, scale_uv: float, rhythm: RhythmClassifier | None = None,
                 rhythm_every_s: float = 10.0, rhythm_window_s: float = 30.0, mains_hz: float | None = 50.0,
                 vt_rejection: bool = True, vt: VtConfig | None = None) -> None:
        self.fs = sample_rate_hz
        self.scale_uv = scale_uv
        self._config = AnalyzerConfig(units_per_mv=1000.0 / scale_uv, mains_hz=mains_hz if mains_hz and
                                      mains_hz < sample_rate_hz / 2 else None)
        self._analyzer = EcgAnalyzer(sample_rate_hz, self._config)
        self._vt_rejection = vt_rejection
        self._vt = VtWatch(sample_rate_hz, self._config.units_per_mv, self._config.mains_hz, vt)
        # the primary lead's non-VF windows need no measure beyond the spectrum; the second lead's all do (a veto
        # reads its TCSC and amplitude)
        self._vf = VfWatch(sample_rate_hz, self._config.units_per_mv, screen=True)
        self._vf_aux = VfWatch(sample_rate_hz, self._config.units_per_mv)
        self._vf_aux_latest: VfJudgement | None = None
        self._vf_rhythm = VfRhythm()
        self._rhythm = rhythm
        self._rhythm_every = int(rhythm_every_s * sample_rate_hz)
        self._keep = int(max(rhythm_window_s, 2.0) * sample_rate_hz)
        self._base_ns: int | None = None
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0  # sample index of _buffer[0]
        self._next_rhythm_at: int | None = None
        self._aux_tail: dict[AuxKind, tuple[float, float]] = {}  # resampled channels: last source sample
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
        self._vt.reset()
        self._vf.reset()
        self._vf_aux.reset()
        self._vf_aux_latest = None
        self._vf_rhythm.reset()
        self._aux_tail = {}
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
            self._vt.reset()
            self._vf_rhythm.reset()
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
        end = first + x.size
        ventricular = self._vt.primary(x, first, update.peaks, update.sqi)
        # judged on every chunk with ventricular beats, and on every chunk while a decision waits for the pulse
        settled = self._vt.decide(end) if self._vt_rejection and (any(ventricular) or self._vt.waiting) else None
        # the VF windows first: whether a beat was counted in flutter is judged by every window ending before it
        for j in self._vf.push(x, first):
            at, verdict, why = self._vf_verdict(j)
            out.vf.append((at, verdict, why))
            self._vf_rhythm.observe(j.end, verdict == "vf")
        if self._vf_rhythm.holds:
            out.heart_rate_bpm = None
        if update.peaks.size:
            check = settled.verdict if settled is not None else None
            out.beats = [self._beat(int(p), v, check) for p, v in zip(update.peaks.tolist(), ventricular, strict=True)]
            self.beats_seen += len(out.beats)
        if settled is not None and settled.decisions:
            out.beats[:0] = [MonitoredBeat(self._time_of(at), "V", v.confirmed, v.reason, v.corroborated, v.run_beats,
                                           vt_decision=True) for at, v in settled.decisions]
        out.complete_ns = self._time_of(end - update.lookahead_samples)
        self._maybe_classify(end, out)
        return out

    def _vf_verdict(self, j: VfJudgement) -> tuple[int, VfVerdict, str]:
        """A primary-lead VF window weighed against the second lead's latest window and the pulse
        (:func:`cardiogate.edge.dsp.vf.judge`); with the VT rejection off for the site, the primary lead decides
        alone. Only the primary lead can raise VF; the second lead's windows serve as evidence."""
        other, pulse = None, None
        if j.vf and self._vt_rejection:
            aux = self._vf_aux_latest
            if aux is not None and abs(aux.end - j.end) <= self._vf.step:
                other = aux.features
            evidence = self._vt.pulse_between(j.end - self._vf.window, j.end)
            pulse = evidence.reason if evidence is not None and evidence.regular else None
        verdict, why = judge(j.features, self._vf.cfg, other, pulse)
        return self._time_of(j.end), verdict, why

    def _beat(self, peak: int, ventricular: bool, check: VtVerdict | None) -> MonitoredBeat:
        t, in_vf = self._time_of(peak), self._vf_rhythm.holds_at(peak)
        if not ventricular or check is None:
            return MonitoredBeat(t, "V" if ventricular else "N", in_vf=in_vf)
        hold = self._vt.hold
        run = self._run_through(peak, check)
        if check.pending_from is not None and hold is not None:
            return MonitoredBeat(t, "V", None, check.reason, False, run,
                                 vt_pending_until_ns=self._time_of(hold.until), in_vf=in_vf)
        return MonitoredBeat(t, "V", check.confirmed, check.reason, check.corroborated, run, in_vf=in_vf)

    def _run_through(self, peak: int, check: VtVerdict) -> int:
        """The check's run length for this beat: only a beat inside that run, or where its next beat would come,
        carries it (the other lead's detector may confirm the run's last beat a chunk after this lead's beat); a
        lone ventricular beat seconds after the run has ended counts as what the alarm engine sees."""
        span = check.run_span
        if span is None:
            return check.run_beats
        cfg = self._vt.cfg
        tol = round(cfg.agree_tol_s * self.fs)
        next_beat = round(60.0 / cfg.min_rate_bpm * self.fs)  # the slowest VT's next beat
        return check.run_beats if span[0] - tol <= peak <= span[1] + next_beat + tol else 0

    def push_aux(self, kind: AuxKind, frame: EcgFrame) -> None:
        """A second ECG lead or a pulse waveform (PPG, arterial pressure) of the same patient, for the VT check.

        Only used once the primary lead has started the clock; another sample rate is interpolated onto it.
        """
        if self._base_ns is None:
            return
        first = self._index_of(frame.first_sample_ns)
        x = frame.samples.astype(np.float64)
        if frame.sample_rate_hz != self.fs and x.size:
            assert self._base_ns is not None
            at = ((frame.first_sample_ns - self._base_ns) * self.fs / _NS
                  + np.arange(x.size) * (self.fs / frame.sample_rate_hz))  # source samples on our clock
            tail = self._aux_tail.get(kind)  # the previous frame's last sample: interpolate across the seam
            if tail is not None and 0.0 < at[0] - tail[0] <= 2.0 * self.fs / frame.sample_rate_hz:
                at, x = np.concatenate([[tail[0]], at]), np.concatenate([[tail[1]], x])
                first = int(np.floor(tail[0])) + 1
            else:
                first = int(np.ceil(at[0]))
            self._aux_tail[kind] = (float(at[-1]), float(x[-1]))
            x = np.interp(np.arange(first, int(np.floor(at[-1])) + 1, dtype=np.float64), at, x)
        if kind == "ecg":
            self._vt.aux_ecg(x, first)
            judged = self._vf_aux.push(x, first)
            if judged:
                self._vf_aux_latest = judged[-1]
        else:
            self._vt.pulse(x, first)

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


