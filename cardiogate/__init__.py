"""cardiogate's shared kernel: typed settings loading, structured logging, the CLI.

Everything here is light and imports nothing from edge/, cloud/, firmware_sim/ or
models/ at module level, so each of those may use it without breaking the layering.
"""

__version__ = "0.1.0"
