"""Reading ingestion against a real database: verdicts, durable signed bytes,
per-device state across batches, and the tamper-evident chain check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from solders.keypair import Keypair
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.client.errors import describe_status
from openvpp.integration import ca
from openvpp.kernel.clock import FakeClock
from openvpp.server import app as server_app
from openvpp.settlement.ingest.ingestor import Ingestor
from openvpp.store import schema
from openvpp.v1 import common_pb2, registry_pb2, registry_pb2_grpc, settlement_pb2, settlement_pb2_grpc
from tests import factories
from tests.integration.mtls import Fabric, registry

V = native.ReadingVerdict
START = 1_780_000_200  # a 15-minute boundary
STEP = 900
OPERATOR = ca.Identity(ca.Role.OPERATOR, "operator", 0)


def reading(device: Keypair, seq: int, end: int, imported: int, exported: int, flags: int = 0) -> tuple[bytes, bytes]:
    payload = native.READING.pack(bytes(device.pubkey()), seq, end, STEP, imported, exported, flags)
    return payload, bytes(device.sign_message(native.READING_DOMAIN + payload))


def batch(items: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    return b"".join(p for p, _ in items), b"".join(s for _, s in items)


async def registered(app: server_app.App, *labels: str) -> list[Keypair]:
    keys = [Keypair() for _ in labels]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for key, label in zip(keys, labels, strict=True):
            await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(key, label)))
    return keys


async def device_number(conn: AsyncConnection, device: Keypair) -> int:
    """Readings are keyed by the device's registry number."""
    d = schema.devices
    return int((await conn.execute(select(d.c.registered_seq).where(d.c.der_id == str(device.pubkey())))).scalar_one())


def ingestor(app: server_app.App) -> Ingestor:
    return Ingestor(app.db, clock_us=FakeClock.at(START + 10 * STEP))


async def test_each_verdict_and_state_carried_across_batches(app: server_app.App) -> None:
    alice, bob = await registered(app, "inv-a", "inv-b")
    stranger = Keypair()
    ingest = ingestor(app)
    first = [
        reading(alice, 1, START, 100, 1_000),
        reading(alice, 2, START + STEP, 150, 1_500),
        reading(bob, 7, START, 0, 0),
    ]
    outcome = await ingest.submit(OPERATOR, *batch(first))
    assert list(outcome.verdicts) == [V.ACCEPTED, V.ACCEPTED, V.ACCEPTED]
    forged = reading(alice, 3, START + 2 * STEP, 200, 2_000)
    second = [
        first[1],  # an exact replay
        reading(alice, 2, START + STEP, 151, 1_500),  # same seq, other bytes
        (forged[0], bytes(64)),  # a bad signature
        reading(alice, 3, START + 2 * STEP, 100, 2_000),  # import counter going backwards
        reading(stranger, 1, START, 0, 0),  # nobody registered this key
        reading(bob, 10, START + 4 * STEP, 300, 0),  # seqs 8 and 9 missing
    ]
    outcome = await ingest.submit(OPERATOR, *batch(second))
    assert [V(v) for v in outcome.verdicts] == [
        V.DUPLICATE,
        V.CONFLICT,
        V.BAD_SIGNATURE,
        V.COUNTER_DECREASED,
        V.UNKNOWN_DEVICE,
        V.SEQ_GAP,
    ]
    assert (outcome.accepted, outcome.rejected) == (1, 5)
    async with app.db.read() as conn:
        r, d = schema.readings, schema.devices
        rows = (await conn.execute(select(d.c.der_id, r).join(d, d.c.registered_seq == r.c.device))).all()
        state = (
            await conn.execute(
                select(schema.reading_devices).where(schema.reading_devices.c.der_id == str(alice.pubkey()))
            )
        ).one()
    assert len(rows) == 4
    stored = {(r.der_id, r.seq): r for r in rows}
    assert stored[(str(alice.pubkey()), 2)].payload == first[1][0]
    assert stored[(str(alice.pubkey()), 2)].signature == first[1][1]
    assert (stored[(str(alice.pubkey()), 2)].import_wh, stored[(str(alice.pubkey()), 2)].export_wh) == (50, 500)
    gap = stored[(str(bob.pubkey()), 10)]
    assert (gap.missing, gap.import_wh, gap.flags & native.ReadingFlag.GAP) == (2, 300, native.ReadingFlag.GAP)
    assert (state.last_seq, state.import_wh, state.export_wh, state.stored) == (2, 150, 1_500, 2)
    assert (await ingest.check()).ok


async def test_a_vendor_cannot_submit_for_another_vendors_device(app: server_app.App) -> None:
    (device,) = await registered(app, "inv-a")
    outcome = await ingestor(app).submit(
        ca.Identity(ca.Role.DEVICE_VENDOR, "voltbox", 1), *batch([reading(device, 1, START, 0, 0)])
    )
    assert list(outcome.verdicts) == [V.UNKNOWN_DEVICE]
    own = await ingestor(app).submit(
        ca.Identity(ca.Role.DEVICE_VENDOR, "solarco", 1), *batch([reading(device, 1, START, 0, 0)])
    )
    assert list(own.verdicts) == [V.ACCEPTED]


async def test_two_writers_on_one_database_never_fork_a_device(app: server_app.App) -> None:
    """Each ingestor caches device state; one that is stale (another replica
    wrote since) must still answer from the database's truth."""
    (device,) = await registered(app, "inv-a")
    here, there = ingestor(app), ingestor(app)
    r = [reading(device, s, START + (s - 1) * STEP, s * 10, s * 100) for s in range(1, 6)]
    assert list((await here.submit(OPERATOR, *batch(r[0:2]))).verdicts) == [V.ACCEPTED, V.ACCEPTED]
    assert list((await there.submit(OPERATOR, *batch(r[2:3]))).verdicts) == [V.ACCEPTED]
    # `here` still believes seq 2 is the last: the replay must be a duplicate, not a second seq 3.
    assert list((await here.submit(OPERATOR, *batch(r[2:3]))).verdicts) == [V.DUPLICATE]
    assert list((await there.submit(OPERATOR, *batch(r[3:4]))).verdicts) == [V.ACCEPTED]
    # Stale by one reading: seq 5 is in order, not a gap to estimate across.
    outcome = await here.submit(OPERATOR, *batch(r[4:5]))
    assert (list(outcome.verdicts), outcome.flags) == ([V.ACCEPTED], b"\x00")
    check = await here.check()
    assert (check.ok, check.readings) == (True, 5)
    async with app.db.read() as conn:
        state = (await conn.execute(select(schema.reading_devices))).one()
    assert (state.last_seq, state.stored, state.import_wh) == (5, 5, 50)


async def test_batches_sharing_one_commit_see_each_others_readings(app: server_app.App) -> None:
    """Batches queued together are stored in one transaction: each must still
    be judged against the state the batches before it left."""
    alice, bob = await registered(app, "inv-a", "inv-b")
    ingest = ingestor(app)
    r = [reading(alice, s, START + (s - 1) * STEP, s * 10, s * 100) for s in range(1, 5)]
    batches = [
        [r[0], reading(bob, 1, START, 0, 0)],
        [r[1], r[0]],  # seq 2 follows the batch before; seq 1 is now a replay
        [reading(alice, 2, START + STEP, 21, 200)],  # seq 2 with other bytes
        [r[3], reading(bob, 1, START, 0, 1)],  # alice skips seq 3; bob's seq 1 conflicts
    ]
    verified = [await ingest.verify(*batch(b)) for b in batches]
    # Queued back to back, before the committer runs: one group, one transaction.
    outcomes = await asyncio.gather(*(ingest.enqueue(OPERATOR, v, f"b{i}") for i, v in enumerate(verified)))
    assert [[V(v) for v in o.verdicts] for o in outcomes] == [
        [V.ACCEPTED, V.ACCEPTED],
        [V.ACCEPTED, V.DUPLICATE],
        [V.CONFLICT],
        [V.SEQ_GAP, V.CONFLICT],
    ]
    async with app.db.read() as conn:
        refs = [row.batch_ref for row in await conn.execute(select(schema.reading_batches))]
        state = (
            await conn.execute(
                select(schema.reading_devices).where(schema.reading_devices.c.der_id == str(alice.pubkey()))
            )
        ).one()
    assert sorted(refs) == ["b0", "b1", "b2", "b3"]
    assert (state.last_seq, state.import_wh) == (4, 40)
    check = await ingest.check()
    assert (check.ok, check.readings) == (True, 4)  # alice 1, 2, 4 and bob 1


async def test_a_device_suspended_after_its_state_is_cached_is_refused(app: server_app.App) -> None:
    (device,) = await registered(app, "inv-a")
    ingest = ingestor(app)
    assert list((await ingest.submit(OPERATOR, *batch([reading(device, 1, START, 0, 0)]))).verdicts) == [V.ACCEPTED]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await registry_pb2_grpc.RegistryServiceStub(channel).SetDeviceStatus(
            registry_pb2.SetDeviceStatusRequest(
                der_id=str(device.pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="meter swap"
            )
        )
    outcome = await ingest.submit(OPERATOR, *batch([reading(device, 2, START + STEP, 0, 0)]))
    assert list(outcome.verdicts) == [V.DEVICE_NOT_ACTIVE]


async def test_malformed_batches_are_refused_whole_and_nothing_is_written(app: server_app.App) -> None:
    (device,) = await registered(app, "inv-a")
    payload, signature = reading(device, 1, START, 0, 0)
    ingest = Ingestor(app.db, max_batch=2, clock_us=FakeClock.at(START))
    with pytest.raises(errors.InvalidArgument):
        await ingest.submit(OPERATOR, payload[:71], signature)
    with pytest.raises(errors.InvalidArgument):
        await ingest.submit(OPERATOR, payload, signature[:63])
    with pytest.raises(errors.ResourceExhausted):
        await ingest.submit(OPERATOR, payload * 3, signature * 3)
    async with app.db.read() as conn:
        assert (await conn.execute(select(schema.readings))).first() is None


async def test_the_check_finds_a_tampered_reading_and_a_broken_link(app: server_app.App) -> None:
    (device,) = await registered(app, "inv-a")
    ingest = ingestor(app)
    await ingest.submit(
        OPERATOR, *batch([reading(device, s, START + (s - 1) * STEP, s * 10, s * 100) for s in range(1, 6)])
    )
    assert (await ingest.check()).readings == 5
    tampered = bytearray(reading(device, 3, START + 2 * STEP, 30, 100_000)[0])
    async with app.db.write() as conn:
        await conn.execute(
            update(schema.readings)
            .where(schema.readings.c.device == await device_number(conn, device), schema.readings.c.seq == 3)
            .values(payload=bytes(tampered))
        )
    check = await ingest.check()
    assert check.bad_signatures == [(str(device.pubkey()), 3)]
    assert (str(device.pubkey()), 3) in check.broken_links


async def test_submit_readings_streams_one_verdict_per_reading_and_survives_a_malformed_batch(
    fabric: Fabric,
) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    device = Keypair()
    async with fabric.channel(vendor) as channel:
        await registry(channel).RegisterDevice(
            registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(device, "inv-1"))
        )
        now = int(time.time()) // STEP * STEP
        good = [reading(device, 1, now - STEP, 10, 20), reading(device, 2, now, 30, 60)]

        async def batches() -> AsyncIterator[settlement_pb2.SubmitReadingsRequest]:
            yield settlement_pb2.SubmitReadingsRequest(
                batch_id="b1", payloads=batch(good)[0], signatures=batch(good)[1]
            )
            yield settlement_pb2.SubmitReadingsRequest(batch_id="b2", payloads=b"\0" * 71, signatures=b"")
            yield settlement_pb2.SubmitReadingsRequest(batch_id="b3", payloads=good[1][0], signatures=good[1][1])

        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        answers = [r async for r in stub.SubmitReadings(batches())]
    assert [a.batch_id for a in answers] == ["b1", "b2", "b3"]
    assert list(answers[0].verdicts) == [settlement_pb2.READING_VERDICT_ACCEPTED] * 2
    assert (answers[0].accepted, answers[0].rejected) == (2, 0)
    assert describe_status(answers[1].error).reason == "MALFORMED_BATCH"
    assert list(answers[2].verdicts) == [settlement_pb2.READING_VERDICT_DUPLICATE]
    assert answers[0].flags[0] & native.ReadingFlag.BASELINE
