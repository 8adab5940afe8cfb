"""Where each import name lives in the repository, read from the build's own mapping.

The repository keeps the design's top-level folders (edge/, cloud/, proto/, firmware_sim/,
models/); pyproject.toml maps them to ``cardiogate.*``. Tests that look at files (the import
contract, the mypy gate, the packaging test) use this one reading of that mapping.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import REPO

_TOOL = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
PACKAGE_DIRS: dict[str, str] = dict(_TOOL["package-dir"])
PACKAGES: list[str] = list(_TOOL["packages"])


def source_dir(package: str) -> Path:
    """The folder that holds ``package``, by the longest mapped prefix."""
    best = max((name for name in PACKAGE_DIRS if package == name or package.startswith(name + ".")), key=len)
    rest = package[len(best):].lstrip(".")
    return REPO / PACKAGE_DIRS[best] / Path(*rest.split(".")) if rest else REPO / PACKAGE_DIRS[best]


def module_files(package: str) -> dict[str, Path]:
    """Every module of ``package`` and its subpackages: import name -> file."""
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        if pkg != package and not pkg.startswith(package + "."):
            continue
        folder = source_dir(pkg)
        for path in sorted(folder.glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            found[name] = path
    return found


def package_folders_on_disk() -> set[str]:
    """Every folder with an ``__init__.py`` under a mapped root, as an import name."""
    mapped = {REPO / folder: package for package, folder in PACKAGE_DIRS.items()}
    names: set[str] = set()
    for package, folder in PACKAGE_DIRS.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if mapped.get(init.parent, package) != package:
                continue  # a folder mapped on its own (proto/cardiogate/v1) is not also its parent's child
            parts = init.parent.relative_to(root).parts
            names.add(".".join((package, *parts)) if parts else package)
    return names


def link_tree(target: Path) -> Path:
    """Lay the installed shape of ``cardiogate`` out under ``target`` as symlinks (for tools
    such as mypy that find modules by path and cannot follow the build's mapping)."""
    for pkg in PACKAGES:
        folder = source_dir(pkg)
        dest = target / Path(*pkg.split("."))
        dest.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            if path.suffix in (".py", ".pyi") or path.name == "py.typed":
                (dest / path.name).symlink_to(path)
    return target
