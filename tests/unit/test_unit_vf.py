"""The VF detector (cardiogate.edge.dsp.vf) and the ``vf`` / ``vf_unconfirmed`` alarms it drives.

Synthetic signals with known shape: a 4.5 Hz flutter wave (270/min, no baseline between waves), a sinus-like
trace of narrow QRS spikes resting on the baseline, broadband noise, and the flutter wave too small to judge.
The real-signal measurement (MIT-BIH 207's flutter, the noise stress test, CinC 2015) is in docs/alarms.md;
the last test repeats one MIT-BIH episode where the data is present.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from cardiogate.edge.alarm_engine import AlarmEngine
from cardiogate.edge.dsp.filters import bandpass_sos
from cardiogate.edge.dsp.sosfilt import sosfilt
from cardiogate.edge.dsp.vf import VF_RHYTHM_WINDOWS, VfConfig, VfFeatures, VfRhythm, VfWatch, judge, vf_features
from tests.conftest import REPO

FS = 250.0
NS = 1_000_000_000
CFG = VfConfig()


def flutter(seconds: float, mv: float = 1.0, hz: float = 4.5, seed: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    rng = np.random.default_rng(seed)
    return mv * np.sin(2 * np.pi * hz * t + 0.3 * np.sin(2 * np.pi * 0.2 * t)) + 0.02 * rng.standard_normal(t.size)


def sinus(seconds: float, bpm: float = 75.0, seed: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    x = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    for beat in np.arange(0.3, seconds, 60.0 / bpm):
        x += 1.2 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)  # a narrow QRS
        x += 0.25 * np.exp(-0.5 * ((t - beat - 0.25) / 0.05) ** 2)  # its T wave
    return x


def band(x: np.ndarray) -> np.ndarray:
    y, _ = sosfilt(bandpass_sos(FS, *CFG.band_hz), x, None)
    return np.asarray(y[-round(CFG.window_s * FS):])


def test_flutter_has_every_mark_of_vf_and_sinus_noise_and_a_tiny_wave_do_not() -> None:
    f = vf_features(band(flutter(8)), FS)
    assert f.is_vf(CFG)
    assert f.leakage < 0.3 and f.tcsc > 0.6 and abs(f.dominant_hz - 4.5) < 0.3 and f.vf_band_share > 0.9
    s = vf_features(band(sinus(8)), FS)
    assert not s.is_vf(CFG) and s.tcsc < CFG.veto_tcsc  # narrow beats rest on the baseline
    noise = vf_features(band(np.random.default_rng(3).standard_normal(round(8 * FS))), FS)
    assert not noise.is_vf(CFG) and noise.vf_band_share < CFG.min_vf_band_share  # broadband, not one oscillation
    tiny = vf_features(band(flutter(8, mv=0.04)), FS)
    assert tiny.amplitude_mv < CFG.min_amplitude_mv and not tiny.is_vf(CFG)



def test_broadband_noise_does_not_hide_a_flutter_wave_from_the_leakage() -> None:
    """The leakage's half period is the spectrum's dominant one: noise that inflates the mean absolute slope (which
    the original period estimate divides by) leaves it where the oscillation is."""
    noisy = flutter(8, mv=0.3) + 0.2 * np.random.default_rng(7).standard_normal(round(8 * FS))
    f = vf_features(band(noisy), FS)  # the slope's period estimate gave 0.74 here, above the 0.625 limit
    assert abs(f.dominant_hz - 4.5) < 0.3 and f.leakage < 0.4 and f.is_vf(CFG)


@pytest.mark.parametrize("limit", ["max_leakage", "min_tcsc", "min_vf_band_share", "min_concentration",
                                   "min_amplitude_mv"])
def test_each_measure_can_veto_on_its_own(limit: str) -> None:
    f = VfFeatures(leakage=0.4, tcsc=0.7, dominant_hz=4.5, vf_band_share=0.9, concentration=0.8, amplitude_mv=1.0)
    assert f.is_vf(CFG)
    field = {"max_leakage": "leakage", "min_tcsc": "tcsc", "min_vf_band_share": "vf_band_share",
             "min_concentration": "concentration", "min_amplitude_mv": "amplitude_mv"}[limit]
    at_limit = getattr(CFG, limit)
    # exactly at the limit is not VF for the strict comparisons; the amplitude floor itself is still judged
    edge = VfFeatures(**{**{k: getattr(f, k) for k in VfFeatures.__slots__}, field: at_limit})
    assert edge.is_vf(CFG) is (limit == "min_amplitude_mv")
    worse = at_limit * (1.1 if limit.startswith("max") else 0.9)
    assert not VfFeatures(**{**{k: getattr(f, k) for k in VfFeatures.__slots__}, field: worse}).is_vf(CFG)


def test_judgements_do_not_depend_on_the_chunking_and_never_span_a_gap() -> None:
    x = np.concatenate([sinus(10), flutter(10)]) * 1000.0  # microvolts, as a device sends them
    whole = VfWatch(FS, 1000.0).push(x, 0)
    for size in (1, 37, 250):
        w = VfWatch(FS, 1000.0)
        got = [j for s in range(0, x.size, size) for j in w.push(x[s:s + size], s)]
        assert [(j.end, j.vf) for j in got] == [(j.end, j.vf) for j in whole]
        assert all(np.isclose(a.features.leakage, b.features.leakage) for a, b in zip(got, whole, strict=True))
    assert [j.end for j in whole][:2] == [1000, 1250]  # first after 4 s, then every second
    assert not any(j.vf for j in whole if j.end <= 2500) and sum(j.vf for j in whole if j.end >= 3500) >= 5
    w = VfWatch(FS, 1000.0)
    w.push(x[:3000], 0)
    after_gap = w.push(x[3000:], 3500)  # 2 s missing: the window restarts at the new position
    assert after_gap[0].end == 3500 + 1000


def test_the_spectral_screen_gives_the_same_verdicts_and_skips_the_rest_only_where_vf_is_ruled_out() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate([sinus(12), flutter(8), 0.3 * rng.standard_normal(round(6 * FS)), flutter(6, mv=0.1)]) * 1e3
    full, screened = VfWatch(FS, 1000.0).push(x, 0), VfWatch(FS, 1000.0, screen=True).push(x, 0)
    assert [(j.end, j.vf) for j in screened] == [(j.end, j.vf) for j in full]
    assert any(j.vf for j in full) and not all(j.vf for j in full)
    for a, b in zip(full, screened, strict=True):
        assert b.features.vf_band_share == a.features.vf_band_share
        if a.features.vf_band_share > CFG.min_vf_band_share:
            assert b.features == a.features  # past the screen, every measure is computed
        else:
            assert np.isnan(b.features.tcsc) and np.isnan(b.features.leakage)


def test_other_evidence_only_ever_doubts_and_says_why() -> None:
    vf = vf_features(band(flutter(8)), FS)
    resting = vf_features(band(sinus(8)), FS)
    assert judge(vf, CFG) == ("vf", vf.describe())
    verdict, why = judge(vf, CFG, other_lead=resting)
    assert verdict == "doubted" and "other lead rests on its baseline" in why
    flat = VfFeatures(1.0, 0.05, 1.0, 0.1, 0.1, 0.01)  # a lead too small to judge says nothing
    assert judge(vf, CFG, other_lead=flat)[0] == "vf"
    assert judge(vf, CFG, other_lead=vf)[0] == "vf"
    verdict, why = judge(vf, CFG, regular_pulse="pulses regular at 80/min, amplitude x1.00")
    assert verdict == "doubted" and "pulse continues" in why
    assert judge(resting, CFG, other_lead=vf, regular_pulse="x") == ("none", "")


def _feed(engine: AlarmEngine, verdicts: list[str], start_s: int = 10) -> list[tuple[str, str, str]]:
    out = []
    for k, v in enumerate(verdicts):
        t = (start_s + k) * NS
        o = engine.observe_vf("p", t, v, f"why {v}", t)  # type: ignore[arg-type]
        out += [(n.condition, n.state, n.priority) for n in o.notices]
    return out


def test_vf_alarms_high_after_three_windows_and_latches_one_odd_window_pages_nobody() -> None:
    e = AlarmEngine()
    assert _feed(e, ["vf", "vf", "none", "vf", "vf", "none"]) == []
    e = AlarmEngine()
    assert _feed(e, ["none", "vf", "vf"]) == []
    assert _feed(e, ["vf"], start_s=13) == [("vf", "raised", "high")]
    assert _feed(e, ["none"] * 8, start_s=14) == [("vf", "latched", "high")]  # stays until acknowledged
    assert e.status("p", "vf") == "latched"


def test_doubted_vf_is_a_low_advisory_and_leads_off_silence_both_but_a_poor_signal_does_not() -> None:
    e = AlarmEngine()
    assert _feed(e, ["doubted"] * 3) == [("vf_unconfirmed", "raised", "low")]
    e = AlarmEngine()
    e.technical("p", "lead_off", True, 5 * NS, 5 * NS)
    assert _feed(e, ["vf"] * 5) == []
    e = AlarmEngine()
    e.technical("p", "poor_signal", True, 5 * NS, 5 * NS)  # fibrillation itself makes the quality index poor
    assert ("vf", "raised", "high") in _feed(e, ["vf"] * 3)


def _rhythm(verdicts: str, step: int = 250) -> VfRhythm:
    """Windows ending every ``step`` samples from 1000; ``v`` a VF window, ``.`` not."""
    r = VfRhythm()
    for k, v in enumerate(verdicts):
        r.observe(1000 + k * step, v == "v")
    return r


def test_the_vf_rhythm_holds_from_the_third_vf_window_in_a_row_to_the_first_without() -> None:
    assert VF_RHYTHM_WINDOWS == 3  # the vf alarm's onset: judged every second, held 2 s more
    assert not _rhythm("vv").holds and not _rhythm("vv.vv.").holds  # two in a row never: one odd window is no rhythm
    r = _rhythm("..vvv")  # the third in a row ends at 1000 + 4 * 250
    assert r.holds
    assert not r.holds_at(1999) and r.holds_at(2000) and r.holds_at(10**9)  # the boundary is that window's end
    r = _rhythm("..vvvv.")  # the first window without VF (ending at 2500) ends it
    assert not r.holds and r.holds_at(2499) and not r.holds_at(2500)
    r = _rhythm("vvv.vvv")
    assert [r.holds_at(i) for i in (1499, 1500, 1749, 1750, 2499, 2500)] == [False, True, True, False, False, True]


def test_a_restart_forgets_the_vf_rhythm_and_nothing_before_a_window_is_judged() -> None:
    r = _rhythm("vvvv")
    assert r.holds
    r.reset()
    assert not r.holds and not r.holds_at(10**9)
    r.observe(5000, True)
    r.observe(5250, True)
    assert not r.holds  # windows before the restart do not count towards the three
    assert not VfRhythm().holds_at(10**9)
    with pytest.raises(ValueError, match="at least one window"):
        VfRhythm(0)


def test_the_vf_rhythm_answers_for_recent_beats_after_many_changes() -> None:
    r = _rhythm("vvv." * 20)  # 40 changes: only the recent ones are kept
    last_on = 1000 + (4 * 19 + 2) * 250
    assert r.holds_at(last_on) and not r.holds_at(last_on + 250) and not r.holds_at(last_on - 1)


DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "mitdb"


@pytest.mark.skipif(not (DATA / "207.hea").is_file(), reason="MIT-BIH (../shared/data/mitdb) is not here")
def test_mitbih_207_flutter_raises_vf_through_the_gateway_processor_within_ten_seconds() -> None:
    """Both leads of record 207 from 1500 s (sinus-like, bundle branch block) into the 98-s flutter at 1540.8 s,
    through DeviceProcessor and AlarmBridge in 0.3-s frames: ``vf`` high within 10 s of the annotated onset,
    nothing before it."""
    import warnings

    from cardiogate.app.evaluation.alarms import BridgeSink
    from cardiogate.edge.alarm_bridge import AlarmBridge
    from cardiogate.edge.ecg_assembler import EcgFrame
    from cardiogate.edge.processing import DeviceProcessor
    from cardiogate.edge.settings import AlarmSettings, AnalysisSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import wfdb  # type: ignore[import-untyped]

        rec = wfdb.rdrecord(str(DATA / "207"), sampfrom=1500 * 360, sampto=1560 * 360)
    notices: list[dict[str, object]] = []
    bridge = AlarmBridge(AlarmSettings(), "t", lambda _p, leaf, payload, *_: notices.append(payload)
                         if leaf == "alarms" else None, lambda _r: None, lambda _p: True)
    proc = DeviceProcessor("C0:00:00:00:20:07", "p", BridgeSink(bridge), 250,
                           analysis=AnalysisSettings(rhythm_model=None, mains_hz=60.0))
    uv = np.nan_to_num(rec.p_signal) * 1000.0
    t0 = 1_800_000_000 * NS
    step = 108
    for seq, s in enumerate(range(0, uv.shape[0], step)):
        first = t0 + round(s * NS / 360)
        proc.on_aux_frame("ecg", EcgFrame(first, 360.0, 1.0, uv[s:s + step, 1].astype(np.int32), seq, first))
        proc.on_ecg_frame(EcgFrame(first, 360.0, 1.0, uv[s:s + step, 0].astype(np.int32), seq, first))
    raised = [n for n in notices if n["condition"] == "vf" and n["state"] == "raised"]
    assert raised, [(n["condition"], n["state"]) for n in notices]
    onset_ns = t0 + round(40.8 * NS)
    at = int(raised[0]["trigger_sample_device_time_ns"])  # type: ignore[call-overload]
    assert onset_ns < at <= onset_ns + 10 * NS
    assert raised[0]["priority"] == "high" and "oscillation" in str(raised[0]["reason"])


@pytest.mark.parametrize("snr_db", [12.0, 18.0, 25.0])
def test_fibrillation_in_noise_is_never_silent_and_from_0_2_mv_raises_vf_within_ten_seconds(snr_db: float) -> None:
    """Simulated VF (no beats, a wandering 3-9 Hz oscillation) from fine to coarse, on noisy to clean ECG (SNR as
    the NSTDB defines it), through the gateway's processor and alarm engine. From 0.2 mV peak it is ``vf`` within
    10 s of onset, noise or not (before the leakage took its period from the spectrum, 0.2-0.3 mV at 12 dB raised
    nothing for 40 s). Finer VF is an asystole (no beats) within 10 s, except where it is smaller than the noise
    (below 0.15 mV at 12 dB): there nothing in the trace tells it from noise, and the poor-signal technical alarm
    says the trace cannot be judged, within 20 s. Nothing fires before the VF begins."""
    from cardiogate.app.evaluation.alarms import T0_NS, simulate
    from cardiogate.sim.patient import PatientScenario

    onset = 20.0
    for amplitude in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0):
        for seed in (1, 2, 3):
            scenario = PatientScenario.model_validate({"hr_bpm": 80, "snr_db": snr_db, "events": [
                {"kind": "vf", "at_s": onset, "duration_s": 20, "amplitude_mv": amplitude}]})
            run, _ = simulate("p", scenario, seed, 40)
            first: dict[str, float] = {}
            for n in run.notices:
                if n["state"] == "raised" and (n["priority"] == "high" or n["condition"] == "poor_signal"):
                    first.setdefault(n["condition"], (int(n["trigger_sample_device_time_ns"]) - T0_NS) / NS - onset)
            case = f"{amplitude} mV, {snr_db} dB, seed {seed}: {first}"
            ecg = [first[c] for c in ("vf", "asystole", "vt") if c in first]
            assert all(t > 0 for t in ecg), case
            if amplitude >= 0.2:
                assert first.get("vf", math.inf) <= 10.0, case
            elif amplitude >= 0.15 or snr_db > 12.0:
                assert ecg and min(ecg) <= 10.0, case
            else:
                assert (ecg and min(ecg) <= 10.0) or first.get("poor_signal", math.inf) <= 20.0, case
