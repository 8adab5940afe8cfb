"""Make bumble's packet descriptions cost nothing unless bumble's debug log will print them.

bumble logs every HCI packet and ATT PDU it sends or receives with ``logger.debug(f"... {packet}")``.
The f-string is built before ``logger.debug`` looks at the level, so each packet's ``__str__`` runs
(field by field, with terminal colours) even when debug logging is off, as it is in service. On a
gateway receiving a few hundred notifications a second that was 6-8 % of its event loop's CPU
(py-spy, docs/benchmarks.md).

:func:`defer_packet_strings` wraps the ``__str__`` of bumble's HCI packet and ATT PDU classes: when
none of bumble's loggers is enabled for DEBUG, a packet describes itself by its class name only;
when one is, the full original description is produced, so lowering the ``bumble`` logger to DEBUG
at any time shows every field as before. (The gateway's ``--log-level debug`` does not: setup_logging
keeps bumble's loggers at WARNING or above.) It changes how packets print and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bumble import att, hci

_LOGGERS = tuple(logging.getLogger(name) for name in (
    "bumble", "bumble.host", "bumble.hci", "bumble.att", "bumble.gatt_client", "bumble.l2cap", "bumble.device"))
_WRAPPED = "__cardiogate_deferred__"
_installed = False


def bumble_debug_enabled() -> bool:
    """Whether any of the loggers that print packets would print a DEBUG record now."""
    return any(logger.isEnabledFor(logging.DEBUG) for logger in _LOGGERS)


def _deferred(original: Callable[[Any], str]) -> Callable[[Any], str]:
    def __str__(self: Any) -> str:
        if bumble_debug_enabled():
            return original(self)
        return type(self).__name__

    setattr(__str__, _WRAPPED, original)
    __str__.__doc__ = original.__doc__
    return __str__


def _classes(root: type) -> list[type]:
    found, todo = [], [root]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def defer_packet_strings() -> int:
    """Wrap every HCI packet and ATT PDU class's own ``__str__`` (once per process); returns how many."""
    global _installed
    if _installed:
        return 0
    wrapped = 0
    for root in (hci.HCI_Packet, att.ATT_PDU):
        for cls in _classes(root):
            own = cls.__dict__.get("__str__")
            if own is None or hasattr(own, _WRAPPED):
                continue
            setattr(cls, "__str__", _deferred(own))  # noqa: B010 (a class attribute, set on purpose)
            wrapped += 1
    _installed = True
    return wrapped
