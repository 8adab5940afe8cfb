"""bumble's packet descriptions: cheap while its debug log is off, complete the moment it is on."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from bumble import att, hci

from cardiogate.edge.ble.bumble_strings import bumble_debug_enabled, defer_packet_strings


@pytest.fixture
def bumble_levels() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("bumble", "bumble.host", "bumble.gatt_client")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    defer_packet_strings()
    yield
    for lg, level in saved:
        lg.setLevel(level)


def _packets() -> list[object]:
    return [
        att.ATT_Handle_Value_Notification(attribute_handle=0x2A, attribute_value=bytes([1, 2, 3])),
        hci.HCI_AclDataPacket(connection_handle=1, pb_flag=0, bc_flag=0, data_total_length=3, data=b"abc"),
    ]


def test_with_debug_off_a_packet_prints_its_class_name_only(bumble_levels: None) -> None:
    assert not bumble_debug_enabled()
    assert [str(p) for p in _packets()] == ["ATT_Handle_Value_Notification", "HCI_AclDataPacket"]


@pytest.mark.parametrize("logger", ["bumble", "bumble.host", "bumble.gatt_client"])
def test_with_any_bumble_debug_logger_on_every_field_prints(bumble_levels: None, logger: str) -> None:
    logging.getLogger(logger).setLevel(logging.DEBUG)
    assert bumble_debug_enabled()
    notification, acl = (str(p) for p in _packets())
    assert "attribute_handle" in notification and "0x002A" in notification and "010203" in notification
    assert "handle=0x0001" in acl and "data=616263" in acl


def test_installing_twice_wraps_nothing_more(bumble_levels: None) -> None:
    assert defer_packet_strings() == 0
    logging.getLogger("bumble").setLevel(logging.DEBUG)
    assert str(_packets()[0]).count("attribute_handle") == 1  # not wrapped inside another wrapper
