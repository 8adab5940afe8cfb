"""The rollout contract's enums: the Python names and the protobuf values are the same set, and both
sides read a report from a newer gateway (enums) and from an older one (text) alike."""

from __future__ import annotations

from enum import StrEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from cardiogate.cloud.rollout.controller import AssignmentOut
from cardiogate.cloud.rollout.service import assignment_to_proto, report_from_proto
from cardiogate.proto.contracts import RefusalCode, UpdateAction, UpdaterPhase
from cardiogate.proto.v1 import rollout_pb2 as rpb


@pytest.mark.parametrize(("py", "wire", "prefix"), [
    (UpdaterPhase, rpb.UpdaterPhase, "UPDATER_PHASE_"), (RefusalCode, rpb.RefusalCode, "REFUSAL_CODE_"),
    (UpdateAction, rpb.UpdateAction, "UPDATE_ACTION_")])
def test_python_names_and_proto_values_are_the_same_set(py: type[StrEnum], wire: EnumTypeWrapper,
                                                        prefix: str) -> None:
    proto_names = {n.removeprefix(prefix) for n in wire.DESCRIPTOR.values_by_name} - {"UNSPECIFIED"}
    assert proto_names == set(py.__members__)
    for member in py:
        assert member.value == member.name.lower()
        assert wire.Name(member.wire) == prefix + member.name  # type: ignore[attr-defined]
        assert py.from_wire(member.wire) is member  # type: ignore[attr-defined]


def test_enum_first_then_the_older_text_field() -> None:
    assert UpdaterPhase.from_wire(rpb.UPDATER_PHASE_SHADOW, "idle") is UpdaterPhase.SHADOW
    assert UpdaterPhase.from_wire(rpb.UPDATER_PHASE_UNSPECIFIED, "staged") is UpdaterPhase.STAGED
    assert UpdaterPhase.from_wire(rpb.UPDATER_PHASE_UNSPECIFIED, "sleeping") is None
    assert UpdaterPhase.from_wire(99) is None  # a phase from a newer gateway
    assert RefusalCode.from_wire(rpb.REFUSAL_CODE_UNSPECIFIED, "") is None
    assert RefusalCode.from_wire(rpb.REFUSAL_CODE_UNSPECIFIED, "bad_signature") is RefusalCode.BAD_SIGNATURE
    assert UpdateAction.from_wire(rpb.UPDATE_ACTION_UNSPECIFIED) is None


def test_the_cloud_reads_new_and_old_gateways_alike() -> None:
    new = rpb.UpdaterReport(gateway_id="gw-1", model="rhythm", phase=rpb.UPDATER_PHASE_REFUSED,
                            refusal=rpb.REFUSAL_CODE_INCOMPATIBLE)
    old = rpb.UpdaterReport(gateway_id="gw-1", model="rhythm", state="refused", refusal_code="incompatible")
    for report in (report_from_proto(new), report_from_proto(old)):
        assert report.state is UpdaterPhase.REFUSED and report.refusal_code is RefusalCode.INCOMPATIBLE
    unknown = report_from_proto(rpb.UpdaterReport(state="hibernating", refusal_code="cosmic_ray"))
    assert (unknown.state, unknown.refusal_code) == ("hibernating", "cosmic_ray")  # kept as sent, still a refusal


def test_assignments_carry_the_enum() -> None:
    for action in UpdateAction:
        assert assignment_to_proto(AssignmentOut(action, "1.0.0"), 30.0, 1024).action == action.wire
