"""The kernel every part of cardiogate shares: settings, logging, errors, retry and backoff,
rate limits, identifiers and the signed-artifact format.

It imports nothing else of ours, so the gateway, the cloud, the simulator and the model code
may all use it without breaking the layering (checked by tests/test_import_contract.py).
"""
