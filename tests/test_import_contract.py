"""The layering of the architecture, checked statically and at run time.

core <- proto <- edge / cloud / sim / models <- app. The kernel imports nothing of ours;
the gateway never imports cloud, models, the simulator or torch; the simulator uses at most
the gateway's pure codecs; nothing imports the app (``python -m cardiogate`` is its entry
point). Every import of ours is spelled ``cardiogate.*``: the repository's folder names
(edge, cloud, ...) are not import names.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.layout import module_files

OLD_TOP_LEVEL = ("edge", "cloud", "models", "firmware_sim", "proto")

# package -> (what of ours it may import, third-party packages it must never import)
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cardiogate.core": (("cardiogate.core",), ()),
    "cardiogate.proto": (("cardiogate.proto", "cardiogate.core"), ()),
    "cardiogate.edge": (("cardiogate.edge", "cardiogate.proto", "cardiogate.core"),
                        ("torch", "tensorflow", "confluent_kafka", "sqlalchemy", "alembic", "psycopg")),
    "cardiogate.sim": (("cardiogate.sim", "cardiogate.proto", "cardiogate.core", "cardiogate.edge.codecs"), ("torch",)),
    "cardiogate.cloud": (("cardiogate.cloud", "cardiogate.proto", "cardiogate.core", "cardiogate.models"), ()),
    "cardiogate.models": (("cardiogate.models", "cardiogate.proto", "cardiogate.core"), ()),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" if node.module == "cardiogate" else node.module
                         for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(package: str) -> list[str]:
    allowed, forbidden = RULES[package]
    bad = []
    for module, path in module_files(package).items():
        for name in imports_of(path):
            if name == "cardiogate.__version__":
                continue
            if name.startswith("cardiogate") and not within(name, allowed):
                bad.append(f"{module} imports {name}")
            if name.split(".")[0] in forbidden:
                bad.append(f"{module} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(RULES))
def test_each_layer_imports_only_what_lies_below_it(package: str) -> None:
    assert violations(package) == []


def test_rules_cover_every_package_but_the_app() -> None:
    top = {".".join(m.split(".")[:2]) for m in module_files("cardiogate")} - {"cardiogate.__init__", "cardiogate"}
    assert top - set(RULES) == {"cardiogate.app", "cardiogate.__main__"}


def test_nothing_imports_the_app() -> None:
    bad = [f"{module} imports {name}" for module, path in module_files("cardiogate").items()
           if not module.startswith("cardiogate.app") and module != "cardiogate.__main__"
           for name in imports_of(path) if within(name, ("cardiogate.app",))]
    assert bad == []


def test_no_code_uses_the_folder_names_as_import_names() -> None:
    files = [*module_files("cardiogate").values(), *sorted((REPO / "tests").rglob("*.py"))]
    bad = [f"{path.relative_to(REPO)} imports {name}" for path in files for name in imports_of(path)
           if name.split(".")[0] in OLD_TOP_LEVEL]
    assert bad == []


def test_the_kernel_package_itself_imports_nothing() -> None:
    assert imports_of(REPO / "cardiogate" / "__init__.py") == set()


def loaded_after_importing_all_of(package: str) -> list[str]:
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO.parent, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_importing_all_of_the_gateway_loads_no_cloud_models_sim_app_or_heavy_clients() -> None:
    loaded = loaded_after_importing_all_of("cardiogate.edge")
    assert "cardiogate.edge.gateway" in loaded
    bad = [m for m in loaded if within(m, ("cardiogate.cloud", "cardiogate.models", "cardiogate.sim", "cardiogate.app",
                                           "torch", "confluent_kafka", "sqlalchemy"))]
    assert bad == []


def test_importing_all_of_the_kernel_loads_nothing_else_of_ours() -> None:
    loaded = loaded_after_importing_all_of("cardiogate.core")
    assert [m for m in loaded if m.startswith("cardiogate.") and not m.startswith("cardiogate.core")] == []
