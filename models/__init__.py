"""Model definitions, training and export (torch lives only here), and the shipped edge artifacts.

May import ``proto`` only. The gateway never imports this package: it runs the
exported ``.onnx`` / ``.tflite`` artifacts through its own runtimes.
"""
