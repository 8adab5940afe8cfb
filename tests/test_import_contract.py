"""The layering rules of the architecture, checked statically and at run time.

edge/ never imports cloud, models, firmware_sim or torch; firmware_sim imports at most
proto, edge's pure codecs and the kernel; the kernel (config, logs) imports nothing of ours.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

OURS = ("edge", "cloud", "models", "firmware_sim", "proto", "cardiogate")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(folder: str, allowed: tuple[str, ...], forbidden_third_party: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in OURS and not any(name == a or name.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
            if top in forbidden_third_party:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_edge_imports_only_proto_and_the_kernel() -> None:
    assert violations("edge", ("edge", "proto", "cardiogate.config", "cardiogate.logs", "cardiogate"),
                      ("torch", "tensorflow", "confluent_kafka")) == []


def test_firmware_sim_imports_only_proto_edge_codecs_and_the_kernel() -> None:
    assert violations("firmware_sim", ("firmware_sim", "proto", "edge.codecs", "cardiogate.config",
                                       "cardiogate.logs"), ("torch",)) == []


def test_models_import_nothing_of_ours_but_proto() -> None:
    assert violations("models", ("models", "proto")) == []


def test_proto_imports_nothing_of_ours() -> None:
    assert violations("proto", ("proto",)) == []


def test_cloud_never_imports_edge() -> None:
    assert violations("cloud", ("cloud", "proto", "models", "cardiogate.config", "cardiogate.logs")) == []


@pytest.mark.parametrize("folder", ["edge"])
def test_importing_all_of_edge_loads_no_cloud_models_or_torch(folder: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {folder}\n"
        f"for m in pkgutil.walk_packages({folder}.__path__, '{folder}.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cloud', 'models', 'torch', 'firmware_sim'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
