"""The one exception a decoder may raise."""


class DecodeError(ValueError):
    """Bytes from a wearable that do not follow the characteristic's format."""
