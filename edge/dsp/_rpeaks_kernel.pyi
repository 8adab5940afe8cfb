"""Types of the compiled per-chunk kernel of the R-peak detector (_rpeaks_kernel.c)."""

import numpy as np
from numpy.typing import NDArray

N_INT_PARAMS: int
N_FLOAT_PARAMS: int

class Kernel:
    def __init__(self, sos_x: NDArray[np.float64], zi_x: NDArray[np.float64], sos_d: NDArray[np.float64],
                 zi_d: NDArray[np.float64], sos_f: NDArray[np.float64], zi_f: NDArray[np.float64],
                 int_params: NDArray[np.int64], float_params: NDArray[np.float64], start_index: int, /) -> None: ...
    def process(self, raw: NDArray[np.float64], filtered: NDArray[np.float64], peaks: NDArray[np.int64], /) -> int: ...
    def take_peaks(self, peaks: NDArray[np.int64], /) -> None: ...
    def reset(self, start_index: int, /) -> None: ...
