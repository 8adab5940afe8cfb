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


def _demo_logs(work: Path, printed: list[str]) -> str:
    """What a failure shows: the demo's own lines and the tail of each part's log."""
    tails = [f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
             for log in sorted(work.glob("*.log"))]
    return "\n".join(["--- demo stdout", *printed[-30:], *tails])


def test_the_demo_serves_the_api_with_its_local_users_and_site_scope(tmp_path: Path) -> None:
    """While the demo runs: the printed API answers, a nurse logs in and sees the site's patients (audited)."""
    import json
    import time
    import urllib.request

    work = tmp_path / "cardiogate-demo-api"  # the name the leftover check below looks for
    proc = subprocess.Popen([sys.executable, "-m", "cardiogate", "demo", "--duration", "40", "--embedded-mqtt",
                             "--workdir", str(work)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        url = creds = dashboard = None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            printed.append(line.rstrip())
            found = re.search(r"demo: API at (http://\S+) .* passwords in (\S+)$", line.strip())
            if found:
                url, creds = found.group(1), Path(found.group(2))
            shown = re.search(r"demo: dashboard at (http://\S+) : sign in as demo-nurse", line)
            if shown:
                dashboard = shown.group(1)
                break
            assert time.monotonic() < deadline, "the demo did not print its API and dashboard"
        assert url is not None and creds is not None and dashboard == url + "/"
        with urllib.request.urlopen(dashboard, timeout=10) as resp:  # the built web app, served by the API
            page = resp.read().decode()
            assert '<div id="root">' in page and "default-src 'self'" in resp.headers["content-security-policy"]

        def post(path: str, body: dict[str, object], token: str | None = None) -> dict[str, object]:
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"content-type": "application/json",
                                                  **({"authorization": f"Bearer {token}"} if token else {})})
            with urllib.request.urlopen(req, timeout=10) as resp:
                result: dict[str, object] = json.loads(resp.read())
                return result

        with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        password = (creds / "demo-nurse").read_text().strip()
        token = post("/auth/token", {"username": "demo-nurse", "password": password})["access_token"]
        assert isinstance(token, str)
        answer = post("/graphql", {"query": "{ patients { pseudonym } }"}, token)
        assert "errors" not in answer, answer
        data = answer["data"]
        assert isinstance(data, dict)
        assert sorted(p["pseudonym"] for p in data["patients"]) == ["pt-1001", "pt-1002", "pt-1003"]
        operator = post("/auth/token", {"username": "demo-operator",
                                        "password": (creds / "demo-operator").read_text().strip()})["access_token"]
        refused = post("/graphql", {"query": "{ patients { pseudonym } }"}, str(operator))
        assert refused.get("errors"), "an operator read patient data"
    except Exception as exc:
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
        printed.extend(rest.splitlines())
        raise AssertionError(f"{exc!r}\n{_demo_logs(work, printed)}") from exc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    leftovers = subprocess.run(["pgrep", "-f", "cardiogate-demo-"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"
