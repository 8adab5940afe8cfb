"""The monitoring configuration in deploy/monitoring: Prometheus accepts it (promtool), its alerts fire when
they should (promtool's rule unit tests), and every metric a rule or a Grafana panel reads is one the code
declares, so a renamed metric cannot silently blank a dashboard or mute an alert."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

import cardiogate.cloud
import cardiogate.edge
from cardiogate.core.metrics import REGISTRY
from tests.conftest import REPO

pytestmark = [pytest.mark.ops, pytest.mark.timeout(120)]

MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules" / "cardiogate.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan", "s", "m", "h", "d", "w", "y"}
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) is missing; .ci/run installs it")


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_promtool
def test_prometheus_accepts_the_config_with_its_rules(tmp_path: Path) -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]  # the container mounts them at /etc/prometheus/rules
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout


@needs_promtool
def test_the_rules_are_valid_and_their_alerts_fire_on_synthetic_series() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "cardiogate_test.yml", cwd=MONITORING / "prometheus" / "tests")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@cache
def declared_series() -> frozenset[str]:
    """Every series name the code's metrics registry exposes, with the exposition's suffixes."""
    for package in (cardiogate.edge, cardiogate.cloud):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".alembic" in module.name or module.name.endswith("_bumble_backend"):
                continue
            importlib.import_module(module.name)
    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("_sum", "_count", "_created")}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (recorded series, with ':', are left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)            # strings
    text = re.sub(r"\{[^}]*\}", "", text)                     # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                    # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS or ":" in word:
            continue
        names.add(word)
    return names


def _rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(rule.get("alert") or rule["record"], rule["expr"]) for g in groups for rule in g["rules"]]


def _panel_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            out += [(f"{path.stem}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return out


def test_every_metric_a_rule_or_panel_reads_is_declared_by_the_code() -> None:
    declared = declared_series()
    recorded = {name for name, _ in _rule_exprs() if ":" in name}
    unknown = {}
    for where, expr in _rule_exprs() + _panel_exprs():
        missing = sorted(metric_names(expr) - declared)
        missing_recorded = sorted(set(re.findall(r"[a-z_]+:[a-z0-9_:]+", expr)) - recorded)
        if missing or missing_recorded:
            unknown[where] = missing + missing_recorded
    assert not unknown, unknown
    assert len(_panel_exprs()) >= 20 and len(DASHBOARDS) == 6


def test_the_name_check_catches_a_metric_that_does_not_exist() -> None:
    expr = 'sum by (gateway) (rate(gateway_outbox_flil_ratio{site="a"}[5m])) > 0.8 and on (gateway) up'
    assert metric_names(expr) == {"gateway_outbox_flil_ratio", "up"}
    assert "gateway_outbox_flil_ratio" not in declared_series()
    assert "gateway_outbox_fill_ratio" in declared_series()


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-")


def test_every_alert_has_a_runbook_that_exists() -> None:
    headings = {_slug(line.lstrip("#").strip()) for line in (REPO / "docs" / "operations.md").read_text().splitlines()
                if line.startswith("#")}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [rule for g in groups for rule in g["rules"] if "alert" in rule]
    assert len(alerts) >= 9
    for alert in alerts:
        runbook = alert["annotations"]["runbook"]
        path, _, anchor = runbook.partition("#")
        assert path == "docs/operations.md" and anchor in headings, (alert["alert"], runbook)
        assert alert["labels"]["severity"] in ("warning", "critical")


def test_grafana_dashboards_are_provisioned_with_stable_uids() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, (path.name, panel["title"])
    sources = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    assert {d["uid"] for d in sources["datasources"]} == {"prometheus", "loki"}
