"""The one exception a decoder may raise."""

from cardiogate.core.errors import PermanentError


class DecodeError(PermanentError, ValueError):
    """Bytes from a wearable that do not follow the characteristic's format."""
