"""Streaming ECG signal processing for the gateway: numpy, scipy's compiled SOS kernel and our R-peak kernel.

Never imports neurokit2, wfdb, torch, cloud or models code (the gateway installs light and
runs on a Raspberry Pi); the evaluation against NeuroKit2 lives in ``cardiogate.app.evaluation``.
"""

from cardiogate.edge.dsp.af import AfConfig, AfEvidence, af_evidence
from cardiogate.edge.dsp.analyzer import AnalyzerConfig, EcgAnalyzer, EcgUpdate
from cardiogate.edge.dsp.filters import StreamingSos, bandpass_sos, ecg_sos, filter_chunk, notch_sos
from cardiogate.edge.dsp.hrv import HrvMetrics, RrWindow, time_domain
from cardiogate.edge.dsp.quality import QualityConfig, QualityReport, assess
from cardiogate.edge.dsp.rpeaks import RPeakConfig, RPeakDetector, RPeakUpdate, detect_rpeaks

__all__ = [
    "AfConfig", "AfEvidence", "AnalyzerConfig", "EcgAnalyzer", "EcgUpdate", "HrvMetrics", "QualityConfig",
    "QualityReport", "RPeakConfig", "RPeakDetector", "RPeakUpdate", "RrWindow", "StreamingSos", "af_evidence",
    "assess", "bandpass_sos", "detect_rpeaks", "ecg_sos", "filter_chunk", "notch_sos", "time_domain",
]
