"""Regenerate the Python code of the ``loom.v1`` wire contract from ``proto/loom/v1``.

Outputs (paths relative to ``--out``, which defaults to the repository root):

* ``loom-core/src/loom/v1/{event,action,agent,bridge,plugin}_pb2.py`` and ``.pyi`` stubs,
  plus a docstring-only ``__init__.py``;
* ``loom-bridge/src/loom_bridge/_grpc/bridge_pb2_grpc.py`` (the gRPC service stubs of
  ``bridge.proto`` only), plus a docstring-only ``__init__.py``.

``--check`` regenerates into a temporary directory and exits 1, listing the stale files, when
anything differs from the files under ``--out``.

Usage::

    python scripts/gen_protos.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_FILES = (
    "loom/v1/event.proto",
    "loom/v1/action.proto",
    "loom/v1/agent.proto",
    "loom/v1/bridge.proto",
    "loom/v1/plugin.proto",
)
GRPC_PROTO_FILES = ("loom/v1/bridge.proto",)

MESSAGES_DIR = Path("loom-core/src/loom/v1")
GRPC_DIR = Path("loom-bridge/src/loom_bridge/_grpc")

MESSAGES_INIT = (
    '"""Generated protobuf messages of the loom.v1 wire contract.\n\n'
    'Regenerate with scripts/gen_protos.py.\n"""\n'
)
GRPC_INIT = (
    '"""Generated gRPC service stubs of the loom.v1 Bridge service (bridge.proto).\n\n'
    'Regenerate with scripts/gen_protos.py.\n"""\n'
)


def _grpc_tools_include() -> Path:
    """Return grpc_tools' bundled ``_proto`` include directory (well-known types)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("grpc_tools is not installed: pip install grpcio-tools")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def _protoc(args: Sequence[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={_grpc_tools_include()}",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"protoc failed ({result.returncode}): {' '.join(cmd)}")


def _is_generated_message_file(path: Path) -> bool:
    return path.name == "__init__.py" or path.name.endswith(("_pb2.py", "_pb2.pyi"))


def _is_generated_grpc_file(path: Path) -> bool:
    return path.name == "__init__.py" or path.name.endswith("_pb2_grpc.py")


def _managed_files(out: Path) -> set[Path]:
    """Files under ``out`` that this script owns, relative to ``out``."""
    found: set[Path] = set()
    messages = out / MESSAGES_DIR
    if messages.is_dir():
        found |= {
            p.relative_to(out)
            for p in messages.iterdir()
            if p.is_file() and _is_generated_message_file(p)
        }
    grpc = out / GRPC_DIR
    if grpc.is_dir():
        # Only generated files live there: anything else counts as stale.
        found |= {
            p.relative_to(out)
            for p in grpc.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
    return found


def generate(out: Path) -> list[Path]:
    """Generate all outputs under ``out``; return the written paths relative to ``out``."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="loom-protoc-") as tmp_name:
        tmp = Path(tmp_name)
        py_tmp = tmp / "py"
        grpc_tmp = tmp / "grpc"
        py_tmp.mkdir()
        grpc_tmp.mkdir()
        _protoc([f"--python_out={py_tmp}", f"--pyi_out={py_tmp}", *PROTO_FILES])
        _protoc([f"--grpc_python_out={grpc_tmp}", *GRPC_PROTO_FILES])

        for rel in _managed_files(out):
            (out / rel).unlink()

        messages = out / MESSAGES_DIR
        messages.mkdir(parents=True, exist_ok=True)
        for proto in PROTO_FILES:
            stem = Path(proto).stem
            for suffix in (".py", ".pyi"):
                name = f"{stem}_pb2{suffix}"
                shutil.copyfile(py_tmp / "loom" / "v1" / name, messages / name)
                written.append(MESSAGES_DIR / name)
        (messages / "__init__.py").write_text(MESSAGES_INIT, encoding="utf-8", newline="\n")
        written.append(MESSAGES_DIR / "__init__.py")

        grpc = out / GRPC_DIR
        grpc.mkdir(parents=True, exist_ok=True)
        for proto in GRPC_PROTO_FILES:
            # protoc mirrors the proto path (loom/v1/...); flatten it into _grpc/. The
            # generated imports (``from loom.v1 import bridge_pb2``) already point at loom-core.
            name = f"{Path(proto).stem}_pb2_grpc.py"
            shutil.copyfile(grpc_tmp / Path(proto).parent / name, grpc / name)
            written.append(GRPC_DIR / name)
        (grpc / "__init__.py").write_text(GRPC_INIT, encoding="utf-8", newline="\n")
        written.append(GRPC_DIR / "__init__.py")
    return sorted(written)


def check(out: Path) -> list[Path]:
    """Return the files under ``out`` that differ from a fresh generation (sorted)."""
    with tempfile.TemporaryDirectory(prefix="loom-protos-check-") as tmp_name:
        fresh = Path(tmp_name)
        expected = set(generate(fresh))
        current = _managed_files(out)
        stale = {
            rel
            for rel in expected
            if not (out / rel).is_file() or not filecmp.cmp(fresh / rel, out / rel, shallow=False)
        }
        stale |= current - expected
    return sorted(stale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT,
        help="root to write the generated files under (default: the repository root)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 listing the stale files if the generated code is out of date",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if args.check:
        stale = check(out)
        if stale:
            print("stale generated files (run scripts/gen_protos.py):", file=sys.stderr)
            for rel in stale:
                print(f"  {rel.as_posix()}", file=sys.stderr)
            return 1
        print("generated protobuf code is up to date")
        return 0
    for rel in generate(out):
        print(f"wrote {rel.as_posix()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
