"""VT check: beat morphology, lead agreement, pulse evidence and the confirm/doubt rules, with their edges.

The rule under test is asymmetric: a VT is doubted only on positive evidence, so every "in doubt"
case (no pulse channel, a flat one, no template, one lead) must confirm.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiogate.edge.alarm_engine import AlarmEngine, Beat, Outcome
from cardiogate.edge.alarm_engine.config import default_specs
from cardiogate.edge.dsp.pulse import BEAT_TO_PULSE_S, PulseConfig, PulseEvidence, follows_run, pulse_evidence
from cardiogate.edge.dsp.vt import (
    LeadRun,
    SinusTemplate,
    VtConfig,
    VtVerdict,
    assess_vt,
    classify,
    longest_run,
    similarity,
)
from cardiogate.edge.dsp.vt_watch import Settled, VtWatch, settle

FS = 250.0
NS = 1_000_000_000


def _pulses(beat_times_s: list[float], seconds: float, amplitude: float = 1.0) -> np.ndarray:
    """A plethysmogram-like wave: one smooth pulse 0.2 s after each beat."""
    t = np.arange(int(seconds * FS)) / FS
    x = np.zeros_like(t)
    for b in beat_times_s:
        x += amplitude * np.exp(-0.5 * ((t - b - 0.25) / 0.1) ** 2)
    return x + 0.01 * np.sin(2 * np.pi * 0.2 * t)


def _regular(seconds: float, rate: float, start: float = 0.3) -> list[float]:
    return list(np.arange(start, seconds, 60.0 / rate))


def _judge(window_beats: list[float], baseline_amp: float = 1.0, window_amp: float = 1.0) -> PulseEvidence | None:
    base = _pulses(_regular(60.0, 75), 60.0, baseline_amp)
    win = _pulses(window_beats, 16.0, window_amp)
    return pulse_evidence(win, base, FS)


# ---- pulse evidence ----------------------------------------------------------------------------

def test_regular_pulses_at_the_usual_amplitude_are_regular() -> None:
    ev = _judge(_regular(16.0, 75))
    assert ev is not None and ev.regular
    assert ev.rate_bpm == pytest.approx(75, abs=3)
    assert "regular" in ev.reason


def test_pulses_present_but_with_dropouts_are_not_regular() -> None:
    beats = [b for b in _regular(16.0, 75) if not 6.0 < b < 9.0]  # a 3 s run of non-perfused beats
    ev = _judge(beats)
    assert ev is not None and not ev.regular
    assert ev.max_gap_s > PulseConfig().max_gap_s
    assert "paused" in ev.reason


def test_irregular_but_continuing_pulses_still_count_as_continuing() -> None:
    rng = np.random.default_rng(3)
    beats = list(np.cumsum(rng.uniform(0.55, 1.1, 30)))  # AF-like intervals, no pause over 2 s
    ev = _judge([b for b in beats if b < 16.0])
    assert ev is not None and ev.regular


def test_collapsed_pulse_amplitude_is_not_regular() -> None:
    ev = _judge(_regular(16.0, 75), window_amp=0.4)
    assert ev is not None and not ev.regular
    assert "amplitude" in ev.reason or "pulses" in ev.reason


def test_pulse_evidence_keeps_its_pulses_and_on_request_the_baseline_pulse_interval() -> None:
    beats = _regular(16.0, 120)
    base = _pulses(_regular(60.0, 75), 60.0)
    ev = pulse_evidence(_pulses(beats, 16.0), base, FS, baseline_rhythm=True)
    assert ev is not None and ev.regular
    assert len(ev.peaks) == ev.pulses
    assert ev.baseline_interval_s == pytest.approx(0.8, abs=0.01)
    assert ev.peaks[1] / FS == pytest.approx(beats[1] + 0.25, abs=0.02)  # each pulse 0.25 s after its beat
    plain = pulse_evidence(_pulses(beats, 16.0), base, FS)
    assert plain is not None and plain.baseline_interval_s is None  # not asked for: not measured
    paused = [b for b in beats if not 6.0 < b < 9.0]
    irregular = pulse_evidence(_pulses(paused, 16.0), base, FS, baseline_rhythm=True)
    assert irregular is not None and not irregular.regular and irregular.baseline_interval_s is None  # no use
    few = pulse_evidence(_pulses(beats, 16.0), _pulses([1.0, 4.0], 6.0), FS, baseline_rhythm=True)
    assert few is not None and few.regular and few.baseline_interval_s is None  # two pulses before: one interval
    three = pulse_evidence(_pulses(beats, 16.0), _pulses([1.0, 3.0, 5.0], 6.0), FS, baseline_rhythm=True)
    assert three is not None and three.baseline_interval_s == pytest.approx(2.0, abs=0.02)  # two: a median


def test_a_flat_pulse_channel_cannot_be_judged() -> None:
    base = _pulses(_regular(60.0, 75), 60.0)
    assert pulse_evidence(np.full(int(16 * FS), 512.0), base, FS) is None
    assert pulse_evidence(_pulses(_regular(16.0, 75), 16.0), np.zeros(int(60 * FS)), FS) is None
    assert pulse_evidence(np.zeros(10), base, FS) is None  # too short


# ---- morphology ---------------------------------------------------------------------------------

def test_classify_wide_unlike_or_resized_beats_as_ventricular() -> None:
    cfg = VtConfig()
    assert not classify(0.03, (0.95, 1.0), cfg).ventricular
    assert classify(0.08, (0.95, 1.0), cfg).ventricular  # wide
    assert classify(0.03, (0.5, 1.0), cfg).ventricular  # another shape
    assert classify(0.03, (0.95, 2.5), cfg).ventricular  # much larger
    assert classify(0.03, (0.95, 0.3), cfg).ventricular  # much smaller
    assert not classify(0.03, (cfg.min_corr, cfg.max_amplitude_ratio), cfg).ventricular  # both limits inclusive
    assert not classify(0.03, None, cfg).ventricular  # no template: width alone decides
    assert not classify(None, None, cfg).ventricular  # nothing measurable: not ventricular


def test_similarity_finds_a_shifted_copy_and_its_size() -> None:
    t = np.arange(-25, 26, dtype=np.float64)
    template = np.exp(-0.5 * (t / 3.0) ** 2)
    raw = np.zeros(200)
    raw[97:148] = 2.0 * template  # the same beat, twice as large, 3 samples late
    sim = similarity(raw, 119, template - template.mean(), shift=7)
    assert sim is not None
    corr, ratio = sim
    assert corr > 0.99
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_the_template_is_learnt_late_and_never_from_ventricular_beats() -> None:
    cfg = VtConfig(template_min_beats=3, template_age_s=2.0)
    tmpl = SinusTemplate(FS, cfg)
    raw = np.zeros(3000)
    peaks = [300, 500, 700, 900]
    for p in peaks:
        raw[p - 5:p + 6] = np.hanning(11)
    for i, p in enumerate(peaks):
        shape = classify(0.03 if i < 3 else 0.09, None, cfg)
        tmpl.offer(p, raw, p, shape)
    tmpl.advance(900 + int(1.0 * FS))
    assert tmpl.template is None  # too recent
    tmpl.advance(900 + int(2.0 * FS))
    assert tmpl.template is not None  # the three narrow beats, not the wide one
    assert tmpl.template.size == 2 * tmpl.half + 1


def test_longest_run_needs_the_ventricular_rate() -> None:
    fast = [int(i * 0.5 * FS) for i in range(6)]  # 120/min
    slow = [int(i * 0.75 * FS) for i in range(6)]  # 80/min
    run = longest_run(fast, [True] * 6, FS)
    assert (run.beats, run.first, run.last) == (6, 0, fast[-1])
    assert run.rate_bpm == pytest.approx(120.0)
    assert longest_run(slow, [True] * 6, FS)[0] == 0
    assert longest_run(fast, [True, True, False, True, True, True], FS)[0] == 3
    # a run that starts slow and speeds up counts from where it is fast
    mixed = [0, 250, 500, 625, 750, 875]
    assert longest_run(mixed, [True] * 6, FS)[0] >= 4


# ---- the verdict --------------------------------------------------------------------------------

REGULAR = PulseEvidence(20, 75.0, 0.9, 1.0, True, "pulses regular at 75/min, amplitude x1.00")
PAUSED = PulseEvidence(8, 75.0, 4.0, 0.9, False, "pulses paused 4.0 s")


def _run(lead: str, beats: int, sqi: float | None = 0.9, template: bool = True, rate: float = 160.0) -> LeadRun:
    return LeadRun(lead, beats, rate if beats else 0.0, template, sqi)


def test_a_run_both_leads_agree_on_is_confirmed_even_with_regular_pulses() -> None:
    v = assess_vt([_run("II", 6), _run("V", 5)], 0.9, REGULAR)
    assert v.confirmed and v.corroborated and "agree" in v.reason
    assert v.run_beats == 6


def test_leads_that_disagree_with_regular_pulses_doubt_the_run() -> None:
    v = assess_vt([_run("II", 8, sqi=0.6), _run("V", 0, sqi=0.6)], 0.4, REGULAR)
    assert not v.confirmed
    assert "pulses regular" in v.reason and "disagree" in v.reason


@pytest.mark.parametrize("pulse", [None, PAUSED], ids=["no-pulse-signal", "pulses-irregular"])
def test_disagreeing_leads_without_regular_pulses_confirm(pulse: PulseEvidence | None) -> None:
    v = assess_vt([_run("II", 6, sqi=0.6), _run("V", 0, sqi=0.6)], 0.4, pulse)
    assert v.confirmed


def test_the_agreement_limit_is_inclusive() -> None:
    cfg = VtConfig()
    assert assess_vt([_run("II", 8, 0.6), _run("V", 0, 0.6)], cfg.min_agreement, REGULAR).confirmed
    assert not assess_vt([_run("II", 8, 0.6), _run("V", 0, 0.6)], cfg.min_agreement - 0.01, REGULAR).confirmed


def test_one_lead_only_is_always_confirmed() -> None:
    v = assess_vt([_run("II", 6, sqi=0.2)], None, REGULAR)
    assert v.confirmed and "one lead" in v.reason


def test_a_run_only_in_a_noisy_lead_with_a_clean_sinus_lead_is_doubted() -> None:
    v = assess_vt([_run("II", 8, sqi=0.3), _run("V", 0, sqi=0.95)], 0.8, None)
    assert not v.confirmed and "noisy lead" in v.reason


def test_a_clean_lead_without_its_template_cannot_overrule() -> None:
    v = assess_vt([_run("II", 8, sqi=0.3), _run("V", 0, sqi=0.95, template=False)], 0.8, None)
    assert v.confirmed


def test_unknown_quality_cannot_overrule() -> None:
    v = assess_vt([_run("II", 8, sqi=None), _run("V", 0, sqi=None)], 0.8, None)
    assert v.confirmed


def test_regular_pulses_refute_only_a_run_long_enough_to_show_on_them() -> None:
    # the run itself must outlast the 2 s a regular pulse may pause (its pause is then 2 s + one pulse
    # interval): at 150/min 7 beats last 2.4 s and are doubted; 6 last exactly 2.0 s, which is not enough
    long_run = assess_vt([_run("II", 7, sqi=0.6, rate=150.0), _run("V", 0, sqi=0.6)], 0.0, REGULAR)
    assert not long_run.confirmed and long_run.run_beats == 7
    boundary = assess_vt([_run("II", 6, sqi=0.6, rate=150.0), _run("V", 0, sqi=0.6)], 0.0, REGULAR)
    assert boundary.confirmed and "too short for the pulse" in boundary.reason
    assert not boundary.corroborated


def test_a_short_run_whose_pause_would_only_just_exceed_the_limit_is_not_doubted() -> None:
    # CinC 2015 v206s: 4 beats at 136/min (1.3 s) with pulses regular at 82/min. Without output the pause
    # would be 1.3 + 0.73 = 2.05 s, within scatter of the 2 s limit: too close to call, so confirmed.
    v = assess_vt([_run("II", 4, sqi=0.6, rate=136.0), _run("V", 0, sqi=0.6)], 0.0, REGULAR)
    assert v.confirmed and "too short for the pulse" in v.reason


def test_no_single_lead_run_confirms_without_corroboration() -> None:
    cfg = VtConfig()  # the beats were ventricular in alternating leads: nothing refutes it
    v = assess_vt([_run("II", cfg.min_run - 1), _run("V", cfg.min_run - 1)], 0.0, REGULAR)
    assert v.confirmed and not v.corroborated


def test_no_leads_at_all_confirms() -> None:
    assert assess_vt([], None, REGULAR).confirmed


# ---- pulses locked to the run's beats (two leads) -----------------------------------------------

RUN_AT, RUN_RR = 10.0, 0.5  # a run of 8 beats at 120/min from 10 s, in a 16 s window
EXACT = 256.0  # a sample rate whose sample times are exact binary fractions: boundaries compare exactly


def _run_beats(n: int = 8, fs: float = FS) -> list[int]:
    return [round((RUN_AT + i * RUN_RR) * fs) for i in range(n)]


def _locked(delays_s: list[float] | None = None, before_s: float | None = 0.8, fs: float = FS,
            every: int = 1) -> tuple[PulseEvidence, list[int], int]:
    """Sinus pulses at 75/min, then one pulse after each run beat (``every``: only after every n-th)."""
    beats = _run_beats(fs=fs)
    delays = delays_s or [0.25] * len(beats)
    sinus = [round((0.3 + i * 0.8 + 0.25) * fs) for i in range(12)]  # up to 9.35 s
    run = [b + round(d * fs) for i, (b, d) in enumerate(zip(beats, delays, strict=True)) if i % every == 0]
    peaks = tuple(sorted(sinus + run))
    return PulseEvidence(len(peaks), 100.0, 0.8, 1.0, True, "pulses regular", peaks, before_s), beats, round(16 * fs)


def test_pulses_locked_to_the_run_at_another_rate_than_before_follow_it() -> None:
    pulse, beats, end = _locked()
    why = follows_run(pulse, beats, end, FS)
    assert why is not None
    assert "a pulse 0.25 s after each of its last 7 beats" in why and "120/min against 75/min before" in why


def test_the_run_must_differ_from_the_rate_before_by_more_than_the_tolerance() -> None:
    # shipped: 15 % of the run's 0.5 s beat interval, 0.075 s either way
    for before, follows in ((0.5, False), (0.57, False), (0.58, True), (0.43, False), (0.42, True), (0.4, True)):
        pulse, beats, end = _locked(before_s=before)
        assert (follows_run(pulse, beats, end, FS) is not None) is follows, before
    cfg = PulseConfig(rate_tolerance=0.25)  # exactly 0.125 s of 0.5 s: the limit itself is still the same rate
    for before, follows in ((0.625, False), (0.625 + 1 / EXACT, True), (0.375, False), (0.375 - 1 / EXACT, True)):
        pulse, beats, end = _locked(before_s=before, fs=EXACT)
        assert (follows_run(pulse, beats, end, EXACT, cfg) is not None) is follows, before
    pulse, beats, end = _locked(before_s=None)
    assert follows_run(pulse, beats, end, FS) is None  # nothing known about the rhythm before


def test_pulses_must_keep_one_delay_to_every_beat() -> None:
    cfg = PulseConfig(lock_tolerance_s=0.125)  # exact at 256 Hz: the limit is inclusive
    pulse, beats, end = _locked([0.25, 0.375] * 4, fs=EXACT)
    assert follows_run(pulse, beats, end, EXACT, cfg) is not None
    pulse, beats, end = _locked([0.25, 0.375 + 1 / EXACT] * 4, fs=EXACT)
    assert follows_run(pulse, beats, end, EXACT, cfg) is None
    tol = PulseConfig().lock_tolerance_s  # shipped: 0.1 s
    pulse, beats, end = _locked([0.2, 0.2 + tol - 1 / FS] * 4)
    assert follows_run(pulse, beats, end, FS) is not None
    pulse, beats, end = _locked([0.2, 0.2 + tol + 1 / FS] * 4)
    assert follows_run(pulse, beats, end, FS) is None
    rng = np.random.default_rng(5)  # noise on the pulse channel: peaks at random delays
    pulse, beats, end = _locked(list(rng.uniform(0.02, 0.44, 8)))
    assert follows_run(pulse, beats, end, FS) is None


def test_the_first_beat_of_the_run_may_still_show_the_pulse_before_it() -> None:
    pulse, beats, end = _locked([0.05] + [0.25] * 7)  # a premature first beat: the previous pulse comes just after it
    assert follows_run(pulse, beats, end, FS) is not None
    pulse, beats, end = _locked([0.25, 0.05] + [0.25] * 6)  # the same inside the run is another delay
    assert follows_run(pulse, beats, end, FS) is None


def test_pulses_at_half_the_rate_or_too_late_do_not_follow() -> None:
    pulse, beats, end = _locked(every=2)  # 2:1, every other beat without output
    assert follows_run(pulse, beats, end, FS) is None
    fs = 100.0  # 0.45 s is 45 samples exactly
    pulse, beats, end = _locked([BEAT_TO_PULSE_S] * 8, fs=fs)  # the limit itself still counts
    assert follows_run(pulse, beats, end, fs) is not None
    pulse, beats, end = _locked([BEAT_TO_PULSE_S + 1 / fs] * 8, fs=fs)
    assert follows_run(pulse, beats, end, fs) is None


def test_only_beats_whose_pulse_had_time_to_show_count_and_three_are_needed() -> None:
    lag = round(BEAT_TO_PULSE_S * FS)
    beats = _run_beats(4)
    pulse, _, _ = _locked()
    assert follows_run(pulse, beats, beats[3] + lag, FS) is not None  # beats 2-4 had time: three
    assert follows_run(pulse, beats, beats[3] + lag - 1, FS) is None  # the last one has not: two
    assert follows_run(pulse, beats[:3], round(16 * FS), FS) is None  # a 3-beat run has two after its first


def _spikes(times_s: list[float], n: int, sigma_s: float, amplitude: float) -> np.ndarray:
    t = np.arange(n) / FS
    x = np.zeros(n)
    for b in times_s:
        near = np.abs(t - b) < 6 * sigma_s
        x[near] += amplitude * np.exp(-0.5 * ((t[near] - b) / sigma_s) ** 2)
    return x


def _watch_run(heart_follows: bool, second_lead: bool = True) -> VtVerdict | None:
    """80 s of sinus at 75/min, then 8 wide beats at 120/min in the first lead. ``heart_follows``: a VT (the
    second lead, narrow there, and the pulse beat with the run); else artefact (the heart keeps its sinus beats)."""
    total, run_at = 90.0, 84.0
    n = int(total * FS)
    run = [run_at + i * 0.5 for i in range(8)]
    sinus = [t for t in np.arange(0.5, total, 0.8) if not run_at - 0.3 < t < run[-1] + 0.5]
    heart = sorted(sinus + run) if heart_follows else list(np.arange(0.5, total, 0.8))
    first = sorted([(t, 0.008) for t in sinus] + [(t, 0.04) for t in run])  # narrow sinus, wide run beats
    lead1 = sum((_spikes([t], n, s, 1000.0) for t, s in first), np.zeros(n))
    lead2 = _spikes(heart, n, 0.008, 1000.0)
    pulse = _spikes([t + 0.25 for t in heart], n, 0.1, 1.0)
    watch = VtWatch(FS, 1000.0, None, VtConfig(one_lead_pulse=True, pulse_wait_s=0.0))
    peaks = np.array([round(t * FS) for t, _ in first], dtype=np.int64)
    verdict = None
    for start in range(0, n, 114):
        stop = min(n, start + 114)
        if second_lead:
            watch.aux_ecg(lead2[start:stop], start)
        watch.pulse(pulse[start:stop], start)
        new = peaks[(peaks >= start - 50) & (peaks < stop - 50)]  # as a detector with 0.2 s of look-ahead
        if any(watch.primary(lead1[start:stop], start, new, 0.9)):
            verdict = watch.verdict(stop)
    return verdict


def test_a_run_the_pulse_follows_at_its_own_rate_is_corroborated_though_the_leads_disagree() -> None:
    vt = _watch_run(heart_follows=True)
    assert vt is not None and vt.confirmed and vt.corroborated and vt.run_beats == 8
    assert "leads disagree (0.00) but a pulse 0.25 s after each of its last" in vt.reason
    artefact = _watch_run(heart_follows=False)  # the pulse kept the sinus rhythm: doubted as before
    assert artefact is not None and not artefact.confirmed
    assert "pulses regular at 75/min" in artefact.reason


def test_one_lead_keeps_its_own_rule_for_a_run_with_pulses_preserved() -> None:
    one = _watch_run(heart_follows=True, second_lead=False)  # a chest strap with PPG: the advisory, as documented
    assert one is not None and not one.confirmed and "(one lead)" in one.reason


# ---- the engine's side --------------------------------------------------------------------------

def _beats(n: int, confirmed: bool | None, reason: str = "", start: int = 0) -> list[Beat]:
    return [Beat(start + round(i * 0.4 * NS), "V", confirmed, reason) for i in range(n)]


def test_a_doubted_vt_run_raises_the_advisory_not_the_alarm() -> None:
    engine = AlarmEngine()
    out = engine.observe_beats("p1", 10 * NS, _beats(8, False, "leads disagree, pulses regular"), 10 * NS)
    conditions = {(n.condition, n.state) for n in out.notices}
    assert ("vt_unconfirmed", "raised") in conditions
    assert not any(n.condition == "vt" for n in out.notices)
    advisory = next(n for n in out.notices if n.condition == "vt_unconfirmed")
    assert advisory.priority == "low"
    assert "VT unconfirmed: leads disagree, pulses regular" in advisory.reason
    assert engine.status("p1", "vt") == "inactive"


def test_a_confirmed_or_unchecked_run_alarms_with_its_evidence() -> None:
    for confirmed in (True, None):
        engine = AlarmEngine()
        out = engine.observe_beats("p1", 10 * NS, _beats(8, confirmed, "6 beats; leads agree"), 10 * NS)
        raised = [n for n in out.notices if n.condition == "vt" and n.state == "raised"]
        assert len(raised) == 1
        assert ("leads agree" in raised[0].reason) == bool(confirmed)
        assert not any(n.condition == "vt_unconfirmed" for n in out.notices)


def test_doubt_never_withdraws_a_vt_alarm_already_showing() -> None:
    engine = AlarmEngine()
    engine.observe_beats("p1", 5 * NS, _beats(7, True), 5 * NS)
    assert engine.status("p1", "vt") == "active"
    later = _beats(3, False, "pulses regular", start=7 * round(0.4 * NS))
    out = engine.observe_beats("p1", 6 * NS, later, 6 * NS)
    assert engine.status("p1", "vt") == "active"
    assert not any(n.condition == "vt_unconfirmed" for n in out.notices)


def test_a_doubted_run_that_becomes_confirmed_alarms() -> None:
    engine = AlarmEngine()
    engine.observe_beats("p1", 5 * NS, _beats(7, False, "pulses regular"), 5 * NS)
    assert engine.status("p1", "vt") == "inactive"
    out = engine.observe_beats("p1", 6 * NS, _beats(1, True, "pulse lost", start=7 * round(0.4 * NS)), 6 * NS)
    assert any(n.condition == "vt" and n.state == "raised" for n in out.notices)


def test_a_poor_primary_lead_blocks_vt_unless_another_channel_corroborates() -> None:
    engine = AlarmEngine()
    engine.technical("p1", "poor_signal", True, 0, 0)
    quiet = engine.observe_beats("p1", 5 * NS, _beats(8, True, "one lead: nothing to cross-check"), 5 * NS)
    assert not any(n.condition == "vt" for n in quiet.notices)
    seen = [Beat(b.device_time_ns, "V", True, "leads agree", True) for b in _beats(8, True, start=4 * NS)]
    out = engine.observe_beats("p1", 9 * NS, seen, 9 * NS)
    assert any(n.condition == "vt" and n.state == "raised" for n in out.notices)
    assert not any(n.condition == "asystole" for n in out.notices)  # no pause is measured on a poor signal


def test_lead_off_blocks_even_a_corroborated_run() -> None:
    engine = AlarmEngine()
    engine.technical("p1", "lead_off", True, 0, 0)
    seen = [Beat(b.device_time_ns, "V", True, "leads agree", True) for b in _beats(8, True)]
    assert not engine.observe_beats("p1", 5 * NS, seen, 5 * NS).notices


def test_a_run_another_lead_saw_in_full_counts_its_beats() -> None:
    engine = AlarmEngine()  # shipped limit: 6 beats
    two = [Beat(round(i * 0.8 * NS), "V", True, "8 beats in ECG2", True, 8) for i in range(2)]  # every other beat
    out = engine.observe_beats("p1", 2 * NS, two, 2 * NS)
    raised = [n for n in out.notices if n.condition == "vt" and n.state == "raised"]
    assert raised and raised[0].value == 8.0
    unchecked = AlarmEngine().observe_beats("p2", 2 * NS, [Beat(b.device_time_ns, "V", None, "", False, 8)
                                                            for b in two], 2 * NS)
    assert not any(n.condition == "vt" for n in unchecked.notices)  # only a check's run counts


# ---- the bounded wait for the pulse (one lead) -------------------------------------------------

def _pending(at: int, beats: int = 3) -> VtVerdict:
    return VtVerdict(True, f"{beats} ventricular beats at 180/min in ECG (one lead); waiting for the pulse",
                     run_beats=beats, pending_from=at)


def test_a_held_run_is_decided_exactly_when_its_wait_ends() -> None:
    opened = settle(None, _pending(1000), 1100, 250, 1.0)
    assert opened.verdict.pending_from == 1000 and opened.decisions == ()
    assert opened.hold is not None and (opened.hold.limit_at, opened.hold.until) == (1000, 1250)
    before = settle(opened.hold, _pending(1000, 4), 1249, 250, 1.0)
    assert before.verdict.pending_from == 1000 and before.decisions == ()
    at = settle(before.hold, _pending(1000, 5), 1250, 250, 1.0)
    [(limit_at, final)] = at.decisions
    assert limit_at == 1000 and final.confirmed and final.pending_from is None and final.run_beats == 5
    assert "none covered the run within 1 s, so confirmed" in final.reason
    assert at.verdict == final and at.hold is not None and at.hold.decided
    again = settle(at.hold, _pending(1000, 6), 1300, 250, 1.0)  # its wait is over: it never waits again
    assert again.decisions == () and again.verdict.confirmed and again.verdict.pending_from is None


@pytest.mark.parametrize("confirmed", [True, False], ids=["pulse-lost", "pulses-followed"])
def test_pulse_evidence_ends_the_wait_with_its_verdict(confirmed: bool) -> None:
    opened = settle(None, _pending(1000), 1100, 250, 1.0)
    evidence = VtVerdict(confirmed, "3 ventricular beats (one lead); pulse: ...", confirmed, 3)
    out = settle(opened.hold, evidence, 1200, 250, 1.0)
    assert out.decisions == ((1000, evidence),) and out.verdict == evidence
    assert out.hold is not None and out.hold.decided
    assert settle(out.hold, evidence, 1210, 250, 1.0).decisions == ()  # decided once


def test_a_later_run_waits_again_and_an_open_wait_is_never_dropped() -> None:
    opened = settle(None, _pending(1000), 1100, 250, 1.0)
    later = settle(opened.hold, _pending(1300), 1300, 250, 1.0)
    [(limit_at, final)] = later.decisions
    assert limit_at == 1000 and final.confirmed
    assert later.hold is not None and (later.hold.limit_at, later.hold.until, later.hold.decided) == (1300, 1550, False)
    assert later.verdict.pending_from == 1300


def test_a_verdict_that_does_not_wait_passes_through_unchanged() -> None:
    plain = VtVerdict(True, "4 ventricular beats (one lead: nothing to cross-check)", run_beats=4)
    out = settle(None, plain, 1000, 250, 1.0)
    assert out == Settled(plain, (), None)


PENDING_REASON = "4 ventricular beats at 180/min in ECG (one lead); waiting for the pulse"
LIMIT = round(default_specs()["vt"].tiers[0].limit)  # the shipped VT limit
RR = round(NS / 3)  # 180/min


def _held_run(n: int, start: int = 5 * NS) -> tuple[list[Beat], int, int]:
    """``n`` ventricular beats at 180/min whose check waits for the pulse; the limit beat and the wait's end."""
    limit_t = start + (LIMIT - 1) * RR
    until = limit_t + NS
    return [Beat(start + i * RR, "V", None, PENDING_REASON, False, 0, until) for i in range(n)], limit_t, until


def _vt_notices(out: Outcome) -> list[tuple[str, str]]:
    return [(n.condition, n.state) for n in out.notices if n.condition in ("vt", "vt_unconfirmed")]


def test_a_held_run_confirmed_by_the_lost_pulse_alarms_from_the_beat_that_reached_the_limit() -> None:
    engine = AlarmEngine()
    beats, limit_t, _until = _held_run(LIMIT + 1)
    held = engine.observe_beats("p1", beats[-1].device_time_ns, beats, 10 * NS)
    assert _vt_notices(held) == [] and engine.status("p1", "vt") == "pending"
    decision = Beat(limit_t, "V", True, "4 ventricular beats (one lead); pulse: no pulse since the run began (1.3 s)",
                    True, LIMIT, vt_decision=True)
    out = engine.observe_beats("p1", limit_t + NS // 2, [decision], 11 * NS)
    [alarm] = [n for n in out.notices if n.condition == "vt"]
    assert (alarm.state, alarm.priority) == ("raised", "high")
    assert alarm.trigger_sample_device_time_ns == alarm.onset_sample_device_time_ns == limit_t
    assert alarm.decision_time_ns == 11 * NS and "no pulse since the run began" in alarm.reason
    assert not any(n.condition == "vt_unconfirmed" for n in out.notices)
    assert engine.status("p1", "vt") == "active"


def test_a_held_run_with_continuing_pulses_gives_the_advisory_not_the_alarm() -> None:
    engine = AlarmEngine()
    beats, limit_t, _until = _held_run(LIMIT + 2)
    engine.observe_beats("p1", beats[-1].device_time_ns, beats, 10 * NS)
    why = "4 ventricular beats at 180/min in ECG (one lead), but pulses regular at 180/min, amplitude x0.95"
    later = Beat(beats[-1].device_time_ns + RR, "V", False, why, False, LIMIT + 3)
    out = engine.observe_beats("p1", later.device_time_ns, [Beat(limit_t, "V", False, why, False, LIMIT,
                                                                 vt_decision=True), later], 11 * NS)
    assert _vt_notices(out) == [("vt_unconfirmed", "raised")]
    [advisory] = out.notices
    assert advisory.priority == "low" and advisory.trigger_sample_device_time_ns == limit_t
    assert advisory.reason.endswith(f"(VT unconfirmed: {why})")
    assert engine.status("p1", "vt") == "inactive" and engine.status("p1", "vt_unconfirmed") == "active"


def test_a_held_run_is_confirmed_when_its_wait_ends_without_a_decision() -> None:
    engine = AlarmEngine()
    beats, limit_t, until = _held_run(LIMIT)
    engine.observe_beats("p1", limit_t, beats, 10 * NS)
    assert _vt_notices(engine.observe_beats("p1", until - 1, [], 11 * NS)) == []  # one nanosecond before: held
    out = engine.observe_beats("p1", until, [], 12 * NS)
    [alarm] = [n for n in out.notices if n.condition == "vt"]
    assert alarm.state == "raised" and alarm.trigger_sample_device_time_ns == limit_t
    assert "no decision within the wait, so confirmed" in alarm.reason and alarm.decision_time_ns == 12 * NS


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "doubted"])
def test_a_held_run_that_ended_before_its_decision_is_still_decided(confirmed: bool) -> None:
    engine = AlarmEngine()
    beats, limit_t, _until = _held_run(LIMIT)
    engine.observe_beats("p1", limit_t, beats, 10 * NS)
    sinus = [Beat(limit_t + k * RR, "N") for k in (1, 2)]  # the run ended while the decision waited
    assert _vt_notices(engine.observe_beats("p1", sinus[-1].device_time_ns, sinus, 11 * NS)) == []
    decision = Beat(limit_t, "V", confirmed, "the check's reason", confirmed, LIMIT, vt_decision=True)
    out = engine.observe_beats("p1", sinus[-1].device_time_ns + 1, [decision], 12 * NS)
    if confirmed:  # raised at the limit beat, then latched: the run is over but nobody acknowledged it
        assert _vt_notices(out) == [("vt", "raised"), ("vt", "latched")]
        assert out.notices[0].trigger_sample_device_time_ns == limit_t
    else:
        assert _vt_notices(out) == [("vt_unconfirmed", "raised")]
        assert out.notices[0].trigger_sample_device_time_ns == limit_t


def test_a_held_run_is_confirmed_when_the_signal_stops_or_breaks() -> None:
    stopped = AlarmEngine()  # no more ECG at all: the gateway clock ends the wait
    beats, limit_t, until = _held_run(LIMIT)
    stopped.observe_beats("p1", limit_t, beats, 10 * NS)
    assert _vt_notices(stopped.tick(10 * NS + (until - limit_t) - 1)) == []
    [alarm] = stopped.tick(10 * NS + (until - limit_t)).notices
    assert (alarm.condition, alarm.state, alarm.trigger_sample_device_time_ns) == ("vt", "raised", limit_t)
    broken = AlarmEngine()  # a gap restarts the analysis, so its decision can never come: the next input decides
    broken.observe_beats("p1", limit_t, beats, 10 * NS)
    broken.signal_interrupted("p1")
    out = broken.observe_beats("p1", limit_t + NS // 10, [], 10 * NS + 1)
    assert _vt_notices(out) == [("vt", "raised")] and out.notices[0].trigger_sample_device_time_ns == limit_t


def test_a_waiting_check_does_not_hold_an_alarm_already_showing_or_a_run_below_the_limit() -> None:
    engine = AlarmEngine()
    engine.observe_beats("p1", 5 * NS, _beats(LIMIT + 2, True), 5 * NS)
    assert engine.status("p1", "vt") == "active"
    beats, _limit_t, _until = _held_run(3, start=(LIMIT + 2) * round(0.4 * NS))  # the run goes on, pending
    out = engine.observe_beats("p1", beats[-1].device_time_ns, beats, 6 * NS)
    assert engine.status("p1", "vt") == "active" and _vt_notices(out) == []
    short = AlarmEngine()
    few, _limit_t, _until = _held_run(LIMIT - 1)
    short.observe_beats("p1", few[-1].device_time_ns, few, 6 * NS)
    assert short.status("p1", "vt") == "inactive"  # nothing to hold below the limit
