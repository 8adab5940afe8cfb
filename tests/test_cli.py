"""The command line: help for every subcommand, and one clear line for a bad config file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardiogate.app.stack import free_port
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import REPO, port_open


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardiogate", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["gateway", "run", "--help"],
                                  ["cloud", "run", "--help"], ["sim", "run", "--help"], ["verify", "--help"],
                                  ["eval", "rhythm", "--help"], ["eval", "alarms", "--help"]])
def test_every_subcommand_explains_itself(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 0
    assert "usage: cardiogate" in result.stdout


def test_options_before_the_first_argument_reach_the_models_command(tmp_path: Path) -> None:
    # `models status --json ...`: the option comes first and must still reach the registry's own parser.
    db = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    result = run_cli("models", "status", "--json", "--database-url", db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    bad = run_cli("sim", "run", "--no-such-option")
    assert bad.returncode == 2 and "unrecognized arguments: --no-such-option" in bad.stderr


def test_eval_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    missing = run_cli("eval", "rhythm", "--json", str(tmp_path / "r.json"))
    assert missing.returncode == 2 and "--data" in missing.stderr
    bad = run_cli("eval", "alarms", "--patients", "-3")
    assert bad.returncode == 2 and "--patients" in bad.stderr
    unknown = run_cli("eval", "alarms", "--patients", "1", "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
    assert not (tmp_path / "r.json").exists()


def test_eval_rhythm_without_data_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("eval", "rhythm", "--data", str(tmp_path / "absent"), "--limit", "1")
    assert result.returncode == 2
    assert result.stderr.startswith("cardiogate eval rhythm:")


def test_sim_run_flags_beat_the_environment_which_beats_the_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cardiogate.app.cli import parse_command, sim_settings

    config = tmp_path / "sim.toml"
    config.write_text('listen = "127.0.0.1:1111"\n[[watches]]\nname = "w"\naddress = "C0:00:00:00:00:09"\n',
                      encoding="utf-8")
    monkeypatch.setenv("CARDIOGATE_SIM__LISTEN", "127.0.0.1:2222")
    flagged = sim_settings(parse_command(["sim", "run", "--config", str(config), "--listen", "127.0.0.1:3333",
                                          "--watches", "2"]))
    assert flagged.listen == "127.0.0.1:3333"
    assert [w.address for w in flagged.watches] == ["C0:00:00:00:00:01", "C0:00:00:00:00:02"]
    plain = sim_settings(parse_command(["sim", "run", "--config", str(config)]))
    assert (plain.listen, [w.address for w in plain.watches]) == ("127.0.0.1:2222", ["C0:00:00:00:00:09"])
    monkeypatch.delenv("CARDIOGATE_SIM__LISTEN")
    assert sim_settings(parse_command(["sim", "run", "--config", str(config)])).listen == "127.0.0.1:1111"


def test_sim_run_listens_where_the_flag_says_despite_the_environment() -> None:
    flag_port, env_port = free_port(), free_port()
    env = {**os.environ, "CARDIOGATE_SIM__LISTEN": f"127.0.0.1:{env_port}"}
    proc = subprocess.Popen([sys.executable, "-m", "cardiogate", "sim", "run", "--watches", "1",
                             "--listen", f"127.0.0.1:{flag_port}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", flag_port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert port_open("127.0.0.1", flag_port), "the simulator does not listen on the --listen port"
        assert not port_open("127.0.0.1", env_port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_invalid_gateway_config_gives_one_line_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('gateway_id = "gw-1"\n[uplink]\nbatch_max_records = "lots"\n', encoding="utf-8")
    result = run_cli("gateway", "run", "--config", str(config))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "uplink.batch_max_records" in lines[0] and str(config) in lines[0]


def test_invalid_device_address_is_named(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[devices]]\naddress = "not-an-address"\npatient = "pt-0001"\n', encoding="utf-8")
    result = run_cli("gateway", "run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "devices.0.address" in result.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("cloud", "run", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("cardiogate: configuration error: config file not found")


# -- cardiogate verify against a real Kafka protocol broker (tansu) ---------------------------------------------

DEV = "C0:00:00:00:00:51"
T0_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    from cardiogate.cloud.tansu import start_tansu

    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _produce(bootstrap: str, records: list[tuple[str, pb.Record]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for topic, r in records:
        producer.produce(topic, key=b"pt-1", value=r.SerializeToString())
    assert producer.flush(30) == 0


def _packet(seq: int, sent: bool) -> dict[str, object]:
    t0_us = T0_NS // 1000 + seq * 40_000  # 10 samples at 250 Hz per packet
    if sent:
        return {"watch": DEV, "kind": "ecg", "seq": seq, "t0_us": t0_us, "fs": 250.0, "samples": [seq] * 10}
    return {"watch": DEV, "kind": "ecg_unsent", "seq": seq, "t0_us": t0_us, "fs": 250.0, "n": 10}


def _block(seq: int, first: int, last: int) -> pb.Record:
    values = b"".join(int(s).to_bytes(2, "little", signed=True) * 10 for s in range(first, last + 1))
    return pb.Record(stream_id=f"{DEV}/ecg", sequence=seq, device_id=DEV, patient="pt-1", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=T0_NS + first * 40_000_000,
                                            sample_rate_hz=250.0, encoding=pb.SAMPLE_ENCODING_INT16_LE,
                                            samples=values, sample_count=len(values) // 2,
                                            device_sequence_first=first, device_sequence_last=last))


def test_verify_exits_0_when_everything_is_accounted_and_1_on_a_duplicate(kafka: str, tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text("".join(json.dumps(_packet(s, s not in (2, 3))) + "\n" for s in range(6))
                     + '{"watch": "C0:00:00:00:00:51", "kind": "ecg", "se', encoding="utf-8")  # torn last line
    gap = pb.Gap(stream=pb.STREAM_KIND_ECG, device_sequence_first=2, device_sequence_last=3,
                 start_device_time_ns=T0_NS + 80_000_000, end_device_time_ns=T0_NS + 160_000_000,
                 missing_samples=20, cause=pb.GAP_CAUSE_LINK_LOSS, sample_rate_hz=250.0)
    vitals = [pb.Record(stream_id=f"{DEV}/vitals", sequence=i, device_id=DEV, patient="pt-1",
                        kind=pb.STREAM_KIND_VITALS, vitals=pb.VitalsRecord(source="hrm", heart_rate_bpm=70.0 + i))
              for i in range(3)]
    _produce(kafka, [("ecg.raw", _block(0, 0, 1)), ("ecg.raw", _block(1, 4, 5)),
                     ("device.events", pb.Record(stream_id=f"{DEV}/events", sequence=0, device_id=DEV,
                                                 patient="pt-1", kind=pb.STREAM_KIND_EVENTS,
                                                 event=pb.DeviceEvent(gap=gap))),
                     *(("vitals", v) for v in vitals)])
    out = tmp_path / "report.json"
    result = run_cli("verify", "--truth", str(truth), "--kafka", kafka, "--idle", "2", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK" in result.stdout and f"{DEV}/vitals" in result.stdout
    totals = json.loads(out.read_text())["totals"]
    assert (totals["produced_samples"], totals["delivered_samples"], totals["gap_samples"]) == (60, 40, 20)
    assert totals["missing_samples"] == totals["duplicate_samples"] == 0 and totals["records"] == 6

    _produce(kafka, [("vitals", vitals[1])])  # a replay that slipped past de-duplication
    result = run_cli("verify", "--truth", str(truth), "--kafka", kafka, "--idle", "2", "--json", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verify: FAILED" in result.stdout
    report = json.loads(out.read_text())
    assert report["streams"][f"{DEV}/vitals"]["duplicate_records"] == 1
    assert report["totals"]["missing_samples"] == 0


def test_verify_without_a_readable_truth_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("verify", "--truth", str(tmp_path / "absent.jsonl"), "--kafka", "127.0.0.1:1")
    assert result.returncode == 2
    assert "cannot read the ground truth" in result.stderr
