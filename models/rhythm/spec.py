"""The preprocessing spec, as data: it travels in every artifact's manifest.

The gateway reimplements nothing from here; it reads these numbers from the manifest
and applies them with its own numpy/scipy code (``cardiogate.edge.inference.preprocess``), which
a unit test proves identical to ``cardiogate.models.rhythm.preprocess``.
"""

from __future__ import annotations

from typing import Any

SAMPLE_RATE_HZ = 125
WINDOW_S = 30


def default_spec() -> dict[str, Any]:
    """The input spec the shipped v1 models were trained with."""
    window = SAMPLE_RATE_HZ * WINDOW_S
    return {
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "resample": "polyphase",
        "bandpass": {"low_hz": 0.5, "high_hz": 40.0, "order": 2, "zero_phase": True},
        "normalise": {"center": "median", "scale": "abs_percentile", "percentile": 99.0, "clip": 8.0},
        "window_samples": window,
        "hop_samples": window // 2,
        "min_samples": SAMPLE_RATE_HZ * 5,
        "pad": "zero_end",
        "layout": "NCW",
    }
