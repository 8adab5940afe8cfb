"""The alarm path on simulated patients: every critical event alarms within its onset delay + 1 s."""

from __future__ import annotations

import pytest

from cardiogate.app.evaluation.alarms import critical_scenarios, false_alarms, noisy_normal_scenario, score, simulate
from cardiogate.sim.patient import PatientScenario


@pytest.fixture(scope="module")
def critical() -> dict[str, object]:
    runs = [simulate(name, PatientScenario.model_validate(sc), 100 + i, 120.0)
            for i, (name, sc) in enumerate(critical_scenarios())]
    return score(runs)


def test_every_critical_event_kind_is_expected(critical: dict[str, object]) -> None:
    events = critical["events"]
    assert isinstance(events, list)
    assert {e["condition"] for e in events} == {"vt", "vf", "asystole", "hr_high", "hr_low", "spo2_low"}


def test_each_alarms_within_its_onset_delay_plus_one_second(critical: dict[str, object]) -> None:
    events = critical["events"]
    assert isinstance(events, list)
    late = [e for e in events if not e["ok"]]
    assert not late, late
    assert all(e["delay_s"] >= -0.5 for e in events), "an alarm may not fire before the signal met the condition"


def test_a_noisy_normal_patient_raises_no_physiological_alarm() -> None:
    run, _ = simulate("pt-noisy", PatientScenario.model_validate(noisy_normal_scenario(1)), 501, 300.0)
    assert false_alarms([run])["physiological_alarms"] == 0


def test_the_false_alarm_bound_is_the_exact_poisson_upper_limit() -> None:
    from cardiogate.app.evaluation.alarms import poisson_upper_rate

    # no event in 30 patient-hours bounds the rate just below 0.1 per hour (-ln 0.05 / 30); one event needs ~47.4 h
    assert poisson_upper_rate(0, 30.0) == pytest.approx(0.09986, abs=1e-4)
    assert poisson_upper_rate(1, 47.0) > 0.1 > poisson_upper_rate(1, 48.0)
    assert poisson_upper_rate(3, 30.0) == pytest.approx(7.754 / 30.0, rel=1e-3)
