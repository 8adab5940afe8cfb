"""Stream identifiers as a value type: ``<device>/<kind>``, built and read in one place.

Every record names its stream; the gateway numbers records per stream, the cloud's
ledger deduplicates per (gateway, stream), and the verifier reconciles per stream. The
text form stays what it always was (the wire, the outbox and the ledger store it), but
code builds it with :class:`StreamId` and reads it with :meth:`StreamId.parse` instead of
f-strings, ``split("/")`` and SQL ``LIKE '%/ecg'`` — so a malformed id is refused where it
is made, and "which kind is this stream" has one answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cardiogate.core.errors import PermanentError

# The kinds of the wire's StreamKind enum (without its prefix, lowercase); a newer peer may add more.
KNOWN_KINDS = ("ecg", "vitals", "alarms", "events")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DEVICE = re.compile(r"^[^/\s]{1,128}$")


class InvalidStreamId(PermanentError, ValueError):
    """Text that is not ``<device>/<kind>``."""


@dataclass(frozen=True, order=True, slots=True)
class StreamId:
    """One device's stream of one kind; ordered by device, then kind; ``str()`` gives the stored form."""

    device: str
    kind: str

    def __post_init__(self) -> None:
        if not _DEVICE.fullmatch(self.device):
            raise InvalidStreamId(f"device {self.device!r}: 1-128 characters, no '/' or whitespace")
        if not _KIND.fullmatch(self.kind):
            raise InvalidStreamId(f"stream kind {self.kind!r}: lowercase letters, digits and '_'")

    @classmethod
    def parse(cls, text: str) -> StreamId:
        """``"<device>/<kind>"`` back into its parts (InvalidStreamId, a ValueError, if it is not one)."""
        device, slash, kind = text.rpartition("/")
        if not slash:
            raise InvalidStreamId(f"stream id {text!r} has no '/<kind>'")
        return cls(device, kind)

    @property
    def known(self) -> bool:
        """Whether this build knows the kind (an unknown one is kept and sent, never interpreted)."""
        return self.kind in KNOWN_KINDS

    def __str__(self) -> str:
        return f"{self.device}/{self.kind}"
