"""Regenerates the checked-in generated code, or checks it is current:

- python/openvpp/v1 from proto/openvpp/v1 (grpcio-tools, mypy-protobuf);
- rust/openvpp-core/src/pb from proto/openvpp/v1/settlement.proto (prost,
  fed a descriptor set from the same bundled protoc);
- python/openvpp/_layout.py from openvpp-core's layout tables.

    python proto/generate.py            # write the generated code
    python proto/generate.py --check    # exit 1 if regeneration changes anything

Generation is pinned (grpcio-tools, mypy-protobuf in pyproject's dev extra,
prost-build in Cargo.lock) so the committed output is reproducible byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = ROOT / "python" / "openvpp" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
RUST_OUT = ROOT / "rust" / "openvpp-core" / "src" / "pb"
# Only the settlement messages are encoded in Rust (the payout events).
RUST_PROTOS = ["openvpp/v1/settlement.proto"]
LAYOUT_MODULE = ROOT / "python" / "openvpp" / "_layout.py"


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


def generate_rust(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    descriptors = out_dir / "descriptors.bin"
    args = [
        "grpc_tools.protoc",
        *(f"-I{d}" for d in _include_dirs()),
        "--include_imports",
        f"--descriptor_set_out={descriptors}",
        *RUST_PROTOS,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    _codegen("prost", str(descriptors), str(out_dir))
    descriptors.unlink()


def generate_layout(out: Path) -> None:
    text = _codegen("layout")
    ruff = Path(sys.executable).parent / "ruff"
    formatted = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(LAYOUT_MODULE), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    out.write_text(formatted)


def _codegen(*args: str) -> str:
    run = subprocess.run(
        ["cargo", "run", "--quiet", "--package", "openvpp-codegen", "--", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if run.returncode != 0:
        raise SystemExit(f"openvpp-codegen {args[0]} failed:\n{run.stderr}")
    return run.stdout


def _stale(fresh: Path, committed: Path, names: set[str]) -> list[str]:
    return sorted(
        str(committed / name)
        for name in names
        if not (committed / name).exists()
        or not (fresh / name).exists()
        or not filecmp.cmp(fresh / name, committed / name, shallow=False)
    )


def _generated(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "openvpp" / "v1"
        fresh_rust = Path(tmp) / "pb"
        generate_rust(fresh_rust)
        fresh_layout = Path(tmp) / "layout"
        fresh_layout.mkdir()
        generate_layout(fresh_layout / LAYOUT_MODULE.name)
        rust_names = {p.name for p in fresh_rust.iterdir()}
        committed_rust = {p.name for p in RUST_OUT.iterdir()} if RUST_OUT.exists() else set()
        if args.check:
            stale = [
                *_stale(fresh, OUT_PACKAGE, _generated(fresh) | _generated(OUT_PACKAGE)),
                *_stale(fresh_rust, RUST_OUT, rust_names | committed_rust),
                *_stale(fresh_layout, LAYOUT_MODULE.parent, {LAYOUT_MODULE.name}),
            ]
            if stale:
                print("generated code is stale; run `make gen-protos`:", *stale, sep="\n  ")
                return 1
            print(f"generated code is current ({len(_generated(fresh)) + len(rust_names) + 1} files)")
            return 0
        for name in _generated(OUT_PACKAGE):
            (OUT_PACKAGE / name).unlink()
        for name in _generated(fresh):
            shutil.copyfile(fresh / name, OUT_PACKAGE / name)
        RUST_OUT.mkdir(exist_ok=True)
        for name in committed_rust:
            (RUST_OUT / name).unlink()
        for name in rust_names:
            shutil.copyfile(fresh_rust / name, RUST_OUT / name)
        shutil.copyfile(fresh_layout / LAYOUT_MODULE.name, LAYOUT_MODULE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
