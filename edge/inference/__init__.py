"""On-device inference: verified artifacts on onnxruntime (.onnx) or LiteRT (.tflite).

Failures surface as ``ModelError`` subclasses with a stable ``reason`` so the gateway can
raise a technical alarm ("model failure") and keep running.
"""

from cardiogate.edge.inference.errors import InferenceError, ModelError, ModelLoadError
from cardiogate.edge.inference.latency import LatencyRecorder
from cardiogate.edge.inference.manifest import ArtifactManifest, load_manifest, manifest_path_for
from cardiogate.edge.inference.model import EdgeModel
from cardiogate.edge.inference.rhythm import RhythmClassifier, RhythmResult

__all__ = [
    "ArtifactManifest",
    "EdgeModel",
    "InferenceError",
    "LatencyRecorder",
    "ModelError",
    "ModelLoadError",
    "RhythmClassifier",
    "RhythmResult",
    "load_manifest",
    "manifest_path_for",
]
