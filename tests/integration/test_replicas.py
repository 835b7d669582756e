"""Three replicas on one PostgreSQL and one chain server, as processes:
readings streamed to all three, one replica killed (-9) while settlements
run, its devices failing over to another. Then nothing is lost or paid
twice, the ledger check is clean, and the settlement log is gapless."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from solders.keypair import Keypair

from openvpp.client.channel import credentials
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.bench.latency import Fleet
from tests.bench.routing import _setup
from tests.bench.settlement import configure
from tests.integration.replicas import Replica, Topology, topology

DEVICES, READINGS = 48, 30
pytestmark = pytest.mark.timeout(900)


def _batch(fleet: Fleet, devices: list[int], seq_index: int) -> pb.SubmitReadingsRequest:
    indices = [seq_index * DEVICES + d for d in devices]
    return pb.SubmitReadingsRequest(
        batch_id=f"{devices[0]}:{seq_index}",
        payloads=b"".join(fleet.payloads[i] for i in indices),
        signatures=b"".join(fleet.signatures[i * 64 : (i + 1) * 64] for i in indices),
    )


class Sender:
    """One vendor gateway per replica; on a dead replica it fails over to the
    next, resending every batch not yet answered, in order."""

    def __init__(self, fleet: Fleet, vendor: Path, devices: list[int], hold_at: int | None = None) -> None:
        self.fleet, self.vendor, self.devices = fleet, vendor, devices
        self.answered: dict[str, list[int]] = {}
        self.sent_to: Counter[str] = Counter()
        # Batches from `hold_at` on wait for `resume`: readings are left to fail
        # over however slowly the machine reaches the kill.
        self.hold_at = hold_at
        self.resume = asyncio.Event()

    async def run(self, replicas: list[Replica], start: int, pause: float) -> None:
        pending = [_batch(self.fleet, self.devices, s) for s in range(READINGS)]
        at = start
        while pending:
            replica = replicas[at % len(replicas)]
            if replica.process.poll() is not None:
                at += 1
                continue
            try:
                await self._stream(replica, pending, pause)
            except grpc.aio.AioRpcError:
                at += 1
                await asyncio.sleep(0.2)

    async def _stream(self, replica: Replica, pending: list[pb.SubmitReadingsRequest], pause: float) -> None:
        async def requests() -> AsyncIterator[pb.SubmitReadingsRequest]:
            for request in list(pending):
                if self.hold_at is not None and int(request.batch_id.split(":")[1]) >= self.hold_at:
                    await self.resume.wait()
                self.sent_to[replica.name] += 1
                yield request
                await asyncio.sleep(pause)

        async with grpc.aio.secure_channel(replica.target, credentials(self.vendor)) as channel:
            stub = settlement_pb2_grpc.SettlementServiceStub(channel)
            async for reply in stub.SubmitReadings(requests()):
                assert not reply.HasField("error"), reply.error
                self.answered[reply.batch_id] = list(reply.verdicts)
                pending[:] = [p for p in pending if p.batch_id != reply.batch_id]


async def _utility_events(target: str, utility: Path) -> list[pb.SettlementEvent]:
    async with grpc.aio.secure_channel(target, credentials(utility)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        request = pb.StreamSettlementsRequest(after_cursor=0, until_caught_up=True)
        return [e async for page in stub.StreamSettlements(request) for e in page.events]


async def _check(target: str, utility: Path) -> pb.CheckLedgerResponse:
    async with grpc.aio.secure_channel(target, credentials(utility)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        reply: pb.CheckLedgerResponse = await stub.CheckLedger(pb.CheckLedgerRequest())
        return reply


async def _scenario(world: Topology, tmp: Path) -> None:
    first, victim, survivor = world.replicas
    keys = [Keypair() for _ in range(DEVICES)]
    vendor, _ = await _setup(first.target, world.data, DEVICES, tmp, keys)
    utility = world.data / "partners" / "pge"
    await configure(first.target, utility)
    fleet = Fleet(keys, READINGS)
    senders = [Sender(fleet, vendor, list(range(r, DEVICES, 3)), READINGS // 2 if r == 1 else None) for r in range(3)]
    tasks = [asyncio.create_task(s.run(world.replicas, r, 0.1)) for r, s in enumerate(senders)]
    # Kill the middle replica once payouts are being made and it has taken readings.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = await _utility_events(survivor.target, utility)
        if any(e.HasField("payout_confirmed") for e in events) and senders[1].answered:
            break
        await asyncio.sleep(0.2)
    world.kill(victim)
    senders[1].resume.set()
    await asyncio.gather(*tasks)
    assert senders[1].sent_to[survivor.name] + senders[1].sent_to[first.name] > 0, "the victim's devices failed over"

    # Every reading answered, each accepted once (a resend of a committed batch is a duplicate).
    for sender in senders:
        assert len(sender.answered) == READINGS
    verdicts = Counter(v for s in senders for answer in s.answered.values() for v in answer)
    assert set(verdicts) <= {pb.READING_VERDICT_ACCEPTED, pb.READING_VERDICT_DUPLICATE}, verdicts

    # Settled to the end by the survivors, the dead replica's leases taken over:
    # every device's last reading credited (events first, then the books).
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        events = await _utility_events(first.target, utility)
        done = {e.credit.der_id for e in events if e.HasField("credit") and e.credit.seq_last == READINGS}
        check = await _check(survivor.target, utility)
        if len(done) == DEVICES and check.ok and check.tokens[0].pending_base_units == 0:
            break
        await asyncio.sleep(0.5)
    check = await _check(survivor.target, utility)
    assert check.ok, check
    (token,) = check.tokens
    assert token.pending_base_units == 0
    assert token.credited_base_units == token.paid_base_units == token.supply_base_units > 0
    assert not token.holder_mismatches

    events = await _utility_events(first.target, utility)
    # Gapless and each cursor once, read through another replica.
    assert [e.cursor for e in events] == list(range(1, len(events) + 1))
    credits = [e.credit for e in events if e.HasField("credit")]
    assert len({c.credit_id for c in credits}) == len(credits)
    assert sum(c.amount_base_units for c in credits) == token.credited_base_units
    # Each device's readings credited once: disjoint ranges up to its last reading.
    by_device: dict[str, list[tuple[int, int]]] = {}
    for c in credits:
        by_device.setdefault(c.der_id, []).append((c.seq_first, c.seq_last))
    assert len(by_device) == DEVICES
    for ranges in by_device.values():
        ranges.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), ranges
        assert ranges[-1][1] == READINGS
    # Each payout sent once and confirmed once; each paid credit in exactly one.
    sent = Counter(e.payout_sent.payout_id for e in events if e.HasField("payout_sent"))
    confirmed = Counter(e.payout_confirmed.payout_id for e in events if e.HasField("payout_confirmed"))
    assert set(sent.values()) == {1}
    assert set(confirmed.values()) == {1}
    assert set(sent) == set(confirmed)
    paid_credits = [c for e in events if e.HasField("payout_sent") for c in e.payout_sent.credit_ids]
    assert len(paid_credits) == len(set(paid_credits))
    assert set(paid_credits) == {c.credit_id for c in credits if c.amount_base_units}


def test_three_replicas_one_killed_lose_nothing_and_pay_once(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL; SQLite serves one process")
    with topology(tmp_path, database_url, 3, "--settle-interval", "0.5") as world:
        asyncio.run(_scenario(world, tmp_path))
