"""``eval alarms-bedside``: synthetic CinC 2015-layout records through the gateway, and a few real ones if present.

The synthetic records need no data: a true VT (wide beats at 170/min in both leads, the pulse gone) must
alarm; a false one (a burst of artefact in lead II only, lead V clean, the pulse regular) must not, and
must leave the "VT unconfirmed" advisory with its reason instead of nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cardiogate.app.cli import main as cli_main
from cardiogate.app.evaluation.bedside import Options, run

wfdb = pytest.importorskip("wfdb")
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # wfdb's own pandas deprecation

FS = 250
SECONDS = 300.0
REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "cinc2015-vt"
METRICS = {"tp", "tn", "fp", "fn", "tpr", "tnr", "score"}


def _wave(t: np.ndarray, centres: list[float], width_s: float, amp: float) -> np.ndarray:
    out = np.zeros_like(t)
    for c in centres:
        lo, hi = np.searchsorted(t, [c - 5 * width_s, c + 5 * width_s])
        out[lo:hi] += amp * np.exp(-0.5 * ((t[lo:hi] - c) / width_s) ** 2)
    return out


def _ecg(t: np.ndarray, sinus: list[float], vt: list[float], gain: float, rng: np.random.Generator) -> np.ndarray:
    """mV: narrow QRS + T wave for sinus beats; wide, opposite, larger complexes for ventricular ones."""
    x = _wave(t, sinus, 0.012, 1.0 * gain) + _wave(t, [b + 0.28 for b in sinus], 0.05, 0.25 * gain)
    x += _wave(t, vt, 0.045, -1.6 * gain) + _wave(t, [b + 0.2 for b in vt], 0.06, 0.5 * gain)
    return x + rng.normal(0.0, 0.015, t.size)


def _write(folder: Path, name: str, true_vt: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * FS)) / FS
    onset = 288.0
    sinus = list(np.arange(0.4, onset if true_vt else SECONDS, 0.8))  # 75/min
    vt = list(np.arange(onset, SECONDS, 60.0 / 170.0)) if true_vt else []
    lead_ii, lead_v = _ecg(t, sinus, vt, 1.0, rng), _ecg(t, sinus, vt, -0.7, rng)
    if not true_vt:  # artefact in lead II only: 8 s of large swings, a peak and a trough per cycle (132/min),
        # slow enough that the run at the limit beat outlasts the 2 s a regular pulse may pause
        burst = (t > 287.0) & (t < 295.0)
        lead_ii[burst] += 2.5 * np.sin(2 * np.pi * 1.1 * t[burst]) ** 9
    pleth = 1.0 + _wave(t, [b + 0.25 for b in sinus], 0.1, 1.0) + rng.normal(0.0, 0.005, t.size)
    signal = np.column_stack([lead_ii, lead_v, pleth])
    wfdb.wrsamp(name, fs=FS, units=["mV", "mV", "NU"], sig_name=["II", "V", "PLETH"], p_signal=signal,
                fmt=["16", "16", "16"], write_dir=str(folder))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cinc2015")
    _write(folder, "syn_true", True, 1)
    _write(folder, "syn_false", False, 2)
    (folder / "ALARMS.csv").write_text("record,alarm,true_alarm\nsyn_true,Ventricular_Tachycardia,1\n"
                                       "syn_false,Ventricular_Tachycardia,0\n", encoding="utf-8")
    return folder


def test_true_vt_alarms_and_artefact_becomes_an_advisory(synthetic: Path) -> None:
    # the gateway's shipped VT limit (6 beats): the artefact lasts long enough for the pulse to refute it
    result = run(synthetic, Options(vt_beats=6), resamples=50)
    rows = {r["record"]: r for r in result["records"]}
    assert rows["syn_true"]["decision"] is True, rows["syn_true"]
    assert "vt raised" in rows["syn_true"]["reason"]
    assert rows["syn_false"]["decision"] is False, rows["syn_false"]
    assert "VT unconfirmed" in rows["syn_false"]["reason"]
    vt = result["by_type"]["Ventricular_Tachycardia"]
    assert (vt["tp"], vt["tn"], vt["fp"], vt["fn"]) == (1, 1, 0, 0)
    assert vt["score"] == 1.0 and result["overall"]["score"] == 1.0
    assert vt["ci95_exact"]["tpr"][0] < 1.0 == vt["ci95_exact"]["tpr"][1]  # one record proves little


def test_without_the_check_the_artefact_alarms(synthetic: Path) -> None:
    result = run(synthetic, Options(vt_beats=6, vt_rejection=False), resamples=0)
    rows = {r["record"]: r for r in result["records"]}
    assert rows["syn_false"]["decision"] is True  # the check is what rejects it
    assert "VT unconfirmed" not in rows["syn_false"]["reason"]
    assert result["settings"]["vt_rejection"] is False


@pytest.mark.skipif(not (DATA / "ALARMS.csv").is_file(), reason=f"CinC 2015 VT alarms not found at {DATA}")
def test_the_command_on_a_few_real_records_writes_the_documented_json(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bedside.json"
    code = cli_main(["--log-level", "ERROR", "eval", "alarms-bedside", "--data", str(DATA), "--records",
                     "v102s,v368s,v146s", "--bootstrap", "100", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert {r["record"] for r in result["records"]} == {"v102s", "v368s", "v146s"}
    for r in result["records"]:
        assert isinstance(r["decision"], bool) and r["reason"] and r["alarm"] == "Ventricular_Tachycardia"
    assert set(result["by_type"]) == {"Ventricular_Tachycardia"}
    for block in (result["by_type"]["Ventricular_Tachycardia"], result["overall"]):
        assert set(block) >= METRICS
        assert block["tp"] + block["tn"] + block["fp"] + block["fn"] == 3
        lo, hi = block["ci95"]["score"]
        assert 0.0 <= lo <= block["score"] <= hi <= 1.0
        if block["tpr"] is not None:
            lo, hi = block["ci95_exact"]["tpr"]
            assert 0.0 <= lo <= block["tpr"] <= hi <= 1.0
    captured = capsys.readouterr()
    assert "| Ventricular_Tachycardia | 3 |" in captured.out
    assert "[3/3]" in captured.err


def _notice(condition: str, value: float, t_ns: int, state: str = "raised") -> dict[str, object]:
    return {"condition": condition, "state": state, "value": value, "trigger_sample_device_time_ns": t_ns,
            "reason": f"{condition} {value:g}"}


def test_rate_alarms_need_the_challenge_limits_inside_the_window() -> None:
    from cardiogate.app.evaluation.bedside import decide

    w = 1_000
    assert decide("r", "Tachycardia", ("hr_high",), [_notice("hr_high", 150.0, w + 1)], w, False)["decision"]
    assert not decide("r", "Tachycardia", ("hr_high",), [_notice("hr_high", 130.0, w + 1)], w, False)["decision"]
    assert decide("r", "Bradycardia", ("hr_low",), [_notice("hr_low", 35.0, w + 1)], w, False)["decision"]
    assert not decide("r", "Bradycardia", ("hr_low",), [_notice("hr_low", 45.0, w + 1)], w, True)["decision"]
    assert not decide("r", "Asystole", ("asystole",), [_notice("asystole", 3.5, w - 1)], w, False)["decision"]
    late = decide("r", "Asystole", ("asystole",), [_notice("asystole", 3.5, w - 1)], w, True)
    assert late["decision"] and "showing" in late["reason"]  # raised before the window, still going on


def test_a_ventricular_alarm_is_true_on_a_vt_run_or_the_vf_detector_and_doubts_say_why() -> None:
    from cardiogate.app.evaluation.bedside import TYPES, decide

    w = 1_000
    ventricular = TYPES["Ventricular_Flutter_Fib"]
    assert ventricular == TYPES["Ventricular_Tachycardia"] == ("vt", "vf")
    by_vf = decide("r", "Ventricular_Flutter_Fib", ventricular, [_notice("vf", 1.0, w + 1)], w, False)
    assert by_vf["decision"] and by_vf["reason"].startswith("vf raised")
    assert decide("r", "Ventricular_Tachycardia", ventricular, [_notice("vt", 5.0, w + 1)], w, False)["decision"]
    doubted = decide("r", "Ventricular_Flutter_Fib", ventricular,
                     [_notice("vf_unconfirmed", 1.0, w + 1), _notice("vf", 1.0, w - 1)], w, False)
    assert not doubted["decision"] and doubted["reason"].startswith("vf_unconfirmed")
    assert not decide("r", "Ventricular_Tachycardia", ventricular, [], w, False)["decision"]
