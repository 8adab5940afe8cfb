"""Ventricular tachycardia: which beats look ventricular, and is a ventricular run believable?

Why: commercial bedside monitors raise VT alarms that are mostly false (PhysioNet/CinC 2015), nearly
always because ECG artefact looks like a run of wide beats. Two kinds of evidence separate the cases:

- morphology, per lead: a ventricular beat is wide (slow cell-to-cell conduction) *or* unlike the
  patient's own sinus beats (a different activation path changes the shape and size of the QRS even
  when the width measure misses it). The sinus template is the median of the patient's recent narrow
  beats, at least ``template_age_s`` old, so a run never teaches itself to the template;
- corroboration: a real run distorts every lead at the same instants (the other lead's beats during
  the run look ventricular too), and a sustained one disturbs the pulse. Artefact shows in one lead,
  leaves the other lead's sinus beats alone, and the pulse carries on regularly underneath it.

The verdict is asymmetric on purpose: a missed VT costs far more than a false alarm, so a VT is only
doubted on positive evidence (a clean lead with sinus beats, or leads that disagree while the pulse
carries on regularly). No template, one lead only, no pulse channel or a flat one: confirmed.
Pure functions plus one small streaming helper (:class:`SinusTemplate`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from cardiogate.edge.dsp.beats import WIDE_R_S
from cardiogate.edge.dsp.pulse import PulseConfig, PulseEvidence

try:  # the compiled template match (_template_kernel.c); optional at build time
    from cardiogate.edge.dsp import _template_kernel
except ImportError:  # pragma: no cover - depends on the build
    _template_kernel = None  # type: ignore[assignment]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class VtConfig:
    """Few, physiological thresholds; times in seconds so one config serves every sample rate."""

    window_s: float = 16.0          # the evidence window before the decision (alarm onset uncertainty)
    wide_s: float = WIDE_R_S        # R wave wider than this at half height: ventricular
    min_corr: float = 0.6           # correlation with the sinus template below this: a different beat
    max_amplitude_ratio: float = 2.0  # QRS more than this times larger or smaller than sinus: a different beat
    min_run: int = 3                # ventricular beats in a row that make a run (the textbook minimum for VT)
    min_rate_bpm: float = 100.0     # a slower run is idioventricular rhythm, not VT
    half_s: float = 0.1             # beat segment: this much either side of the R peak
    shift_s: float = 0.03           # a beat may slide this much to its best match with the template
    template_beats: int = 30        # sinus beats the template is the median of
    template_min_beats: int = 8     # fewer: no template (width alone decides)
    template_age_s: float = 16.0    # a beat joins the template only this long after it was seen
    agree_tol_s: float = 0.15       # two leads' beats closer than this are the same beat
    min_agreement: float = 0.6      # this share of the other lead's beats during a run ventricular too: it agrees
    clean_sqi: float = 0.8          # a lead at least this clean (mean SQI over the window) is trusted...
    noisy_sqi: float = 0.5          # ...to overrule a run seen only in a lead below this
    pulse: PulseConfig = field(default_factory=PulseConfig)
    # With one ECG lead (a chest strap), let its pulse channel (the wearable's PPG) be the cross-check:
    # regular pulses doubt the run, disturbed ones corroborate it. Off: one lead is always confirmed.
    one_lead_pulse: bool = False
    # One lead: when the run reaches ``min_run`` beats before the pulse covering it has arrived, wait at most
    # this long (device time from that beat) for it, then confirm. 0: no wait (confirmed at once, as without a pulse).
    pulse_wait_s: float = 1.0


@dataclass(frozen=True, slots=True)
class BeatShape:
    """One beat's morphology; ``corr``/``amplitude_ratio`` are None without a template."""

    width_s: float | None
    corr: float | None
    amplitude_ratio: float | None
    ventricular: bool


class Run(NamedTuple):
    """A run of ventricular beats: how many, how fast, and its first and last beat (sample indices)."""

    beats: int
    rate_bpm: float
    first: int = 0
    last: int = 0


@dataclass(frozen=True, slots=True)
class LeadRun:
    """The longest ventricular run of one lead in the window, and how far that lead can be trusted."""

    lead: str
    beats: int
    rate_bpm: float
    has_template: bool
    sqi: float | None = None  # mean signal quality over the window (None: unknown)


@dataclass(frozen=True, slots=True)
class VtVerdict:
    """``corroborated``: confirmed on positive evidence (both leads show the run, or the pulse is disturbed),
    not merely for want of evidence against it; only such a run may alarm through a poor-quality primary lead.
    ``pending_from``: the decision waits for the pulse (see :class:`cardiogate.edge.dsp.vt_watch.PulseWait`)."""

    confirmed: bool
    reason: str
    corroborated: bool = False
    run_beats: int = 0  # the longest run of any lead (a lead's detector may miss beats of a wide run)
    # Set while the pulse that covers a one-lead run is still to come: the sample index of the beat that brought
    # the run to ``min_run``. ``confirmed`` is then what holds if the wait ends without evidence (True).
    pending_from: int | None = None
    # The first and last beat (sample indices) of the run ``run_beats`` counts: it speaks for the beats inside
    # it only, not for a lone ventricular beat seconds after an artefact "run" ended. None: not known.
    run_span: tuple[int, int] | None = None


def segment(raw: FloatArray, peak: int, half: int) -> FloatArray | None:
    """The beat around ``peak`` with its linear trend removed (baseline wander), or None at the edges."""
    lo, hi = peak - half, peak + half + 1
    if lo < 0 or hi > raw.size:
        return None
    seg = raw[lo:hi].astype(np.float64)
    t = np.arange(seg.size, dtype=np.float64) - half
    slope = float(t @ seg) / float(t @ t)
    out: FloatArray = seg - seg.mean() - slope * t
    return out


def similarity(raw: FloatArray, peak: int, template: FloatArray, shift: int) -> tuple[float, float] | None:
    """Best correlation with the template within +-``shift`` samples, and the amplitude ratio there.

    This runs for every beat of every patient: in the compiled kernel where it is built, otherwise
    in numpy (:func:`similarity_numpy`, the reference the kernel is tested against).
    """
    if _template_kernel is not None:
        found: tuple[float, float] | None = _template_kernel.detrended_similarity(
            np.ascontiguousarray(raw, dtype=np.float64), int(peak),
            np.ascontiguousarray(template, dtype=np.float64), int(shift))
        return found
    return similarity_numpy(raw, peak, template, shift)


def similarity_numpy(raw: FloatArray, peak: int, template: FloatArray, shift: int) -> tuple[float, float] | None:
    """:func:`similarity` in numpy: every shifted segment is detrended and correlated at once."""
    half = (template.size - 1) // 2
    t_norm = float(np.sqrt(template @ template))
    t_ptp = float(np.ptp(template))
    if t_norm == 0.0 or t_ptp == 0.0:
        return None
    first = max(-shift, half - peak)  # shifts whose segment lies inside raw
    last = min(shift, raw.size - 1 - half - peak)
    if last < first:
        return None
    span = raw[peak + first - half:peak + last + half + 1].astype(np.float64)
    rows = sliding_window_view(span, template.size)  # row k: the segment at shift first + k
    t = np.arange(template.size, dtype=np.float64) - half
    slope = (rows @ t) / float(t @ t)
    segs = rows - rows.mean(axis=1, keepdims=True) - slope[:, None] * t
    norms = np.sqrt(np.einsum("ij,ij->i", segs, segs))
    dots = segs @ template
    corr = np.divide(dots, norms * t_norm, out=np.zeros_like(dots), where=norms > 0)
    k = int(np.argmax(corr))
    return float(corr[k]), float(np.ptp(segs[k])) / t_ptp


def classify(width_s: float | None, sim: tuple[float, float] | None, cfg: VtConfig = VtConfig()) -> BeatShape:
    """Ventricular when wide, or (with a template) unlike the patient's sinus beat in shape or size."""
    corr, ratio = sim if sim is not None else (None, None)
    wide = width_s is not None and width_s > cfg.wide_s
    unlike = corr is not None and corr < cfg.min_corr
    resized = ratio is not None and not (1.0 / cfg.max_amplitude_ratio <= ratio <= cfg.max_amplitude_ratio)
    return BeatShape(width_s, corr, ratio, wide or unlike or resized)


def longest_run(peaks: Sequence[int], ventricular: Sequence[bool], fs: float, cfg: VtConfig = VtConfig()) -> Run:
    """Longest run of consecutive ventricular beats whose mean rate exceeds ``min_rate_bpm``."""
    best = Run(0, 0.0)
    start = None
    for i, (p, v) in enumerate(zip(peaks, ventricular, strict=True)):
        if not v:
            start = None
            continue
        start = i if start is None else start
        n = i - start + 1
        if n < 2:
            continue
        rate = 60.0 * fs * (n - 1) / max(1, p - peaks[start])
        # the run's rate can fall below VT rate at its start and rise later: the shortest tail that is fast counts
        j = start
        while rate <= cfg.min_rate_bpm and j < i - 1:
            j += 1
            n = i - j + 1
            rate = 60.0 * fs * (n - 1) / max(1, p - peaks[j])
        if rate > cfg.min_rate_bpm and n > best.beats:
            best = Run(n, rate, int(peaks[j]), int(p))
    return best


def assess_vt(runs: Sequence[LeadRun], agreement: float | None, pulse: PulseEvidence | None,
              cfg: VtConfig = VtConfig()) -> VtVerdict:
    """Confirm or doubt a VT from the leads' runs, their agreement and the pulse; doubt only on evidence.

    ``agreement`` (None with one lead): the share of the other lead's beats during the run that look
    ventricular too (a real run distorts every lead; artefact leaves the other lead's sinus beats alone).
    Regular pulses refute only a run long enough to have shown on them beyond doubt: the run itself must
    last longer than ``pulse.max_gap_s``. A run without output leaves a pause of its length plus one pulse
    interval, so that pause then exceeds the longest a regular pulse may pause by a whole pulse interval;
    a shorter run's pause sits within beat-to-beat scatter of that limit, and doubt must not silence a VT.
    With two leads the caller has already weighed the pulse against the run's own beats: pulses locked to them
    at a rate other than in the minute before arrive here as not regular (corroboration, see
    :func:`cardiogate.edge.dsp.pulse.follows_run`).
    """
    if not runs:
        return VtVerdict(True, "no ECG evidence to weigh")
    with_run = [r for r in runs if r.beats >= cfg.min_run]
    if not with_run:  # the beats were ventricular in alternating leads: no lead refutes it either
        return VtVerdict(True, f"no single lead shows {cfg.min_run} ventricular beats in a row, none excludes them")
    run = max(with_run, key=lambda r: r.beats)
    n = run.beats
    what = f"{n} ventricular beats at {run.rate_bpm:.0f}/min in {run.lead}"
    if len(runs) < 2 or agreement is None:
        if cfg.one_lead_pulse and pulse is not None:
            return _one_lead_with_pulse(what, n, pulse)
        return VtVerdict(True, f"{what} (one lead: nothing to cross-check)", run_beats=n)
    sinus = [r for r in runs if r.beats < cfg.min_run and r.has_template and r.sqi is not None
             and r.sqi >= cfg.clean_sqi]
    if sinus and all(r.sqi is not None and r.sqi < cfg.noisy_sqi for r in with_run):
        return VtVerdict(False, f"{what} only in a noisy lead; {sinus[0].lead} is clean with sinus beats", run_beats=n)
    if agreement >= cfg.min_agreement:
        return VtVerdict(True, f"{what}; leads agree ({agreement:.2f})", corroborated=True, run_beats=n)
    lasted = (n - 1) * 60.0 / run.rate_bpm if run.rate_bpm > 0 else 0.0
    if pulse is not None and pulse.regular and lasted > cfg.pulse.max_gap_s:
        return VtVerdict(False, f"{what}, but the leads disagree ({agreement:.2f}) and {pulse.reason}", run_beats=n)
    if pulse is not None and pulse.regular:
        return VtVerdict(True, f"{what}; leads disagree ({agreement:.2f}), pulses regular, but {lasted:.1f} s "
                               "is too short for the pulse to tell", run_beats=n)
    why = "no pulse signal" if pulse is None else pulse.reason
    return VtVerdict(True, f"{what}; leads disagree ({agreement:.2f}) but {why}", corroborated=pulse is not None,
                     run_beats=n)


def _one_lead_with_pulse(what: str, beats: int, pulse: PulseEvidence) -> VtVerdict:
    """One ECG lead and a pulse (``VtConfig.one_lead_pulse``): the pulse alone decides.

    Regular pulses at their usual amplitude mean the heart kept pumping as before: doubted, with the
    advisory. Anything else (a pause, a collapsed amplitude, too few pulses) corroborates the run, so it
    alarms even through a poor-quality ECG. A pulseless run shows as a pause within ``max_gap_s``.
    """
    if pulse.regular:
        return VtVerdict(False, f"{what} (one lead), but {pulse.reason}", run_beats=beats)
    return VtVerdict(True, f"{what} (one lead); pulse: {pulse.reason}", corroborated=True, run_beats=beats)


def column_median(rows: FloatArray, count: int) -> FloatArray:
    """``np.median(rows[:count], axis=0)``, in the compiled kernel where it is built (the same values to the bit:
    the middle value, or the mean of the two middle ones). The template is this median of 30 beats, recomputed
    for nearly every beat of every patient, where numpy's median costs several times the beat's similarity."""
    if _template_kernel is not None and rows.dtype == np.float64 and rows.flags.c_contiguous and count >= 1:
        out = np.empty(rows.shape[1], dtype=np.float64)
        _template_kernel.column_median_into(rows, count, out)
        return out
    median: FloatArray = np.median(rows[:count], axis=0)
    return median


class SinusTemplate:
    """The patient's own sinus beat for one lead: median of recent narrow, typical beats, learnt with a delay.

    A beat becomes eligible ``template_age_s`` after it was seen, and only if it was not ventricular,
    so a run can never turn itself into the reference it is compared with.
    """

    def __init__(self, fs: float, cfg: VtConfig = VtConfig()) -> None:
        self.fs = fs
        self.cfg = cfg
        self.half = max(1, round(cfg.half_s * fs))
        self.shift = round(cfg.shift_s * fs)
        self._pending: deque[tuple[int, FloatArray]] = deque()
        # the last ``template_beats`` beats, one per row, oldest overwritten: the median needs no stacking
        self._store = np.zeros((cfg.template_beats, 2 * self.half + 1))
        self._stored = 0  # beats ever stored (since the last reset)
        self._template: FloatArray | None = None
        self._dirty = False

    def reset(self) -> None:
        self._pending.clear()
        self._stored = 0
        self._template, self._dirty = None, False

    @property
    def template(self) -> FloatArray | None:
        if self._dirty:
            self._dirty = False
            count = min(self._stored, self._store.shape[0])
            if count >= self.cfg.template_min_beats:
                self._template = column_median(self._store, count)
        return self._template

    def shape(self, raw: FloatArray, peak: int, width_s: float | None) -> BeatShape:
        """Classify one beat (``peak`` indexes ``raw``) against the current template."""
        tmpl = self.template
        sim = similarity(raw, peak, tmpl, self.shift) if tmpl is not None else None
        return classify(width_s, sim, self.cfg)

    def offer(self, index: int, raw: FloatArray, peak: int, shape: BeatShape) -> None:
        """Queue a beat (absolute ``index``; ``peak`` indexes ``raw``) for the template if it is sinus-like."""
        if shape.ventricular or shape.width_s is None:
            return
        seg = segment(raw, peak, self.half)
        if seg is not None:
            self._pending.append((index, seg))

    def advance(self, now_index: int) -> None:
        """Move beats older than ``template_age_s`` into the template."""
        age = round(self.cfg.template_age_s * self.fs)
        while self._pending and self._pending[0][0] <= now_index - age:
            self._store[self._stored % self._store.shape[0]] = self._pending.popleft()[1]
            self._stored += 1
            self._dirty = True
