"""Rational-ratio polyphase resampling (a model's input rate from a device's rate), in numpy.

The same filter and alignment as scipy.signal.resample_poly with its defaults (a Kaiser-windowed
sinc low-pass, beta 5, 10 zero crossings of the slower rate either side, zero padding; a unit test
compares them to float precision), because the gateway does not load scipy.signal (see
:mod:`cardiogate.edge.dsp.iir_design`). Each output sample is one short dot product: only the taps that
meet real (not zero-stuffed) input samples are computed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
KAISER_BETA = 5.0
HALF_ZERO_CROSSINGS = 10


@lru_cache(maxsize=32)
def lowpass_fir(up: int, down: int) -> FloatArray:
    """The anti-aliasing/anti-imaging filter for ``up/down``: cut-off at the slower rate's Nyquist, gain ``up``.

    Cached and read-only: the Kaiser window's Bessel function made designing it cost more than filtering a 30-s
    window with it, and the gateway resamples every device's ECG for the rhythm model every few seconds."""
    rate = max(up, down)
    half = HALF_ZERO_CROSSINGS * rate
    m = np.arange(2 * half + 1) - half
    h = (1.0 / rate) * np.sinc(m / rate) * np.kaiser(2 * half + 1, KAISER_BETA)
    out: FloatArray = h / h.sum() * up
    out.flags.writeable = False
    return out


def resample_poly(x: NDArray[np.floating], up: int, down: int) -> FloatArray:
    """Resample ``x`` by ``up/down``: ``ceil(len(x) * up / down)`` samples, aligned on the first one."""
    if up < 1 or down < 1:
        raise ValueError("up and down must be positive integers")
    sig = np.asarray(x, dtype=np.float64).ravel()
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down:
        return sig.copy()
    n_out = -(-sig.size * up // down)
    h = lowpass_fir(up, down)
    half = (h.size - 1) // 2
    if up == 1:  # plain decimation (250 -> 125 Hz): one convolution, every ``down``-th sample of it
        full = np.convolve(sig, h)
        out1: FloatArray = full[half:half + n_out * down:down]
        if out1.size < n_out:  # the last outputs reach past the convolution's end: zeros there
            out1 = np.concatenate((out1, np.zeros(n_out - out1.size)))
        return out1
    # Output m sits at position m * down + half of the zero-stuffed, filtered signal; the taps that meet real
    # input samples there are h[p], h[p + up], ... with p = (m * down + half) % up, on inputs j0, j0 - 1, ...
    pos = np.arange(n_out, dtype=np.int64) * down + half
    phase, j0 = pos % up, pos // up
    taps = -(-h.size // up)
    bank = np.zeros((up, taps))  # bank[p, i] = h[p + i * up]
    for p in range(up):
        row = h[p::up]
        bank[p, :row.size] = row
    padded = np.concatenate((np.zeros(taps - 1), sig, np.zeros(taps)))
    windows = sliding_window_view(padded, taps)[j0]  # padded[j0 .. j0 + taps - 1] = x[j0 - taps + 1 .. j0]
    out: FloatArray = np.einsum("ij,ij->i", windows[:, ::-1], bank[phase])
    return out
