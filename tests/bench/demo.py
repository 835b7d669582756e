"""`make bench`: the demo's whole day, as a user runs it (`openvpp demo`).

Each run is a fresh `openvpp demo --devices N` process (its own server,
embedded chain and SQLite); the figures are the demo's own clock and its
readings accepted per second end to end, from its summary.json, with every
check of the run required to pass. Targets: the default 1,000-device day
well under 30 s, a 10,000-device day in at most 120 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

OUT = Path("build/bench/demo.json")
TARGETS = {1_000: 30.0, 10_000: 120.0}


def run_once(devices: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo-out"
        done = subprocess.run(
            [sys.executable, "-m", "openvpp", "demo", "--devices", str(devices), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        summary = json.loads((out / "summary.json").read_text())
    failed = sorted(name for name, ok in summary["checks"].items() if not ok)
    if done.returncode != 0 or failed:
        raise SystemExit(f"demo --devices {devices} failed (exit {done.returncode}; checks {failed})")
    return {
        "seconds": summary["seconds"],
        "readings": summary["readings_accepted"],
        "readings_per_s": summary["readings_accepted"] / summary["seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="runs per fleet size (the median is reported)")
    parser.add_argument("--devices", type=int, nargs="*", default=sorted(TARGETS))
    args = parser.parse_args()
    results: dict[str, object] = {}
    table = Table(title=f"openvpp demo, median of {args.runs} run(s)")
    for column in ("devices", "demo clock", "readings/s end to end", "target", "met"):
        table.add_column(column)
    for devices in args.devices:
        runs = [run_once(devices) for _ in range(args.runs)]
        seconds = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
        rate = statistics.median(float(r["readings_per_s"]) for r in runs)  # type: ignore[arg-type]
        target = TARGETS.get(devices)
        results[str(devices)] = {"runs": runs, "median_seconds": seconds, "median_readings_per_s": rate}
        table.add_row(
            f"{devices:,}",
            f"{seconds:.1f} s",
            f"{rate:,.0f}",
            "" if target is None else f"<= {target:.0f} s",
            "" if target is None else ("yes" if seconds <= target else "NO"),
        )
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
