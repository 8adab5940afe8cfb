"""Pure, typed GATT codecs: bytes in, values out (and back, for the simulator).

Everything from the air is untrusted: decoders raise :class:`DecodeError` on any
malformed input and never anything else.
"""

from cardiogate.edge.codecs.errors import DecodeError

__all__ = ["DecodeError"]
