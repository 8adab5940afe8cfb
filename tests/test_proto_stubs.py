"""The committed generated stubs must be exactly what `python -m cardiogate.proto.generate` produces."""

from __future__ import annotations

from pathlib import Path

from cardiogate.proto.generate import PROTO_DIR, generate
from tests.conftest import REPO


def test_generated_stubs_match_the_proto_sources(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in generate(tmp_path)}
    committed = {p.name: p.read_bytes() for p in (REPO / PROTO_DIR).iterdir() if "_pb2" in p.name
                 and p.suffix in (".py", ".pyi")}
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `python -m cardiogate.proto.generate`"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert not drifted, f"stubs drifted from the .proto files: {drifted}; run `python -m cardiogate.proto.generate`"


def test_proto_package_is_cardiogate_v1() -> None:
    from cardiogate.proto.v1 import telemetry_pb2

    assert telemetry_pb2.DESCRIPTOR.package == "cardiogate.v1"
