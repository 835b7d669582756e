"""`make bench`: Settlement against a real `openvpp serve` process over mutual TLS, into SQLite.

Ingestion: signed readings streamed through SubmitReadings in batches, each
acknowledged only once durably stored. The yardstick, timed in the same run
on the same readings, is raw single-core ed25519 verification of them in
the Rust core (one thread): ingestion does that and everything else (gRPC,
TLS, sequence and counter rules, the hash chain, SQLite), so its rate as a
fraction of the yardstick is the cost of the rest. Targets: >= 50,000
readings/s and >= 0.60x the single-core verification rate.

Payouts: a Settle over every enrolled device's new readings, once to create
every wallet's token account, then three times in steady state (one more
interval per device each time), reported as the median. Each call
first credits them (prices readings into ledger credits), then pays: nets,
builds, stores, sends and confirms every payout transaction on the embedded
chain and records it. The payout rate is timed by the server, from the
settlement's `created_at` (paying began) to its `completed_at` (when its
last transaction was seen final on chain; recording the outcomes then
commits with that time). Target: >= 20,000 payouts/s. The whole call,
crediting and recording included, is reported beside it from the client's
clock.
The yardstick is building and signing the same payouts in the Rust core alone.

Memory: the server's resident set is sampled after each ingestion round;
the report shows its growth over the sustained rounds after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from openvpp import native
from openvpp.client.channel import credentials
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.bench.routing import _setup
from tests.bench.served import openvpp_serve
from tests.integration.settlement_world import flat_tariff

OUT = Path("build/bench/settlement.json")
STEP = 900


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sign_rounds(
    keys: list[Keypair], per_device: int, rounds: int, start: int, first_seq: int = 1
) -> list[list[tuple[bytes, bytes]]]:
    """Per round, every device's next `per_device` readings, interleaved by device."""
    out = []
    for r in range(rounds):
        payloads, signatures = [], []
        for i in range(per_device):
            seq = first_seq + r * per_device + i
            for d, key in enumerate(keys):
                payload = native.READING.pack(
                    bytes(key.pubkey()), seq, start + seq * STEP, STEP, seq * 10, seq * (100 + d % 50), 0
                )
                payloads.append(payload)
                signatures.append(bytes(key.sign_message(native.READING_DOMAIN + payload)))
        out.append(list(zip(payloads, signatures, strict=True)))
    return out


def batches(readings: list[tuple[bytes, bytes]], size: int) -> list[pb.SubmitReadingsRequest]:
    return [
        pb.SubmitReadingsRequest(
            batch_id=f"b{i}",
            payloads=b"".join(p for p, _ in readings[i : i + size]),
            signatures=b"".join(s for _, s in readings[i : i + size]),
        )
        for i in range(0, len(readings), size)
    ]


def yardstick(readings: list[tuple[bytes, bytes]]) -> float:
    items = [native.SignedItem(p[:32], s, p) for p, s in readings]
    native.clear_key_cache()
    start = time.perf_counter()
    verdicts = native.verify_ed25519(native.READING_DOMAIN, items, threads=1)
    elapsed = time.perf_counter() - start
    assert all(v is native.SignatureVerdict.VALID for v in verdicts)
    return len(items) / elapsed


async def ingest(
    stub: settlement_pb2_grpc.SettlementServiceAsyncStub, streams: list[list[pb.SubmitReadingsRequest]]
) -> float:
    """Readings/s over concurrent streams (each device's readings in one stream, in order)."""

    async def one(requests: list[pb.SubmitReadingsRequest]) -> int:
        async def source() -> AsyncIterator[pb.SubmitReadingsRequest]:
            for r in requests:
                yield r

        accepted = 0
        async for reply in stub.SubmitReadings(source()):
            assert not reply.HasField("error"), reply.error
            accepted += reply.accepted
        return accepted

    total = sum(len(r.payloads) // 72 for requests in streams for r in requests)
    start = time.perf_counter()
    accepted = sum(await asyncio.gather(*(one(r) for r in streams)))
    elapsed = time.perf_counter() - start
    assert accepted == total, (accepted, total)
    return total / elapsed


async def configure(target: str, utility: Path) -> str:
    async with grpc.aio.secure_channel(target, credentials(utility)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await stub.CreateUseCaseToken(
                pb.CreateUseCaseTokenRequest(
                    program_id="pge/nem",
                    name="PG&E Solar",
                    symbol="SOLAR",
                    unit=pb.TOKEN_UNIT_USD,
                    decimals=6,
                    redemption_value_base_units=1_000_000,
                )
            )
        ).token
        await stub.FundReserve(pb.FundReserveRequest(mint=token.mint, amount_base_units=500_000_000_000))
        await stub.PublishTariff(
            pb.PublishTariffRequest(
                code="flat", time_zone="America/Los_Angeles", effective_from="2026-01-01", periods=flat_tariff()
            )
        )
        await stub.ConfigureProgramSettlement(
            pb.ConfigureProgramSettlementRequest(
                program_id="pge/nem", kind=pb.CREDIT_KIND_NEM_EXPORT, mint=token.mint, tariff_id="pge/flat"
            )
        )
    return str(token.mint)


async def settle(target: str, utility: Path) -> tuple[float, float, pb.Settlement]:
    """(payouts/s while paying, payouts/s over the whole call, the settlement)."""
    async with grpc.aio.secure_channel(target, credentials(utility)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        start = time.perf_counter()
        reply = await stub.Settle(pb.SettleRequest(program_ids=["pge/nem"]), timeout=600)
        elapsed = time.perf_counter() - start
    (settled,) = reply.settlements
    assert settled.state == pb.SETTLEMENT_STATE_COMPLETED, settled
    paying = (settled.completed_at.ToNanoseconds() - settled.created_at.ToNanoseconds()) / 1e9
    return settled.payouts / paying, settled.payouts / elapsed, settled


def build_yardstick(keys: list[Keypair], mint: str, decimals: int = 6) -> float:
    import base58

    mint_key = base58.b58decode(mint)
    intents = b"".join(
        native.PaymentIntent(bytes(k.pubkey()), mint_key, 1_000 + i, True).pack() for i, k in enumerate(keys)
    )
    table = native.MintPayment(mint_key, native.TokenProgram.TOKEN_2022, decimals, native.PaymentMode.MINT_TO).pack()
    payer, authority = Keypair(), Keypair()
    params = native.SettlementParams(bytes(payer), bytes(authority), bytes(32), memo=b"openvpp/settlement/v1 bench")
    start = time.perf_counter()
    native.build_settlement(intents, table, params)
    return len(keys) / (time.perf_counter() - start)


async def measure(target: str, data: Path, tmp: Path, server_pid: int, args: argparse.Namespace) -> dict[str, object]:
    keys = [Keypair() for _ in range(args.devices)]
    vendor, _ = await _setup(target, data, args.devices, tmp, keys)
    utility = data / "partners" / "pge"
    mint = await configure(target, utility)
    start = (int(time.time()) // STEP - args.rounds * args.per_device - args.settlements - 2) * STEP
    rounds = sign_rounds(keys, args.per_device, args.rounds, start)
    raw = [yardstick(r) for r in rounds[: min(3, len(rounds))]]
    rates, rss = [], []
    async with grpc.aio.secure_channel(target, credentials(vendor)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        for readings in rounds:
            # Devices are split between streams by key, so each device's readings stay in order.
            split = [[x for x in readings if x[0][0] % args.streams == k] for k in range(args.streams)]
            rates.append(await ingest(stub, [batches(part, args.batch) for part in split]))
            rss.append(rss_kib(server_pid))
    first_per_s, _, first = await settle(target, utility)
    # Steady state: every wallet's token account exists. Each settlement pays
    # one more interval per device; the median of several is reported, as one
    # settlement is a single sample of a second or so on a shared machine.
    steady: list[tuple[float, float, pb.Settlement]] = []
    for k in range(args.settlements):
        (more,) = sign_rounds(keys, 1, 1, start, first_seq=args.rounds * args.per_device + 1 + k)
        async with grpc.aio.secure_channel(target, credentials(vendor)) as channel:
            stub = settlement_pb2_grpc.SettlementServiceStub(channel)
            await ingest(stub, [batches(more, args.batch)])
        steady.append(await settle(target, utility))
    settled = steady[0][2]
    assert all(s.payouts == settled.payouts for _, _, s in steady)
    return {
        "first_payouts_per_s": first_per_s,
        "first_payout_transactions": first.transactions,
        "devices": args.devices,
        "readings": sum(len(r) for r in rounds),
        "batch": args.batch,
        "streams": args.streams,
        "ingest_per_s": statistics.median(rates),
        "ingest_rounds_per_s": rates,
        "verify_single_core_per_s": statistics.median(raw),
        "ingest_vs_single_core_verify": statistics.median(rates) / statistics.median(raw),
        "payouts": settled.payouts,
        "payout_transactions": settled.transactions,
        "payouts_per_s": statistics.median(x[0] for x in steady),
        "payouts_per_s_settlements": [x[0] for x in steady],
        "settle_call_payouts_per_s": statistics.median(x[1] for x in steady),
        "settle_call_credits": settled.credits,
        "build_only_payouts_per_s": build_yardstick(keys, mint),
        "server_rss_kib": rss,
        "rss_growth_after_first_round": (rss[-1] - rss[0]) / rss[0] if rss and rss[0] else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--per-device", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--settlements", type=int, default=3, help="steady-state settlements timed (median)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.per_device, args.rounds, args.batch = 1000, 4, 3, 2000
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        openvpp_serve(
            Path(tmp_name), "--probe-private-addresses", "--settle-interval", "0", "--anchor-interval", "0"
        ) as served,
    ):
        result = asyncio.run(measure(served.target, served.data, Path(tmp_name), served.pid, args))
    report(result)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT}")
    return 0


def report(r: dict[str, object]) -> None:
    def f(key: str) -> float:
        return float(r[key])  # type: ignore[arg-type]

    table = Table(title=f"Settlement over mTLS into SQLite ({r['devices']:,} devices, {r['readings']:,} readings)")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    table.add_row(
        "readings accepted and stored",
        f"{f('ingest_per_s'):,.0f}/s",
        ">= 50,000/s",
        "yes" if f("ingest_per_s") >= 50_000 else "NO",
    )
    table.add_row(
        "  vs raw single-core verification",
        f"{f('ingest_vs_single_core_verify'):.2f}x ({f('verify_single_core_per_s'):,.0f}/s)",
        ">= 0.60x",
        "yes" if f("ingest_vs_single_core_verify") >= 0.6 else "NO",
    )
    each = r["payouts_per_s_settlements"]
    assert isinstance(each, list)
    table.add_row(
        f"payouts confirmed ({r['payouts']:,} in {r['payout_transactions']:,} transactions; median of "
        + ", ".join(f"{x:,.0f}" for x in each)
        + ")",
        f"{f('payouts_per_s'):,.0f}/s",
        ">= 20,000/s",
        "yes" if f("payouts_per_s") >= 20_000 else "NO",
    )
    table.add_row(
        f"  whole Settle call, crediting {r['settle_call_credits']:,} credits first",
        f"{f('settle_call_payouts_per_s'):,.0f}/s",
        "",
        "",
    )
    table.add_row(
        f"  first payouts, creating token accounts ({r['first_payout_transactions']:,} transactions)",
        f"{f('first_payouts_per_s'):,.0f}/s",
        "",
        "",
    )
    table.add_row("  build and sign only (yardstick)", f"{f('build_only_payouts_per_s'):,.0f}/s", "", "")
    rss = r["server_rss_kib"]
    assert isinstance(rss, list)
    table.add_row(
        "server RSS over rounds",
        " → ".join(f"{x / 1024:.0f}" for x in rss) + " MiB",
        "bounded",
        f"{f('rss_growth_after_first_round'):+.0%}",
    )
    Console().print(table)


if __name__ == "__main__":
    raise SystemExit(main())
