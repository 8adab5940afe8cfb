"""Simulator settings and scenario files: which watches exist and what their hearts do.

A scenario is TOML, for example::

    listen = "127.0.0.1:18900"        # virtual radio port the gateway attaches to
    ground_truth = "sim-truth.jsonl"  # everything actually sent, for scoring

    [[watches]]
    name = "watch-1"
    address = "C0:00:00:00:00:01"
    seed = 1
    heart_rate = [[0, 72], [15, 72], [25, 165]]   # [seconds since start, bpm] knots
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cardiogate.core.settings import LayeredSettings, StrictModel, load_settings
from cardiogate.edge.codecs.address import BleAddress
from cardiogate.sim.patient import PatientScenario

Profile = Literal["ecg_watch", "hr_watch", "pulse_oximeter", "bp_cuff", "polar_h10", "polar_ecg_ppg", "polar_verity"]
POLAR_PROFILES = ("polar_h10", "polar_ecg_ppg", "polar_verity")


class WatchFaults(StrictModel):
    """What goes wrong with a watch, on cue or at random (seeded: a rerun injects the same faults)."""

    disconnect_every_s: float | None = Field(default=None, gt=0,
                                             description="mean time between random link drops (exponential)")
    offline_s: tuple[float, float] = Field(default=(0.0, 2.0), description="after a drop, stay away this long")
    out_of_range: list[tuple[float, float]] = Field(default_factory=list,
                                                    description="[start_s, duration_s] walks out of range")
    clock_drift_ppm: float = Field(default=0.0, ge=-1000, le=1000)
    clock_jumps: list[tuple[float, float]] = Field(default_factory=list,
                                                   description="[at_s, jump_s]: the watch's clock is reset")
    ecg_start_delay_s: float = Field(default=0.0, ge=0, le=120, description="late ECG start, as on Polar straps")
    battery_start_percent: float = Field(default=95.0, ge=0, le=100)
    battery_drain_percent_per_hour: float = Field(default=0.0, ge=0, le=10000)

    @field_validator("offline_s")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1]:
            raise ValueError("offline_s must be [min, max] with 0 <= min <= max")
        return v


class WatchSpec(StrictModel):
    """One simulated wearable."""

    name: str = Field(min_length=1, max_length=29)
    address: BleAddress
    seed: int = 0
    sample_rate_hz: int = Field(default=250, ge=50, le=1000)
    heart_rate: list[tuple[float, float]] = Field(default_factory=lambda: [(0.0, 72.0)])
    malformed_hr_at_s: list[float] = Field(default_factory=list,
                                           description="send a malformed Heart Rate Measurement at these times")
    patient: PatientScenario | None = Field(default=None, description="physiology and events; default: heart_rate")
    record: Path | None = Field(default=None, description="replay this WFDB record's ECG instead (e.g. mitdb/101)")
    record_channel: int = Field(default=0, ge=0)
    record_loop: bool = False
    profile: Profile = "ecg_watch"
    spo2_interval_s: float = Field(default=1.0, gt=0, le=3600)
    bp_interval_s: float = Field(default=300.0, gt=0, le=86400)
    faults: WatchFaults = WatchFaults()

    @model_validator(mode="before")
    @classmethod
    def _polar_rate(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("profile") in POLAR_PROFILES:
            if data.get("sample_rate_hz", 130) != 130:
                raise ValueError(f"a {data['profile']} device samples ECG at 130 Hz")
            data = {**data, "sample_rate_hz": 130}
        return data

    @field_validator("heart_rate")
    @classmethod
    def _knots(cls, knots: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not knots or [t for t, _ in knots] != sorted(t for t, _ in knots):
            raise ValueError("heart_rate knots must be non-empty and sorted by time")
        if any(not 20 <= hr <= 300 for _, hr in knots):
            raise ValueError("heart_rate knots must lie within 20..300 bpm")
        return knots


class SimSettings(LayeredSettings, env_prefix="CARDIOGATE_SIM__"):
    """The simulator process."""

    listen: str = "127.0.0.1:18900"
    ground_truth: Path | None = None
    duration_s: float = Field(default=0.0, ge=0.0, description="0 runs until stopped")
    watches: list[WatchSpec] = Field(default_factory=list)


def demo_watches(count: int = 3, tachycardic: int = 1, tachy_at_s: float = 12.0) -> list[WatchSpec]:
    """The demo's patients: ``tachycardic`` of them ramp from ~75 to 165 bpm at ``tachy_at_s``."""
    watches = []
    for i in range(count):
        base = 68.0 + 6.0 * i
        knots = [(0.0, base)]
        if i < tachycardic:
            knots += [(tachy_at_s, base), (tachy_at_s + 6.0, 165.0)]
        watches.append(WatchSpec(name=f"cg-watch-{i + 1}", address=f"C0:00:00:00:00:{i + 1:02X}",
                                 seed=i + 1, heart_rate=knots))
    return watches


def load_sim_settings(path: Path | None, **overrides: object) -> SimSettings:
    """Settings from a scenario file and the environment (ConfigError on bad input)."""
    return load_settings(SimSettings, path, **overrides)
