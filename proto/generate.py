"""Regenerates python/openvpp/v1 from proto/openvpp/v1, or checks it is current.

    python proto/generate.py            # write the generated modules
    python proto/generate.py --check    # exit 1 if regeneration changes anything

Generation is pinned (grpcio-tools, mypy-protobuf in pyproject's dev extra) so
the committed output is reproducible byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = ROOT / "python" / "openvpp" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _include_dirs() -> list[str]:
    well_known = str(resources.files("grpc_tools") / "_proto")
    # google/rpc/status.proto ships with googleapis-common-protos.
    import google.rpc

    googleapis = str(Path(next(iter(google.rpc.__path__))).parent.parent)
    return [str(PROTO_DIR), well_known, googleapis]


def generate(out_root: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "openvpp" / "v1").glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        *(f"-I{d}" for d in _include_dirs()),
        # The plugins live beside this interpreter, which need not be on PATH.
        f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _generated(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "openvpp" / "v1"
        if args.check:
            stale = sorted(
                name
                for name in _generated(fresh) | _generated(OUT_PACKAGE)
                if not (OUT_PACKAGE / name).exists()
                or not (fresh / name).exists()
                or not filecmp.cmp(fresh / name, OUT_PACKAGE / name, shallow=False)
            )
            if stale:
                print("generated protobuf code is stale; run `make gen-protos`:", *stale, sep="\n  ")
                return 1
            print(f"generated protobuf code is current ({len(_generated(fresh))} files)")
            return 0
        for name in _generated(OUT_PACKAGE):
            (OUT_PACKAGE / name).unlink()
        for name in _generated(fresh):
            shutil.copyfile(fresh / name, OUT_PACKAGE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
