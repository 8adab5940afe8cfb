"""Streaming VT evidence for one patient: beat morphology per ECG lead, a second lead, a pulse channel.

The ECG monitor hands every chunk of its primary lead (with the beats and quality its analyser found)
to :class:`VtWatch`; a second ECG lead and a pulsatile waveform (PLETH, ABP, wearable PPG) arrive
through :meth:`VtWatch.aux_ecg` and :meth:`VtWatch.pulse` on the same sample clock. The watch labels
beats (ventricular or not, see :mod:`cardiogate.edge.dsp.vt`) and, on request, judges the last
``window_s`` seconds with :func:`~cardiogate.edge.dsp.vt.assess_vt`. It uses no sample after the
chunk just received, so its only look-ahead is the R-peak detector's (0.37 s).

With one lead and a pulse, the pulse that covers a run usually arrives after the run reached the limit
(wearables send the PPG in frames); :func:`settle` then holds the decision for at most
``VtConfig.pulse_wait_s`` of device time, re-judged on every chunk, and confirms when the wait ends
without evidence, so a held run is always decided.

Indices are absolute sample numbers of the monitor's clock; a restart (gap, clock jump) resets
everything, because evidence from before a gap says nothing about the rhythm after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.analyzer import AnalyzerConfig, EcgAnalyzer
from cardiogate.edge.dsp.beats import r_width_s
from cardiogate.edge.dsp.ppg import run_pulse
from cardiogate.edge.dsp.pulse import PulseEvidence, follows_run, locked_delay, pulse_evidence
from cardiogate.edge.dsp.vt import (
    BeatShape,
    LeadRun,
    Run,
    SinusTemplate,
    VtConfig,
    VtVerdict,
    assess_vt,
    longest_run,
)

FloatArray = NDArray[np.float64]
PULSE_BASELINE_S = 60.0  # the pulse amplitude "before" is judged over this long before the window


@dataclass(frozen=True, slots=True)
class PulseHold:
    """A one-lead run's decision held for its pulse, from the beat at ``limit_at`` until ``until`` (sample indices).

    ``pending``: the run's latest verdict while waiting; ``decided``: the wait is over (evidence or expiry).
    """

    limit_at: int
    until: int
    pending: VtVerdict
    decided: bool = False


@dataclass(frozen=True, slots=True)
class Settled:
    """One chunk's outcome: the verdict for its ventricular beats (``pending_from`` set: still waiting), the
    holds that ended here as (the beat that reached the limit, the final verdict), and the hold state after it."""

    verdict: VtVerdict
    decisions: tuple[tuple[int, VtVerdict], ...]
    hold: PulseHold | None


def _expired(verdict: VtVerdict, wait_s: float) -> VtVerdict:
    """The wait ended without pulse evidence: confirmed (in doubt, never reject)."""
    return replace(verdict, confirmed=True, pending_from=None,
                   reason=f"{verdict.reason}: none covered the run within {wait_s:g} s, so confirmed")


def settle(hold: PulseHold | None, verdict: VtVerdict, now: int, wait: int, wait_s: float) -> Settled:
    """Pass the verdict judged at sample ``now`` through the pulse wait (``wait`` samples, ``wait_s`` seconds).

    A pending verdict opens a hold at its limit beat; any later verdict that is not pending decides it; at
    ``now >= until`` a still pending one is confirmed. A run whose wait is over never waits again (a run that
    shifts its start or splits within the hold is the same run); one that reaches the limit after it does.
    """
    if verdict.pending_from is None:
        if hold is not None and not hold.decided:
            return Settled(verdict, ((hold.limit_at, verdict),), replace(hold, decided=True))
        return Settled(verdict, (), hold)
    ended: tuple[tuple[int, VtVerdict], ...] = ()
    if hold is not None and verdict.pending_from > hold.until:  # a later run: the earlier wait is over
        if not hold.decided:
            ended = ((hold.limit_at, _expired(hold.pending, wait_s)),)
        hold = None
    if hold is None:
        hold = PulseHold(verdict.pending_from, verdict.pending_from + wait, verdict)
    elif not hold.decided:
        hold = replace(hold, pending=verdict)
    if hold.decided:
        return Settled(_expired(verdict, wait_s), ended, hold)
    if now >= hold.until:
        final = _expired(verdict, wait_s)
        return Settled(final, (*ended, (hold.limit_at, final)), replace(hold, decided=True))
    return Settled(replace(verdict, pending_from=hold.limit_at), ended, hold)


class _Ring:
    """The last ``keep`` samples of a channel and the absolute index of the first one."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = np.zeros(0, dtype=np.float64)
        self.start = 0

    def add(self, x: FloatArray, first: int) -> None:
        if first != self.start + self.data.size:  # a gap: restart at the new position
            self.data, self.start = np.zeros(0, dtype=np.float64), first
        self.data = np.concatenate([self.data, x])
        if self.data.size > self.keep:
            drop = self.data.size - self.keep
            self.data = self.data[drop:]
            self.start += drop

    @property
    def end(self) -> int:
        return self.start + self.data.size

    def between(self, lo: int, hi: int) -> FloatArray:
        a, b = max(lo, self.start) - self.start, max(min(hi, self.end) - self.start, 0)
        return self.data[a:b] if b > a else np.zeros(0, dtype=np.float64)


class _Lead:
    """One ECG lead: its recent signal, its beats with their shapes, its quality history, its template."""

    def __init__(self, name: str, fs: float, cfg: VtConfig) -> None:
        self.name = name
        self.fs = fs
        self.cfg = cfg
        self.raw = _Ring(round((cfg.window_s + 4.0) * fs))
        self.template = SinusTemplate(fs, cfg)
        self.beats: list[tuple[int, bool]] = []  # (index, ventricular), oldest first
        self.sqi: list[tuple[int, float]] = []
        self.has_signal = False

    def add(self, x: FloatArray, first: int, peaks: NDArray[np.int64], sqi: float | None) -> list[BeatShape]:
        self.raw.add(x, first)
        self.has_signal = True
        shapes = []
        end = self.raw.end
        for p in peaks.tolist():
            local = p - self.raw.start
            if local < 0 or local >= self.raw.data.size:  # before a restart: unknown, so not ventricular
                shapes.append(BeatShape(None, None, None, False))
                continue
            shape = self.template.shape(self.raw.data, local, r_width_s(self.raw.data, local, self.fs))
            self.template.offer(p, self.raw.data, local, shape)
            self.beats.append((p, shape.ventricular))
            shapes.append(shape)
        if sqi is not None:
            self.sqi.append((end, sqi))
        self.template.advance(end)
        horizon = end - round((self.cfg.window_s + 2.0) * self.fs)
        while self.beats and self.beats[0][0] < horizon:
            self.beats.pop(0)
        while self.sqi and self.sqi[0][0] < horizon:
            self.sqi.pop(0)
        return shapes

    def run(self, lo: int) -> tuple[LeadRun, Run]:
        recent = [(p, v) for p, v in self.beats if p >= lo]
        run = longest_run([p for p, _ in recent], [v for _, v in recent], self.fs, self.cfg)
        q = [s for t, s in self.sqi if t >= lo]
        lead = LeadRun(self.name, run.beats, run.rate_bpm, self.template.template is not None,
                       float(np.mean(q)) if q else None)
        return lead, run

    def beats_in(self, run: Run) -> list[int]:
        """The run's beats (sample indices), first to last."""
        return [p for p, _ in self.beats if run.first <= p <= run.last]

    def limit_beat(self, run: Run, k: int) -> int | None:
        """The run's ``k``-th beat (the one that brought it to ``k`` beats), or None when it is shorter."""
        during = self.beats_in(run)
        return during[k - 1] if len(during) >= k else None

    def ventricular_near(self, index: int, tol: int) -> bool:
        return any(v and abs(p - index) <= tol for p, v in self.beats[-16:])


class VtWatch:
    """VT evidence for one patient on one sample clock (see the module docstring)."""

    def __init__(self, fs: float, units_per_mv: float, mains_hz: float | None,
                 cfg: VtConfig | None = None, primary_name: str = "ECG") -> None:
        self.fs = fs
        self.cfg = cfg or VtConfig()
        self._units_per_mv = units_per_mv
        self._mains_hz = mains_hz
        self._primary_name = primary_name
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        self._primary = _Lead(self._primary_name, self.fs, c)
        self._aux: _Lead | None = None
        self._aux_analyzer: EcgAnalyzer | None = None
        self._pulse = _Ring(round((c.window_s + PULSE_BASELINE_S) * self.fs))
        self._hold: PulseHold | None = None

    @property
    def waiting(self) -> bool:
        """A run's decision is held for its pulse: :meth:`decide` must run on every chunk until it is made."""
        return self._hold is not None and not self._hold.decided

    @property
    def hold(self) -> PulseHold | None:
        return self._hold

    def decide(self, now: int) -> Settled:
        """:meth:`verdict` at ``now`` through the bounded pulse wait (see :func:`settle`)."""
        wait_s = self.cfg.pulse_wait_s
        out = settle(self._hold, self.verdict(now), now, round(wait_s * self.fs), wait_s)
        self._hold = out.hold
        return out

    def primary(self, x: FloatArray, first: int, peaks: NDArray[np.int64], sqi: float | None) -> list[bool]:
        """The primary lead's chunk and its new beats; returns each beat's label (ventricular in either lead)."""
        shapes = self._primary.add(x, first, peaks, sqi)
        tol = round(self.cfg.agree_tol_s * self.fs)
        aux = self._aux
        return [s.ventricular or (aux is not None and aux.ventricular_near(int(p), tol))
                for p, s in zip(peaks.tolist(), shapes, strict=True)]

    def aux_ecg(self, x: FloatArray, first: int, name: str = "ECG2") -> None:
        """A second ECG lead's chunk on the same clock (its own R-peak detector and quality)."""
        if self._aux is None or self._aux_analyzer is None:
            self._aux = _Lead(name, self.fs, self.cfg)
            self._aux_analyzer = EcgAnalyzer(self.fs, AnalyzerConfig(units_per_mv=self._units_per_mv,
                                                                      mains_hz=self._mains_hz))
        update = self._aux_analyzer.process(x, first)
        self._aux.add(x, first, update.peaks, update.sqi)

    def pulse(self, x: FloatArray, first: int) -> None:
        """A pulsatile waveform's chunk, resampled by the caller to this clock."""
        self._pulse.add(x, first)

    def pulse_between(self, lo: int, now: int) -> PulseEvidence | None:
        """The pulse over samples ``[lo, now)`` against the minute before; None where no live pulse covers it
        (no pulse channel, a stale one, or one that cannot be judged: unknown, never 'present')."""
        p = self._pulse
        if p.end < now - round(2.0 * self.fs):
            return None
        return pulse_evidence(p.between(lo, now), p.between(lo - round(PULSE_BASELINE_S * self.fs), lo), self.fs,
                              self.cfg.pulse)

    def verdict(self, now: int) -> VtVerdict:
        """Judge the ``window_s`` seconds before sample ``now`` with every channel that covers them."""
        c = self.cfg
        lo = now - round(c.window_s * self.fs)
        found = [self._primary.run(lo)]
        agreement = None
        aux = self._aux
        if aux is not None and aux.raw.end >= now - round(2.0 * self.fs):  # the second lead is live
            found.append(aux.run(lo))
            agreement = self._agreement(found)
        runs = [lead for lead, _ in found]
        pulse = None
        p = self._pulse
        if p.end >= now - round(2.0 * self.fs):
            window = p.between(lo, now)
            baseline = p.between(lo - round(PULSE_BASELINE_S * self.fs), lo)
            pulse = pulse_evidence(window, baseline, self.fs, c.pulse)
            run = found[0][1]
            if c.one_lead_pulse and len(found) == 1 and pulse is not None and pulse.regular and run.beats >= c.min_run:
                # one lead (a wearable): regular pulses doubt the run only if they followed its beats
                followed, why = run_pulse(window, baseline, max(lo, p.start), run.first, self.fs, c.pulse)
                if followed is False:
                    pulse = replace(pulse, regular=False, reason=why)
                elif followed is None:
                    at = self._primary.limit_beat(run, c.min_run)
                    if c.pulse_wait_s > 0 and at is not None:  # the pulse that tells is still to come: wait
                        lead = runs[0]
                        return VtVerdict(True, f"{lead.beats} ventricular beats at {lead.rate_bpm:.0f}/min in "
                                               f"{lead.lead} (one lead); waiting for the pulse", run_beats=lead.beats,
                                         pending_from=at, run_span=(run.first, run.last))
                    pulse = None  # too early for the pulse to tell and no wait: no evidence, so never doubted
            k = max(range(len(found)), key=lambda i: found[i][1].beats)  # the run assess_vt weighs
            if agreement is not None and pulse is not None and pulse.regular and found[k][1].beats >= c.min_run:
                # two leads: pulses locked to the run's beats at a rate other than before mean its beats eject, so
                # they do not doubt it (one lead keeps its own rule: regular pulses doubt, see assess_vt)
                start = max(lo, p.start)
                beats = [i - start for i in self._leads()[k].beats_in(found[k][1])]
                if locked_delay(pulse, beats, window.size, self.fs, c.pulse) is not None:
                    # only now the minute before's pulse rhythm, which costs as much as the judgement itself
                    before = pulse_evidence(window, baseline, self.fs, c.pulse, baseline_rhythm=True)
                    locked = follows_run(before, beats, window.size, self.fs, c.pulse) if before else None
                    if locked is not None:
                        pulse = replace(pulse, regular=False, reason=locked)
        verdict = assess_vt(runs, agreement, pulse, c)
        if not verdict.run_beats:
            return verdict
        longest = max(found, key=lambda f: f[1].beats)[1]  # the run assess_vt weighed (the longest of any lead)
        return replace(verdict, run_span=(longest.first, longest.last))

    def _leads(self) -> list[_Lead]:
        """The leads in the order :meth:`verdict` judges them: primary, then the second lead if there is one."""
        return [self._primary] if self._aux is None else [self._primary, self._aux]

    def _agreement(self, found: list[tuple[LeadRun, Run]]) -> float:
        """The share of the other lead's beats during the longest run that look ventricular too (two at least)."""
        aux = self._aux
        assert aux is not None
        tol = round(self.cfg.agree_tol_s * self.fs)
        i = max(range(len(found)), key=lambda k: found[k][1].beats)
        run = found[i][1]
        if run.beats < self.cfg.min_run:
            return 0.0
        other = aux if i == 0 else self._primary
        during = [v for p, v in other.beats if run.first - tol <= p <= run.last + tol]
        return sum(during) / len(during) if len(during) >= 2 else 0.0
