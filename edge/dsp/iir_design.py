"""Digital filter design in numpy alone: Butterworth (SOS), a mains notch, steady-state filter states.

Why not scipy.signal: importing it costs a gateway ~80 MB of resident memory (it loads most of
scipy), for a handful of designs computed once per device. These are the textbook constructions
(analog prototype -> frequency transform -> bilinear transform with pre-warping -> second-order
sections), written to give the same filters as scipy.signal's ``butter``/``iirnotch``/
``sosfilt_zi`` (a unit test compares them); the per-sample filtering itself stays in compiled code
(:mod:`cardiogate.edge.dsp.sosfilt`).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
Band = Literal["lowpass", "bandpass"]


def _prototype(order: int) -> ComplexArray:
    """Poles of the analog Butterworth low-pass prototype (cut-off 1 rad/s); it has no zeros and gain 1."""
    m = np.arange(-order + 1, order, 2)
    poles: ComplexArray = -np.exp(1j * math.pi * m / (2 * order))
    return poles


def _bilinear(zeros: ComplexArray, poles: ComplexArray, gain: float, fs2: float) -> tuple[ComplexArray,
                                                                                             ComplexArray, float]:
    """Analog -> digital by the bilinear transform; zeros at infinity land on z = -1."""
    degree = poles.size - zeros.size
    z = (fs2 + zeros) / (fs2 - zeros)
    p = (fs2 + poles) / (fs2 - poles)
    z = np.append(z, -np.ones(degree))
    k = gain * float(np.real(np.prod(fs2 - zeros) / np.prod(fs2 - poles)))
    return z, p, k


def butter_zpk(order: int, edges_hz: tuple[float, ...], btype: Band, fs: float) -> tuple[ComplexArray,
                                                                                         ComplexArray, float]:
    """Digital Butterworth zeros, poles and gain for a low-pass (one edge) or band-pass (two edges)."""
    if order < 1:
        raise ValueError("filter order must be at least 1")
    nyquist = fs / 2.0
    if not all(0.0 < e < nyquist for e in edges_hz):
        raise ValueError(f"band edges {edges_hz} Hz must lie between 0 and {nyquist} Hz")
    # pre-warp onto the analog axis of a bilinear transform run at "fs = 2" (normalised frequencies)
    warped = [4.0 * math.tan(math.pi * (e / nyquist) / 2.0) for e in edges_hz]
    poles = _prototype(order)
    zeros = np.empty(0, dtype=np.complex128)
    gain = 1.0
    if btype == "lowpass":
        if len(warped) != 1:
            raise ValueError("a low-pass has one edge")
        wo = warped[0]
        zeros, poles, gain = zeros * wo, poles * wo, gain * wo ** (poles.size - zeros.size)
    else:
        if len(warped) != 2 or not warped[0] < warped[1]:
            raise ValueError("a band-pass has two increasing edges")
        bw = warped[1] - warped[0]
        wo = math.sqrt(warped[0] * warped[1])
        degree = poles.size - zeros.size
        z_lp, p_lp = zeros * bw / 2.0, poles * bw / 2.0
        root_p = np.sqrt(p_lp**2 - wo**2)
        poles = np.concatenate((p_lp + root_p, p_lp - root_p))
        root_z = np.sqrt(z_lp**2 - wo**2)
        zeros = np.append(np.concatenate((z_lp + root_z, z_lp - root_z)), np.zeros(degree))
        gain = gain * bw**degree
    return _bilinear(zeros, poles, gain, 4.0)


def _nearest(values: ComplexArray, target: complex, real_only: bool = False) -> int:
    candidates = np.flatnonzero(np.abs(values.imag) == 0) if real_only else np.arange(values.size)
    return int(candidates[np.argmin(np.abs(values[candidates] - target))])


def zpk_to_sos(zeros: ComplexArray, poles: ComplexArray, gain: float) -> FloatArray:
    """Second-order sections, poles nearest the unit circle last, each pole pair with its nearest zeros.

    Ordering and pairing follow the usual "nearest" rule so that the sections are well scaled; the gain
    goes into the first section. Zeros and poles must come in conjugate pairs (real filters).
    """
    n_sections = (max(poles.size, zeros.size) + 1) // 2
    z = np.concatenate((zeros, np.zeros(2 * n_sections - zeros.size)))  # pad with zeros at the origin
    p = np.concatenate((poles, np.zeros(2 * n_sections - poles.size)))
    # real roots, and one root of each conjugate pair (the other is implied)
    zr, zc = z[z.imag == 0].astype(np.complex128), z[z.imag > 0].astype(np.complex128)
    pool_p = np.concatenate((p[p.imag == 0], p[p.imag > 0])).astype(np.complex128)
    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        i = int(np.argmin(np.abs(1.0 - np.abs(pool_p))))  # the pole nearest the unit circle, placed last
        p1 = complex(pool_p[i])
        pool_p = np.delete(pool_p, i)
        if p1.imag == 0:
            if pool_p.size and np.any(pool_p.imag == 0):
                j = _nearest(pool_p, p1, real_only=True)
                p2 = complex(pool_p[j])
                pool_p = np.delete(pool_p, j)
            else:
                p2 = 0.0j
            ps = [p1, p2]
        else:
            ps = [p1, p1.conjugate()]
        both = np.concatenate((zr, zc))
        k = _nearest(both, p1)
        z1 = complex(both[k])
        if z1.imag != 0:
            zc = np.delete(zc, k - zr.size)
            zs = [z1, z1.conjugate()]
        else:
            zr = np.delete(zr, k)
            if zr.size:
                j = _nearest(zr, p1, real_only=True)
                zs = [z1, complex(zr[j])]
                zr = np.delete(zr, j)
            else:
                zs = [z1, 0.0j]
        sos[si, :3] = np.real(np.poly(zs))
        sos[si, 3:] = np.real(np.poly(ps))
    sos[0, :3] *= gain
    return sos


def butter_sos(order: int, edges_hz: tuple[float, ...], btype: Band, fs: float) -> FloatArray:
    """A digital Butterworth filter as second-order sections (a fresh copy: callers may keep or change it).

    Designs are cached: the rhythm model's preprocessing asks for the same band-pass every few seconds per
    device, and designing it took longer than running it over a 30-s window.
    """
    return _butter_sos(int(order), tuple(float(e) for e in edges_hz), btype, float(fs)).copy()


@functools.lru_cache(maxsize=64)
def _butter_sos(order: int, edges_hz: tuple[float, ...], btype: Band, fs: float) -> FloatArray:
    return zpk_to_sos(*butter_zpk(order, edges_hz, btype, fs))


def notch_ba(mains_hz: float, quality: float, fs: float) -> tuple[FloatArray, FloatArray]:
    """Second-order IIR notch at ``mains_hz``, -3 dB bandwidth ``mains_hz / quality``."""
    w0 = 2.0 * mains_hz / fs
    if not 0.0 < w0 < 1.0:
        raise ValueError(f"a {mains_hz} Hz notch needs a sample rate above {2 * mains_hz} Hz")
    bw = w0 / quality * math.pi
    w0 *= math.pi
    gb = 1.0 / math.sqrt(2.0)
    beta = (math.sqrt(1.0 - gb**2) / gb) * math.tan(bw / 2.0)
    g = 1.0 / (1.0 + beta)
    b = g * np.array([1.0, -2.0 * math.cos(w0), 1.0])
    a = np.array([1.0, -2.0 * g * math.cos(w0), 2.0 * g - 1.0])
    return b, a


def ba_to_sos(b: FloatArray, a: FloatArray) -> FloatArray:
    """One second-order section from a biquad's coefficients (normalised so that a[0] = 1)."""
    if b.size != 3 or a.size != 3 or a[0] == 0.0:
        raise ValueError("a biquad has three numerator and three denominator coefficients, a[0] != 0")
    return np.concatenate((b / a[0], a / a[0])).reshape(1, 6)


def section_zi(b: FloatArray, a: FloatArray) -> FloatArray:
    """Steady state of one section (direct form II transposed) for a unit step input."""
    b, a = b / a[0], a / a[0]
    companion = np.zeros((2, 2))
    companion[0, :] = -a[1:]
    companion[1, 0] = 1.0
    i_minus_a = np.eye(2) - companion.T
    rhs = b[1:] - a[1:] * b[0]
    zi: FloatArray = np.linalg.solve(i_minus_a, rhs)
    return zi


def sos_zi(sos: FloatArray) -> FloatArray:
    """Steady-state states of a cascade for a unit step (scale by the first sample to start without a jump)."""
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for i, section in enumerate(sos):
        b, a = section[:3], section[3:]
        zi[i] = scale * section_zi(b, a)
        scale *= float(np.sum(b) / np.sum(a))
    return zi
