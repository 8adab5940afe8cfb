"""Types of the compiled beat-template correlations (_template_kernel.c)."""

import numpy as np
from numpy.typing import NDArray

def aligned_correlation(filtered: NDArray[np.float64], peaks: NDArray[np.int64], half: int, shift: int, /) -> float: ...
def detrended_similarity(raw: NDArray[np.float64], peak: int, template: NDArray[np.float64], shift: int,
                         /) -> tuple[float, float] | None: ...
