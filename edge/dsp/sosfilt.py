"""Second-order-section filtering in compiled code, without importing scipy.signal.

Why: the per-sample recurrence of an IIR filter cannot be vectorised in numpy, and scipy ships a small
compiled kernel for it (``scipy.signal._sosfilt``). Importing it the usual way runs scipy.signal's
package initialiser, which loads most of scipy (~80 MB resident on a gateway). The kernel itself
depends only on numpy, so it is loaded from its file on its own; where that fails (another scipy
layout), the public ``scipy.signal.sosfilt`` serves instead, with the same results.

The kernel filters a ``(rows, samples)`` float64 C-contiguous array in place, carrying the state ``zi``
of shape ``(rows, sections, 2)`` (updated in place): direct form II transposed, sections in order.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.iir_design import sos_zi

FloatArray = NDArray[np.float64]
Kernel = Callable[[FloatArray, FloatArray, FloatArray], None]


def _load_kernel() -> Kernel | None:
    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "signal"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_sosfilt{suffix}"
        if not path.is_file():
            continue
        try:
            loader = importlib.machinery.ExtensionFileLoader("scipy.signal._sosfilt", str(path))
            module_spec = importlib.util.spec_from_loader("scipy.signal._sosfilt", loader)
            if module_spec is None:
                return None
            module: Any = importlib.util.module_from_spec(module_spec)
            loader.exec_module(module)
            kernel: Kernel = module._sosfilt
            return kernel
        except (ImportError, AttributeError, OSError):  # pragma: no cover - depends on the scipy build
            return None
    return None  # pragma: no cover - depends on the scipy build


_KERNEL = _load_kernel()


def _public_sosfilt(sos: FloatArray, y: FloatArray, zi: FloatArray) -> None:  # pragma: no cover - fallback
    from scipy import signal  # type: ignore[import-untyped]

    for row in range(y.shape[0]):
        out, zf = signal.sosfilt(sos, y[row], zi=zi[row])
        y[row], zi[row] = out, zf


def sosfilt_inplace(sos: FloatArray, y: FloatArray, zi: FloatArray) -> None:
    """Filter the rows of ``y`` (float64, C-contiguous, ``(rows, n)``) in place, carrying ``zi`` in place."""
    (_KERNEL or _public_sosfilt)(sos, y, zi)


def compiled() -> bool:
    """True when the compiled kernel was loaded without scipy.signal (the memory-lean path)."""
    return _KERNEL is not None


def sosfilt(sos: FloatArray, x: NDArray[Any], zi: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """Filter a 1-D signal from state ``zi`` (sections x 2; zeros when None); return output and final state."""
    y = np.array(x, dtype=np.float64, order="C", ndmin=2)
    z = np.zeros((1, sos.shape[0], 2)) if zi is None else np.array(zi, dtype=np.float64, order="C").reshape(1, -1, 2)
    sosfilt_inplace(np.ascontiguousarray(sos, dtype=np.float64), y, z)
    return y[0], z[0]


def _odd_extension(x: FloatArray, n: int) -> FloatArray:
    """Extend by point reflection about each end (no step at the edges for a forward-backward filter)."""
    left = 2.0 * x[0] - x[n:0:-1]
    right = 2.0 * x[-1] - x[-2:-(n + 2):-1]
    return np.concatenate((left, x, right))


def pad_length(sos: FloatArray) -> int:
    """Samples of reflected signal added at each end: three times the cascade's effective length."""
    taps = 2 * sos.shape[0] + 1
    taps -= min(int(np.sum(sos[:, 2] == 0)), int(np.sum(sos[:, 5] == 0)))
    return int(3 * taps)


def sosfiltfilt(sos: FloatArray, x: NDArray[Any]) -> FloatArray:
    """Zero-phase filtering: forward, then backward, from steady states, over an odd extension of ``x``."""
    sig = np.asarray(x, dtype=np.float64).ravel()
    edge = pad_length(sos)
    if sig.size <= edge:
        raise ValueError(f"the signal must be longer than {edge} samples for this filter")
    ext = _odd_extension(sig, edge)
    zi = sos_zi(sos)
    y, _ = sosfilt(sos, ext, zi * ext[0])
    back, _ = sosfilt(sos, y[::-1], zi * y[-1])
    out: FloatArray = back[::-1][edge:-edge].copy()
    return out
