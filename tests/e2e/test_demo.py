"""`cardiogate demo` on its locked MQTT plane (embedded amqtt, or its own Mosquitto): prints an alarm and delivers
samples, prints no secret, leaves nothing running."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_demo_raises_a_tachycardia_alarm_and_delivers_samples_on_embedded_mqtt() -> None:
    result = subprocess.run([sys.executable, "-m", "cardiogate", "demo", "--duration", "24", "--embedded-mqtt"],
                            cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "embedded MQTT broker" in out
    assert re.search(r"ALARM RAISED\s+medium pt-1001 hr_high", out), out[-3000:]
    done = re.search(r"demo: done\. (\d+) alarm event\(s\); ([\d,]+) ECG samples delivered to Kafka", out)
    assert done is not None, out[-3000:]
    assert int(done.group(2).replace(",", "")) > 3 * 250 * 10, "fewer ECG samples than ~10 s of 3 watches"
    leftovers = subprocess.run(["pgrep", "-f", "cardiogate-demo-"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"


def test_demo_runs_its_own_locked_mosquitto_and_prints_no_secret() -> None:
    result = subprocess.run([sys.executable, "-m", "cardiogate", "demo", "--duration", "24", "--keep"],
                            cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "starting Mosquitto on a free port" in out and "--cafile" in out
    assert re.search(r"ALARM RAISED\s+medium pt-1001 hr_high", out), out[-3000:]
    work = re.search(r"logs in (\S+)\)", out)
    assert work is not None, out[:2000]
    credentials = Path(work.group(1)) / "mqtt" / "credentials"
    secrets = [p.read_text().strip() for p in credentials.glob("*.password")]
    assert len(secrets) == 5 and not any(s in out + result.stderr for s in secrets)
    shutil.rmtree(work.group(1), ignore_errors=True)
    leftovers = subprocess.run(["pgrep", "-f", "cardiogate-demo-"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"
