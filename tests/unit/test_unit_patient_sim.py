"""The patient simulator: determinism, chunk invariance, every event kind, consistency, scenario validation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cardiogate.core.settings import ConfigError
from cardiogate.sim.patient import (
    EVENT_KINDS,
    PatientScenario,
    PatientSimulator,
    load_patient_scenario,
    parse_patient_scenario,
)
from cardiogate.sim.physiology import BeatGenerator, EcgSynthesizer, HeartRateTimeline, uv_to_int16, uv_to_int24

FS = 250
CLEAN: dict[str, Any] = {"wander_mv": 0.0, "rr_variability": 0.02}


def sim(events: list[dict[str, Any]] | None = None, seed: int = 7, fs: int = FS, **fields: Any) -> PatientSimulator:
    return PatientSimulator(PatientScenario.model_validate({**fields, "events": events or []}), seed, fs)


def window(s: PatientSimulator, t0: float, t1: float) -> npt.NDArray[np.float64]:
    i0, i1 = round(t0 * s.ecg_rate_hz), round(t1 * s.ecg_rate_hz)
    return s.ecg_uv(i0, i1 - i0)


def ensemble(s: PatientSimulator, t0: float, t1: float, before_s: float, after_s: float) -> npt.NDArray[np.float64]:
    """Average ECG around the beats in [t0, t1), aligned on the R peak."""
    pre, post = round(before_s * FS), round(after_s * FS)
    rows = [s.ecg_uv(round(b.t_s * FS) - pre, pre + post) for b in s.beats_between(t0, t1)]
    return np.asarray(np.mean(rows, axis=0), dtype=np.float64)


def qrs_width_ms(avg: npt.NDArray[np.float64], pre: int) -> float:
    core = avg[pre - round(0.1 * FS):pre + round(0.1 * FS)]
    idx = np.flatnonzero(np.abs(core) > 0.15 * np.abs(core).max())
    return float(idx[-1] - idx[0]) * 1000.0 / FS


def bump(x: npt.NDArray[np.float64]) -> float:
    """Height of a wave above the straight line joining the ends of ``x`` (ignores a sloping T-wave tail)."""
    return float(np.max(x - np.linspace(x[0], x[-1], x.size)))


def cv(x: list[float]) -> float:
    return float(np.std(x) / np.mean(x))


EVERYTHING: list[dict[str, Any]] = [
    {"kind": "noise", "at_s": 2, "duration_s": 5, "snr_db": 6},
    {"kind": "vt", "at_s": 8, "duration_s": 5},
    {"kind": "motion", "at_s": 14, "duration_s": 4},
    {"kind": "pause", "at_s": 19, "duration_s": 3.5},
    {"kind": "af", "at_s": 24, "duration_s": 10},
    {"kind": "lead_off", "at_s": 35, "duration_s": 2},
    {"kind": "tachycardia", "at_s": 38, "duration_s": 10, "ramp_s": 2},
    {"kind": "desaturation", "at_s": 5, "duration_s": 20, "fall_s": 10, "recovery_s": 10},
    {"kind": "hypertensive", "at_s": 10, "duration_s": 20, "ramp_s": 5},
    {"kind": "bradycardia", "at_s": 49, "duration_s": 5, "ramp_s": 0},
    {"kind": "sinus", "at_s": 55, "hr_bpm": 90, "ramp_s": 3},
]


# ---- determinism and chunking -------------------------------------------------------------------

def test_same_seed_gives_identical_signals_and_a_different_seed_does_not() -> None:
    a, b, c = sim(EVERYTHING, seed=3, snr_db=30), sim(EVERYTHING, seed=3, snr_db=30), sim(EVERYTHING, seed=4, snr_db=30)
    n = FS * 60
    assert np.array_equal(a.ecg_uv(0, n), b.ecg_uv(0, n))
    assert a.beats_until(60) == b.beats_until(60)
    assert [a.spo2_pct(t) for t in range(60)] == [b.spo2_pct(t) for t in range(60)]
    assert not np.array_equal(a.ecg_uv(0, n), c.ecg_uv(0, n))
    assert [x.t_s for x in a.beats_until(60)] != [x.t_s for x in c.beats_until(60)]


def test_the_order_of_questions_does_not_change_the_answers() -> None:
    forward, scrambled = sim(EVERYTHING, snr_db=20), sim(EVERYTHING, snr_db=20)
    scrambled.heart_rate_bpm(59.0)  # beats generated far ahead first
    blocks = list(range(0, FS * 60, 1000))
    got = {i: scrambled.ecg_uv(i, 1000) for i in reversed(blocks)}
    assert np.array_equal(np.concatenate([got[i] for i in blocks]), forward.ecg_uv(0, FS * 60))
    assert scrambled.beats_until(60) == forward.beats_until(60)


@pytest.mark.parametrize("fs", [250, 130, 500])
def test_ecg_is_chunk_invariant_for_random_splits(fs: int) -> None:
    n = fs * 62
    whole = sim(EVERYTHING, fs=fs, snr_db=25).ecg_uv(0, n)
    rng = np.random.default_rng(fs)
    for _ in range(3):
        chunked = sim(EVERYTHING, fs=fs, snr_db=25)
        cuts = np.sort(rng.choice(np.arange(1, n), size=200, replace=False))
        bounds = [0, *cuts.tolist(), n]
        parts = [chunked.ecg_uv(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)]
        assert np.array_equal(np.concatenate(parts), whole)
    again = sim(EVERYTHING, fs=fs, snr_db=25)
    assert np.array_equal(np.concatenate([again.ecg_uv(i, 10) for i in range(0, n, 10)]), whole)


# ---- rhythm events ------------------------------------------------------------------------------

def test_af_has_irregular_rr_no_p_waves_and_fibrillatory_baseline() -> None:
    af = sim([{"kind": "af", "at_s": 0, "duration_s": 120, "hr_bpm": 75}], **CLEAN)
    sinus = sim(hr_bpm=75, **CLEAN)
    assert cv(af.rr_intervals_s(5, 120)) > 0.15
    assert cv(sinus.rr_intervals_s(5, 120)) < 0.06
    assert {b.rhythm for b in af.beats_between(0, 120)} == {"af"}
    assert af.heart_rate_bpm(60) == pytest.approx(75, rel=0.35)
    pre = round(0.3 * FS)  # P wave region: 300..80 ms before the R peak
    p_sinus = ensemble(sinus, 5, 120, 0.3, 0.0)[: pre - round(0.08 * FS)]
    p_af = ensemble(af, 5, 120, 0.3, 0.0)[: pre - round(0.08 * FS)]
    assert bump(p_sinus) > 90.0  # ~120 uV P wave
    assert bump(p_af) < 15.0  # f-waves do not add up coherently before the R peak
    no_f = sim([{"kind": "af", "at_s": 0, "duration_s": 120, "hr_bpm": 75, "fwave_mv": 0}], **CLEAN)
    f = window(af, 0, 60) - window(no_f, 0, 60)
    spectrum = np.abs(np.fft.rfft(f))
    peak_hz = np.fft.rfftfreq(f.size, 1 / FS)[int(np.argmax(spectrum))]
    assert 4.0 <= peak_hz <= 9.0
    assert 25.0 < np.std(f) < 60.0  # ~80 uV peak f-waves


def test_vt_is_fast_wide_and_ventricular() -> None:
    s = sim([{"kind": "vt", "at_s": 10, "duration_s": 20, "hr_bpm": 190}], **CLEAN)
    vt = s.beats_between(10, 30)
    assert {b.symbol for b in vt} == {"V"} and {b.rhythm for b in vt} == {"vt"}
    assert 60.0 / float(np.mean(s.rr_intervals_s(11, 30))) == pytest.approx(190, rel=0.03)
    assert s.heart_rate_bpm(20) == pytest.approx(190, rel=0.05)
    assert {b.symbol for b in s.beats_between(31, 40)} == {"N"}
    pre = round(0.15 * FS)
    assert qrs_width_ms(ensemble(s, 11, 29, 0.15, 0.15), pre) > 120.0
    assert qrs_width_ms(ensemble(s, 31, 60, 0.15, 0.15), pre) < 100.0
    assert any(e.kind == "vt" and 9.9 < e.start_s < 10.5 for e in s.critical_episodes(60))


def test_pause_has_no_beats_and_the_reported_rate_falls() -> None:
    s = sim([{"kind": "pause", "at_s": 20, "duration_s": 4}], **CLEAN)
    assert s.beats_between(20, 24) == []
    assert s.beats_between(24, 24.001)[0].t_s == 24.0
    assert s.heart_rate_bpm(19.9) > 60
    assert s.heart_rate_bpm(23.0) < 25
    assert s.blood_pressure(23.5)[0] < s.blood_pressure(15)[0] - 30
    assert np.ptp(window(s, 20.5, 23.9)) < 300  # only the tail of the last T wave and nothing else
    kinds = [(e.kind, round(e.end_s, 3)) for e in s.critical_episodes(40)]
    assert ("asystole", 24.0) in kinds


def test_open_ended_pause_is_asystole() -> None:
    s = sim([{"kind": "pause", "at_s": 10, "duration_s": math.inf}])
    assert s.beats_between(10, 100) == []
    assert s.heart_rate_bpm(70) < 1.5
    assert s.truth_events()[0].reason == "asystole"


@pytest.mark.parametrize(("kind", "hr"), [("bradycardia", 35.0), ("tachycardia", 165.0), ("sinus", 110.0)])
def test_rate_events_reach_their_rate_and_come_back(kind: str, hr: float) -> None:
    s = sim([{"kind": kind, "at_s": 10, "duration_s": 40, "hr_bpm": hr, "ramp_s": 5}], **CLEAN)
    assert s.heart_rate_bpm(45) == pytest.approx(hr, rel=0.06)
    assert s.heart_rate_bpm(80) == pytest.approx(72, rel=0.06)
    assert {b.rhythm for b in s.beats_between(0, 80)} == {"sinus"}


def test_bp_rises_modestly_with_heart_rate_and_follows_hypertensive_events() -> None:
    s = sim([{"kind": "tachycardia", "at_s": 10, "duration_s": 60},
             {"kind": "hypertensive", "at_s": 100, "duration_s": 100, "ramp_s": 20}], **CLEAN)
    rest, fast = s.blood_pressure(5), s.blood_pressure(50)
    assert rest[0] == pytest.approx(120, abs=3) and rest[1] == pytest.approx(80, abs=2)
    assert 10 < fast[0] - rest[0] < 40 and 0 < fast[1] - rest[1] < 20
    systolic, diastolic, mean = s.blood_pressure(150)
    assert systolic == pytest.approx(185, abs=3) and diastolic == pytest.approx(115, abs=2)
    assert mean == pytest.approx(diastolic + (systolic - diastolic) / 3, abs=0.2)
    assert s.blood_pressure(110)[0] == pytest.approx(120 + 65 / 2, abs=3)  # half way up the ramp


def test_ectopic_beats_are_labelled_and_followed_by_a_pause() -> None:
    s = sim(pvc_per_min=6, pac_per_min=6, **CLEAN)
    beats = s.beats_until(300)
    symbols = [b.symbol for b in beats]
    assert 15 < symbols.count("V") < 50 and 15 < symbols.count("A") < 50
    for prev, beat, nxt in zip(beats, beats[1:], beats[2:], strict=False):
        if beat.symbol == "V" and prev.symbol == "N" and nxt.symbol == "N":
            assert beat.rr_s is not None and nxt.rr_s is not None and prev.rr_s is not None
            assert beat.rr_s < 0.75 * prev.rr_s < nxt.rr_s


# ---- vitals and artefacts -----------------------------------------------------------------------

def test_desaturation_ramps_to_its_target_and_recovers() -> None:
    s = sim([{"kind": "desaturation", "at_s": 10, "duration_s": 60, "target_pct": 84, "fall_s": 20,
              "recovery_s": 30}])
    assert s.spo2_pct(9) == 97
    assert 84 < s.spo2_pct(20) < 97
    assert s.spo2_pct(30) == pytest.approx(84) and s.spo2_pct(69) == pytest.approx(84)
    samples = [s.spo2_pct(t) for t in np.arange(0, 120, 0.5)]
    assert min(samples) == pytest.approx(84) and np.all(np.diff(samples[:60]) <= 0)
    assert s.spo2_pct(100) == 97
    episode = next(e for e in s.critical_episodes(120) if e.kind == "desaturation")
    assert 15 < episode.start_s < 25 and 75 < episode.end_s < 90


@pytest.mark.parametrize("snr_db", [0.0, 12.0, 24.0])
def test_noise_event_reaches_the_requested_snr(snr_db: float) -> None:
    events = [{"kind": "noise", "at_s": 10, "duration_s": 30, "snr_db": snr_db}]
    noisy, clean = sim(events, **CLEAN), sim(**CLEAN)
    noise = window(noisy, 10, 40) - window(clean, 10, 40)
    qrs = [np.ptp(clean.ecg_uv(round(b.t_s * FS) - 15, 30)) for b in clean.beats_between(11, 39)]
    measured = 10 * math.log10((float(np.mean(qrs)) ** 2 / 8) / float(np.var(noise)))
    assert measured == pytest.approx(snr_db, abs=1.0)
    assert np.array_equal(window(noisy, 0, 9.9), window(clean, 0, 9.9))
    assert np.array_equal(window(noisy, 40.1, 50), window(clean, 40.1, 50))


def test_motion_adds_large_slow_swings_and_spikes() -> None:
    moving, still = sim([{"kind": "motion", "at_s": 5, "duration_s": 20}], **CLEAN), sim(**CLEAN)
    art = window(moving, 5, 25) - window(still, 5, 25)
    assert np.std(art) > 400  # uV: much larger than the ~50 uV wander
    spectrum = np.abs(np.fft.rfft(art))
    freqs = np.fft.rfftfreq(art.size, 1 / FS)
    assert freqs[int(np.argmax(spectrum))] < 2.5
    assert np.max(np.abs(np.diff(art))) > 200  # spikes: steps far sharper than the swings
    assert np.array_equal(window(moving, 0, 4.9), window(still, 0, 4.9))


@pytest.mark.parametrize(("mode", "level"), [("flat", 0.0), ("railed", 5000.0)])
def test_lead_off_flattens_or_rails_the_ecg_and_drops_contact(mode: str, level: float) -> None:
    s = sim([{"kind": "lead_off", "at_s": 10, "duration_s": 5, "mode": mode, "rail_mv": 5.0}], snr_db=20)
    assert np.all(window(s, 10, 15) == level)
    assert np.std(window(s, 15, 20)) > 50
    assert s.sensor_contact(9.9) and not s.sensor_contact(10) and not s.lead_off(9.9)
    assert s.lead_off(14.99) and s.sensor_contact(15)
    assert next(t for t in s.truth_events() if t.kind == "lead_off").technical


# ---- consistency --------------------------------------------------------------------------------

def test_r_peaks_in_the_ecg_are_the_beats_and_the_reported_rate_is_their_rate() -> None:
    s = sim([{"kind": "tachycardia", "at_s": 20, "duration_s": 20}, {"kind": "af", "at_s": 50, "duration_s": 15}],
            **CLEAN)
    x = window(s, 0, 80)
    peaks = [i for i in range(1, x.size - 1) if x[i] > 600 and x[i] >= x[i - 1] and x[i] > x[i + 1]]
    beats = [round(b.t_s * FS) for b in s.beats_between(0, 80 - 1 / FS)]
    assert len(peaks) == len(beats)
    assert max(abs(p - b) for p, b in zip(peaks, beats, strict=True)) <= 1
    for t in (10.0, 35.0, 60.0, 75.0):
        rr = s.rr_intervals_s(0, t)[-4:]
        assert s.heart_rate_bpm(t) == pytest.approx(60 / float(np.mean(rr)))
    assert s.pulse_rate_bpm(35) == pytest.approx(s.heart_rate_bpm(35), rel=0.05)


def test_130_hz_polar_stream_has_the_same_heart() -> None:
    s250, s130 = sim(EVERYTHING), sim(EVERYTHING, fs=130)
    assert s250.beats_until(60) == s130.beats_until(60)
    x = s130.ecg_uv(0, 130 * 60)
    assert x.size == 7800
    r = round(s130.beats_between(0.5, 2)[0].t_s * 130)
    assert x[r] == pytest.approx(s250.ecg_uv(round(s250.beats_between(0.5, 2)[0].t_s * 250), 1)[0], rel=0.15)
    assert uv_to_int24(x).dtype == np.int32


def test_quantisers_round_and_clip() -> None:
    assert uv_to_int16([1.4, -1.6, 1e9, -1e9], 1000).tolist() == [1, -2, 32767, -32768]
    assert uv_to_int16([10.0], 500).tolist() == [20]
    assert uv_to_int24([2.5e7, -2.5e7, 12.6]).tolist() == [8388607, -8388608, 13]


def test_truth_flags_the_critical_events() -> None:
    truth = {t.kind: t for t in sim(EVERYTHING).truth_events(sustain_s=5)}
    assert truth["vt"].critical and truth["pause"].critical and truth["desaturation"].critical
    assert truth["tachycardia"].critical and truth["bradycardia"].critical
    assert not truth["af"].critical and not truth["noise"].critical and not truth["motion"].critical
    assert truth["sinus"].end_s is None and truth["vt"].end_s == 13
    record = truth["pause"].as_record()
    assert record["start_s"] == 19 and record["end_s"] == 22.5 and record["reason"] == "pause > 3 s"
    short = sim([{"kind": "pause", "at_s": 5, "duration_s": 2}]).truth_events()[0]
    assert not short.critical


# ---- scenario files and validation --------------------------------------------------------------

def test_every_event_kind_has_defaults() -> None:
    scenario = PatientScenario.model_validate({"events": [{"kind": k, "at_s": 1, **({"hr_bpm": 80} if k == "sinus"
                                                                                     else {})} for k in EVENT_KINDS]})
    assert [e.kind for e in scenario.events] == list(EVENT_KINDS)


@pytest.mark.parametrize(("data", "expected"), [
    ({"hr_bpm": 350}, "field 'hr_bpm': Input should be less than or equal to 300"),
    ({"events": [{"kind": "flutter", "at_s": 1}]}, "field 'events.0': Input tag 'flutter' found using 'kind'"),
    ({"events": [{"kind": "bradycardia", "at_s": 1, "hr_bpm": 80}]},
     "field 'events.0.bradycardia.hr_bpm': Input should be less than or equal to 60"),
    ({"events": [{"kind": "vt", "at_s": -1}]}, "field 'events.0.vt.at_s': Input should be greater than or equal to 0"),
    ({"events": [{"kind": "pause", "at_s": 1, "duration_s": 0}]}, "field 'events.0.pause.duration_s'"),
    ({"events": [{"kind": "noise", "at_s": 1, "snr": 3}]},
     "field 'events.0.noise.snr': Extra inputs are not permitted"),
    ({"events": [{"kind": "sinus", "at_s": 1}]}, "field 'events.0.sinus.hr_bpm': Field required"),
    ({"events": [{"at_s": 1}]}, "field 'events': Value error, events[0] has no 'kind' (one of sinus, bradycardia,"),
    ({"systolic_mmhg": 80, "diastolic_mmhg": 90}, "diastolic_mmhg (90) must be below systolic_mmhg (80)"),
    ({"events": [{"kind": "desaturation", "at_s": 1, "target_pct": 98}]},
     "events[0] desaturation target_pct (98) must be below the baseline spo2_pct (97)"),
    ({"events": [{"kind": "hypertensive", "at_s": 1, "systolic_mmhg": 150, "diastolic_mmhg": 160}]},
     "diastolic_mmhg (160) must be below systolic_mmhg (150)"),
])
def test_scenario_errors_name_the_field_and_the_problem(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_patient_scenario(data, "ward.toml")
    assert expected in str(err.value)
    assert str(err.value).startswith("ward.toml: field")


def test_standalone_toml_file(tmp_path: Path) -> None:
    body = """
hr_bpm = 80
snr_db = 30

[[events]]
kind = "af"
at_s = 60
duration_s = inf

[[events]]
kind = "desaturation"
at_s = 30
target_pct = 85
"""
    flat, nested = tmp_path / "flat.toml", tmp_path / "nested.toml"
    flat.write_text(body)
    nested.write_text("[patient]\n" + body.replace("[[events]]", "[[patient.events]]"))
    a, b = load_patient_scenario(flat), load_patient_scenario(nested)
    assert a == b
    assert a.hr_bpm == 80 and a.snr_db == 30 and a.events[0].end_s is None and a.events[1].duration_s == 90
    bad = tmp_path / "bad.toml"
    bad.write_text("hr_bpm = 10\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: field 'hr_bpm'"):
        load_patient_scenario(bad)


def test_heart_rate_knots_convert_to_the_same_timeline() -> None:
    knots = [(0.0, 70.0), (15.0, 70.0), (25.0, 165.0), (40.0, 100.0)]
    s = PatientSimulator(PatientScenario.from_heart_rate_knots(knots, wander_mv=0.0))
    old = HeartRateTimeline(tuple(knots))
    for t in np.arange(0, 60, 0.7):
        assert s.plan.sinus_rate(float(t)) == pytest.approx(old.at(float(t)))


def test_the_first_engine_still_works() -> None:
    beats = BeatGenerator(HeartRateTimeline(((0.0, 60.0),)), seed=1)
    samples = EcgSynthesizer(beats, 250, 1000, seed=1).samples(0, 500)
    assert samples.dtype == np.int16 and samples.max() > 1000
    assert len(beats.beats_between(0, 10)) in (9, 10, 11)
