"""Beat morphology: a ventricular beat has a wide QRS.

A pure, deliberately simple classifier: the width of the R wave at half its height above
the local baseline. Supraventricular beats conduct through the His-Purkinje system and
give a narrow QRS (R wave a few tens of ms wide at half height); ventricular beats spread
cell to cell and give a wide, slurred one (typically over 120 ms of QRS, R wave well over
50 ms at half height). It labels beats for the VT rule; it is not a full beat classifier
(aberrant conduction and bundle-branch blocks also widen the QRS).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

try:  # the compiled width (_template_kernel.c); optional at build time
    from cardiogate.edge.dsp import _template_kernel
except ImportError:  # pragma: no cover - depends on the build
    _template_kernel = None  # type: ignore[assignment]

WIDE_R_S = 0.055  # half-height width above which a beat is called ventricular
BASELINE_S = 0.15  # baseline = median of the samples within this distance of the peak


def r_width_s(raw: npt.NDArray[np.float64], peak: int, fs: float) -> float | None:
    """Width (s) of the wave at ``peak`` at half its height above the local baseline; None near the edges.

    The VT check measures every beat of every patient, so this runs in the compiled kernel where it is
    built (the same operations, so the same width to the bit); :func:`r_width_s_numpy` is the reference.
    """
    if _template_kernel is not None:
        samples: int | None = _template_kernel.half_height_width(
            np.ascontiguousarray(raw, dtype=np.float64), int(peak), int(BASELINE_S * fs))
        return None if samples is None else samples / fs
    return r_width_s_numpy(raw, peak, fs)


def r_width_s_numpy(raw: npt.NDArray[np.float64], peak: int, fs: float) -> float | None:
    """:func:`r_width_s` in numpy."""
    half_window = int(BASELINE_S * fs)
    lo, hi = peak - half_window, peak + half_window + 1
    if lo < 0 or hi > raw.size:
        return None
    segment = raw[lo:hi]
    baseline = float(np.median(segment))
    height = float(raw[peak]) - baseline
    if height == 0.0:
        return None
    above = (segment - baseline) * np.sign(height) >= abs(height) / 2.0
    centre = peak - lo
    left = centre
    while left > 0 and above[left - 1]:
        left -= 1
    right = centre
    while right < above.size - 1 and above[right + 1]:
        right += 1
    return (right - left + 1) / fs


def label_beats(raw: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64], fs: float) -> list[str]:
    """'V' for wide beats, 'N' otherwise (also when the width cannot be measured)."""
    labels = []
    for p in peaks:
        width = r_width_s(raw, int(p), fs)
        labels.append("V" if width is not None and width > WIDE_R_S else "N")
    return labels
