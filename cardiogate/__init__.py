"""cardiogate: edge-first cardiac monitoring.

One namespace, one job per subpackage (docs/architecture.md has the map):
``cardiogate.core`` (kernel) <- ``cardiogate.proto`` (wire contract) <- ``cardiogate.edge``
(gateway), ``cardiogate.cloud``, ``cardiogate.sim`` (virtual wearables), ``cardiogate.models``
(training) <- ``cardiogate.app`` (CLI, demo, launcher). The repository keeps the design's
top-level folders (edge/, cloud/, proto/, firmware_sim/, models/); the build maps them to
these names.
"""

__version__ = "0.1.0"
