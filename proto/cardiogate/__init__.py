"""Protobuf package ``cardiogate``."""
