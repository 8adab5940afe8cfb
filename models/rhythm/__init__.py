"""Rhythm classification (Normal, AF, Other, Noisy) from short single-lead ECG.

Importing this package loads no torch: data loading, the split, the numpy preprocessing
and the metrics are usable by evaluation code; ``net``, ``train``, ``tflite``, ``export``
and ``train_edge`` need torch.
"""

CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
"""Label order of every model output: Normal, AF, Other rhythm, Noisy (CinC 2017 codes)."""
