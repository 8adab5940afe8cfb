"""Streaming IIR filters (second-order sections) whose state is carried across chunks.

BLE notifications arrive in small, irregular chunks; carrying the ``zi`` state means a
record filtered chunk by chunk is identical to the same record filtered in one call, so
every downstream decision is independent of how the radio happened to packetise it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.iir_design import ba_to_sos, butter_sos, notch_ba, sos_zi
from cardiogate.edge.dsp.sosfilt import sosfilt, sosfilt_inplace

FloatArray = NDArray[np.float64]


def bandpass_sos(sample_rate_hz: float, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 2) -> FloatArray:
    """Butterworth band-pass as SOS; the upper edge is clamped below Nyquist for low rates (e.g. 130 Hz)."""
    nyq = sample_rate_hz / 2.0
    high = min(high_hz, 0.9 * nyq)
    if not 0.0 < low_hz < high:
        raise ValueError(f"band {low_hz}-{high_hz} Hz does not fit a {sample_rate_hz} Hz sample rate")
    return butter_sos(order, (low_hz, high), "bandpass", sample_rate_hz)


def lowpass_sos(sample_rate_hz: float, cutoff_hz: float, order: int = 2) -> FloatArray:
    """Butterworth low-pass as SOS (cutoff clamped below Nyquist)."""
    return butter_sos(order, (min(cutoff_hz, 0.45 * sample_rate_hz),), "lowpass", sample_rate_hz)


def notch_sos(sample_rate_hz: float, mains_hz: float = 50.0, quality: float = 30.0) -> FloatArray | None:
    """Mains notch as one SOS section, or None when the mains frequency is not below Nyquist."""
    if mains_hz >= 0.95 * sample_rate_hz / 2.0:
        return None
    return ba_to_sos(*notch_ba(mains_hz, quality, sample_rate_hz))


def ecg_sos(sample_rate_hz: float, mains_hz: float | None = 50.0, low_hz: float = 0.5,
            high_hz: float = 40.0) -> FloatArray:
    """The display/analysis chain: band-pass, then the mains notch when it fits, as one SOS cascade."""
    sos = bandpass_sos(sample_rate_hz, low_hz, high_hz)
    notch = notch_sos(sample_rate_hz, mains_hz) if mains_hz else None
    return sos if notch is None else np.vstack([sos, notch])


def initial_state(sos: FloatArray, first_sample: float) -> FloatArray:
    """State as if ``first_sample`` had been the input forever: no start-up transient from a DC offset."""
    zi: FloatArray = sos_zi(sos) * first_sample
    return zi


def filter_chunk(sos: FloatArray, chunk: FloatArray, zi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pure step: filter one chunk from state ``zi``; return the output and the state for the next chunk."""
    return sosfilt(sos, chunk, zi)


def hold_finite(chunk: FloatArray, last: float) -> FloatArray:
    """Replace NaN/inf samples by the previous finite one (``last`` before the chunk).

    One corrupt sample must not poison an IIR state forever; holding the value adds no step.
    """
    bad = ~np.isfinite(chunk)
    if not bad.any():
        return chunk
    idx = np.where(bad, 0, np.arange(1, chunk.size + 1))
    np.maximum.accumulate(idx, out=idx)
    filled: FloatArray = np.concatenate([[last], chunk])[idx]
    return filled


class StreamingSos:
    """A SOS filter that remembers its state between chunks (reset on gaps).

    Same arithmetic as :func:`filter_chunk`, but the state lives in one preallocated array
    updated in place, which matters when a gateway calls this for every small BLE chunk.
    """

    def __init__(self, sos: FloatArray) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self._zi: FloatArray | None = None

    def reset(self) -> None:
        """Forget the state; the next chunk starts from its own first sample's steady state."""
        self._zi = None

    @property
    def state(self) -> FloatArray | None:
        """A copy of the current ``zi`` (sections x 2), None before the first sample."""
        return None if self._zi is None else self._zi.reshape(-1, 2).copy()

    def process(self, chunk: NDArray[np.floating] | NDArray[np.integer]) -> FloatArray:
        y = np.array(chunk, dtype=np.float64, order="C", ndmin=2)  # a copy: filtered in place
        if y.size == 0:
            return y.ravel()
        if y.shape[0] != 1:
            y = y.reshape(1, -1)
        if self._zi is None:
            self._zi = initial_state(self.sos, float(y[0, 0])).reshape(1, -1, 2)
        sosfilt_inplace(self.sos, y, self._zi)
        out: FloatArray = y[0]
        return out

    def process_inplace(self, y: FloatArray) -> None:
        """Filter a ``(1, n)`` float64 row in place (contiguous along the samples, e.g. a row of a buffer).

        Same samples as :meth:`process`, without allocating: for a hot loop that owns its buffers.
        """
        if y.shape[1] == 0:
            return
        if self._zi is None:
            self._zi = initial_state(self.sos, float(y[0, 0])).reshape(1, -1, 2)
        sosfilt_inplace(self.sos, y, self._zi)
