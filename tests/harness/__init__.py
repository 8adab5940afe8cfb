"""Test harnesses: fault injection and inspection around a running local stack (never shipped)."""
