"""Regenerate the Python stubs from the .proto files, reproducibly.

Usage: ``python -m cardiogate.proto.generate [--out DIR]``. The .proto files live in
``proto/cardiogate/v1`` and are compiled with ``proto/`` as the include path, so their
protobuf package and file names are the canonical ``cardiogate.v1`` /
``cardiogate/v1/*.proto``. protoc names the Python modules after those paths
(``cardiogate.v1.*``); the build maps ``proto/cardiogate/v1`` to the import name
``cardiogate.proto.v1``, so the generated imports are rewritten to that name.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
INCLUDE_ROOT = REPO_ROOT / "proto"
PROTO_DIR = Path("proto") / "cardiogate" / "v1"
_GENERATED_NAME = re.compile(r"(?<![\w.])cardiogate\.v1(?=\.\w+_pb2|\s+import\s)")


def proto_files() -> list[Path]:
    """The .proto sources, relative to the include root, in a stable order."""
    return sorted(p.relative_to(INCLUDE_ROOT) for p in (REPO_ROOT / PROTO_DIR).glob("*.proto"))


def _rename_modules(path: Path) -> None:
    """Point generated imports (``cardiogate.v1.x_pb2``) at their import name ``cardiogate.proto.v1``."""
    text = path.read_text(encoding="utf-8")
    path.write_text(_GENERATED_NAME.sub("cardiogate.proto.v1", text), encoding="utf-8")


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto into ``out_dir / proto/cardiogate/v1``; returns the generated files."""
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    target = out_dir / "proto"
    target.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{INCLUDE_ROOT}",
        f"-I{well_known}",
        f"--python_out={target}",
        f"--grpc_python_out={target}",
        f"--mypy_out={target}",
        f"--mypy_grpc_out={target}",
        *[str(INCLUDE_ROOT / p) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see the messages above")
    generated = sorted(p for p in (out_dir / PROTO_DIR).iterdir()
                       if p.name.endswith((".py", ".pyi")) and "_pb2" in p.name)
    for path in generated:
        _rename_modules(path)
    return generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root (default: the repository)")
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
