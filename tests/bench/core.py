"""`make bench`: the Rust core against the best Python paths, in one process.

"cold keys" clears the verifier's cache of decompressed device keys before
each run; the other Rust rows are the steady state, where every device has
reported before (as each does every interval).

Writes build/bench/core.json and prints a table. Targets (2-core machine):
signatures >= 3x a solders loop on one core, 2 threads >= 1.8x one thread;
reading rules >= 4x vectorised NumPy; settlement building >= 2x solders +
PyNaCl and >= 15x solana-py's spl.token helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from openvpp import native
from tests.bench import python_paths as py
from tests.bench.harness import Comparison, run_rounds
from tests.reference import readings as ref_readings

OUT = Path("build/bench/core.json")


def _signature_round(rounds: int, n: int, seed: int, bad_percent: int) -> list[Comparison]:
    items = py.signed_readings(n, seed, bad_percent)
    solders_items = py.as_solders(items)

    def rust(threads: int, cold: bool = False) -> list[bool]:
        if cold:
            native.clear_key_cache()
        verdicts = native.verify_ed25519(native.READING_DOMAIN, items, threads=threads)
        return [v is native.SignatureVerdict.VALID for v in verdicts]

    cands = {
        "solders loop": lambda: py.verify_with_solders(solders_items),
        "rust 1 thread, cold keys": lambda: rust(1, cold=True),
        "rust 1 thread": lambda: rust(1),
        "rust 2 threads": lambda: rust(2),
    }
    label = f"signatures, {bad_percent}% bad (n={n})"
    group = [
        Comparison(label, "rust 1 thread, cold keys", "solders loop", 3.0),
        Comparison(label, "rust 1 thread", "solders loop", 3.0),
        Comparison(label, "rust 2 threads", "rust 1 thread", 1.8),
    ]

    def check(outputs: dict[str, Any]) -> None:
        first = outputs["solders loop"]
        assert all(o == first for o in outputs.values()), "verdicts differ"
        assert first.count(False) == n * bad_percent // 100

    run_rounds(cands, group, rounds, check)
    return group


def signature_bench(rounds: int, n: int, seed: int) -> list[Comparison]:
    return [c for bad in (0, 1, 10) for c in _signature_round(rounds, n, seed, bad)]


def readings_bench(rounds: int, n: int, seed: int) -> list[Comparison]:
    batch = py.reading_batch(n, seed)
    ok = b"\x01" * n

    def rust() -> tuple[bytes, bytes, bytes]:
        r = native.apply_reading_rules(batch.payloads, ok, batch.devices, b"", **batch.params)
        return r.verdicts, r.import_wh.tobytes(), r.export_wh.tobytes()

    cands = {"numpy": lambda: py.numpy_rules(batch), "rust": rust}
    comparison = Comparison(f"reading rules, no signatures (n={n})", "rust", "numpy", 4.0)

    def check(outputs: dict[str, Any]) -> None:
        assert outputs["rust"] == outputs["numpy"], "reading outcomes differ"

    run_rounds(cands, [comparison], rounds, check)
    # The numbers must also be right, not just equal: spot-check with the reference.
    verdicts, _, _ = rust()
    sample = list(range(0, n, max(1, n // 50)))
    expected, _ = ref_readings.apply(
        [batch.payloads[i * 72 : (i + 1) * 72] for i in sample],
        None,
        [True] * len(sample),
        [ref_readings.Device.decode(batch.devices[j * 88 : (j + 1) * 88]) for j in range(n)],
        {},
        batch.params["now"],
        batch.params["max_future_skew_s"],
        batch.params["max_age_s"],
    )
    assert [ref_readings.VERDICTS[verdicts[i]] for i in sample] == [o.verdict for o in expected]
    return [comparison]


def settlement_bench(rounds: int, n: int, seed: int) -> list[Comparison]:
    case = py.settlement_case(n, seed)

    def rust() -> list[bytes]:
        return native.build_settlement(case.intents_packed, case.mints_packed, case.native_params).transactions

    cands = {
        "rust": rust,
        "solders + PyNaCl": lambda: py.build_with_solders_nacl(case),
        "solana-py spl.token": lambda: py.build_with_spl_helpers(case),
    }
    group = [
        Comparison(f"settlement build+sign (n={n})", "rust", "solders + PyNaCl", 2.0),
        Comparison(f"settlement build+sign (n={n})", "rust", "solana-py spl.token", 15.0),
    ]

    def check(outputs: dict[str, Any]) -> None:
        assert outputs["rust"] == outputs["solders + PyNaCl"] == outputs["solana-py spl.token"], "transactions differ"

    run_rounds(cands, group, rounds, check)
    return group


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds (a smoke run)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    scale = 8 if args.quick else 1
    comparisons = (
        signature_bench(rounds, 2048 // scale, 1)
        + readings_bench(rounds, 20_000 // scale, 2)
        + settlement_bench(rounds, 600 // scale, 3)
    )
    table = Table(title=f"openvpp-core vs Python ({rounds} interleaved rounds, median of per-round ratios)")
    for column in ("benchmark", "candidate", "yardstick", "ratio", "target", ""):
        table.add_column(column)
    for c in comparisons:
        table.add_row(
            c.name, c.candidate, c.yardstick, f"{c.median:.2f}x", f">= {c.target:g}x", "met" if c.met else "NOT MET"
        )
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "rounds": rounds,
                "results": [
                    {
                        "benchmark": c.name,
                        "candidate": c.candidate,
                        "yardstick": c.yardstick,
                        "median_ratio": round(c.median, 3),
                        "min_ratio": round(min(c.ratios), 3),
                        "max_ratio": round(max(c.ratios), 3),
                        "stdev": round(statistics.pstdev(c.ratios), 3),
                        "target": c.target,
                        "met": c.met,
                    }
                    for c in comparisons
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
