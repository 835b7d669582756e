"""The composition root of the on-chain side: chain backend, keys, outbox,
stablecoin, tokens, redemptions, settlement and registry anchoring, built in
the order recovery needs (every outbox handler is registered before
in-flight work is resumed). Only this module (with `app`) reads `Settings`;
every service gets typed values and the one clock."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from openvpp.billing.autopay import Autopay
from openvpp.billing.bills import Bills
from openvpp.billing.payrequest import PaymentRequests
from openvpp.billing.plans import BillingPlans
from openvpp.billing.tokenpay import TokenPayments
from openvpp.chain.base import Chain, Commitment
from openvpp.chain.embedded import EmbeddedChain
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Outbox
from openvpp.chain.rpc import RpcChain
from openvpp.config import Settings
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.registry.anchor import Anchorer
from openvpp.registry.service import Registry
from openvpp.routing.changes import RouteChanges
from openvpp.settlement.events import EventLog
from openvpp.settlement.ledger.journal import Ledger
from openvpp.settlement.ledger.statement import Statements
from openvpp.settlement.payouts.payer import Payouts
from openvpp.settlement.pipeline import Pipeline
from openvpp.settlement.pricing.dr import DemandResponse
from openvpp.settlement.pricing.oracles import Oracles
from openvpp.settlement.pricing.pricer import Pricer
from openvpp.settlement.programs import ProgramSettlements
from openvpp.settlement.services import SettlementServices
from openvpp.settlement.tokens import extensions
from openvpp.settlement.tokens.faucet import DevelopmentFaucet
from openvpp.settlement.tokens.redemption import Redemptions
from openvpp.settlement.tokens.stablecoin import open_stablecoin
from openvpp.settlement.tokens.usecase import UseCaseTokens
from openvpp.store.database import Database

log = logging.getLogger(__name__)

COMMITMENT = {
    "processed": Commitment.PROCESSED,
    "confirmed": Commitment.CONFIRMED,
    "finalized": Commitment.FINALIZED,
}
CHAIN_LOCK = "chain.lock"


class ChainBusyError(RuntimeError):
    """Another process already runs this data directory's embedded chain."""


def _lock(data_dir: Path) -> int:
    # The embedded chain lives in one process's memory; a second process
    # would fork it. Point other processes at `openvpp chain serve` instead.
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / CHAIN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ChainBusyError(
            f"another process runs the embedded chain of {data_dir}; use `openvpp chain serve` and "
            "--chain-rpc-url to share one chain"
        ) from None
    return fd


async def open_chain(settings: Settings, db: Database) -> tuple[Chain, int | None]:
    """The configured backend and, for the embedded chain, the held lock."""
    if settings.chain_rpc_url:
        rpc = RpcChain(settings.chain_rpc_url, commitment=COMMITMENT[settings.chain_commitment])
        rpc.development = await rpc.serves_embedded_chain()
        return rpc, None
    fd = _lock(settings.data_dir)
    try:
        return await EmbeddedChain.open(db, slot_seconds=settings.chain_slot_seconds), fd
    except BaseException:
        os.close(fd)
        raise


@dataclass
class BillingRuntime:
    plans: BillingPlans
    bills: Bills
    autopay: Autopay
    requests: PaymentRequests

    async def close_and_collect(self) -> int:
        """Issues what has ended, pays bills whose payment requests were paid,
        starts collecting what autopay covers, and drives it."""
        issued = await self.bills.close_ended()
        await self.requests.detect()
        started = await self.autopay.collect_due()
        started += await self.autopay.collect_running(self.bills)
        if started:
            await self.autopay.outbox.drive_many(started)
        return issued


@dataclass
class Runtime:
    """What the root owns beside the services: the anchorer, the background
    tasks and the embedded chain's lock."""

    services: SettlementServices
    anchorer: Anchorer
    billing: BillingRuntime
    lock_fd: int | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(
        self, anchor_interval_seconds: float, settle_interval_seconds: float = 0, billing_interval_seconds: float = 0
    ) -> None:
        if billing_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self._close_bills(billing_interval_seconds)))
        if anchor_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self.anchorer.run(anchor_interval_seconds, self._stop)))
        if settle_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self.services.pipeline.run(settle_interval_seconds, self._stop)))
        self._tasks.append(asyncio.create_task(self._sweep_outbox()))
        if not self.services.event_log.db.is_sqlite:
            self._tasks.append(asyncio.create_task(self.services.event_log.run_sequencer(self._stop)))

    async def _close_bills(self, interval: float) -> None:
        """Issues the bills of billing periods that have ended, then collects them."""
        while not self._stop.is_set():
            try:
                if issued := await self.billing.close_and_collect():
                    log.info("issued %d bills", issued)
            except Exception:
                log.exception("issuing or collecting bills failed; retrying at the next pass")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def _sweep_outbox(self) -> None:
        """Finishes chain work whose replica died (its lease lapsed)."""
        outbox = self.services.outbox
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), outbox.lease_us / 2e6)
            if self._stop.is_set():
                return
            try:
                if finished := await outbox.recover():
                    log.info("finished %d on-chain operations another replica left in flight", len(finished))
            except Exception:
                log.exception("sweeping the outbox failed; retrying at the next sweep")

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.services.event_log.close()
        await self.services.chain.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


async def open_settlement(
    settings: Settings, db: Database, registry: Registry, clock_us: Clock = clock.system
) -> Runtime:
    chain, fd = await open_chain(settings, db)
    try:
        keyring = Keyring.load(settings.data_dir, create=settings.creates_missing_keys)
        outbox = Outbox(
            db,
            chain,
            commitment=COMMITMENT[settings.chain_commitment],
            poll_seconds=settings.outbox_poll_seconds,
            clock_us=clock_us,
            replica=settings.replica_name,
            lease_seconds=settings.outbox_lease_seconds,
        )
        extra = extensions.parse_allowed(settings.allowed_token_extensions)
        # Money from nothing exists on development chains only.
        faucet = DevelopmentFaucet(chain, outbox, keyring) if chain.development else None
        if faucet is not None:
            await faucet.fund_fee_payer()
        stablecoin = await open_stablecoin(db, chain, keyring, settings.stablecoin_mint, extra, faucet)
        tokens = UseCaseTokens(db, chain, outbox, keyring, stablecoin, extra, clock_us=clock_us, faucet=faucet)
        event_log = EventLog(db, settings.outbox_poll_seconds)
        redemptions = Redemptions(db, chain, outbox, keyring, tokens, clock_us=clock_us)
        anchorer = Anchorer(db, registry, outbox, keyring, clock_us=clock_us)
        oracles = Oracles(db, clock_us=clock_us)
        programs = ProgramSettlements(db, clock_us=clock_us)
        dr = DemandResponse(db, oracles, programs, clock_us=clock_us)
        payouts = Payouts(
            db,
            chain,
            outbox,
            keyring,
            tokens,
            batch_payments=settings.payout_batch_instructions,
            notify=event_log.notify,
            clock_us=clock_us,
        )
        ledger = Ledger(db, chain)
        pipeline = Pipeline(programs, Pricer(db, oracles, clock_us=clock_us), dr, payouts, event_log)
        plans = BillingPlans(db, clock_us)
        billing = BillingRuntime(
            plans,
            Bills(db, plans, clock_us=clock_us, close_delay_s=settings.billing_close_delay_seconds),
            Autopay(db, chain, outbox, keyring, stablecoin, plans, tokens.treasury, clock_us=clock_us),
            PaymentRequests(db, chain, stablecoin, plans, tokens.treasury, clock_us=clock_us),
        )
        await billing.requests.rewatch()
        redemptions.bills = TokenPayments(db, plans, tokens.treasury, tokens.utility_of)
        # Finishing one piece of work can enqueue the next (a token's reserve after its mint).
        while finished := await outbox.recover(takeover=True):
            log.info("finished %d on-chain operations left in flight", len(finished))
        services = SettlementServices(
            chain,
            keyring,
            outbox,
            stablecoin,
            tokens,
            redemptions,
            oracles,
            programs,
            dr,
            payouts,
            ledger,
            event_log,
            pipeline,
            Statements(db),
        )
        return Runtime(services, anchorer, billing, fd)
    except BaseException:
        await chain.close()
        if fd is not None:
            os.close(fd)
        raise


async def initialise_chain(settings: Settings) -> str:
    """`openvpp init`: settlement keys, a funded fee payer and (embedded) the test stablecoin."""
    from openvpp.store import migrate

    url = settings.resolved_database_url()
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    try:
        registry = Registry(
            db,
            max_record_bytes=settings.max_record_bytes,
            watch_poll_seconds=settings.watch_poll_seconds,
            changes=RouteChanges(),
        )
        runtime = await open_settlement(settings, db, registry)
        await runtime.close()
        return str(runtime.services.stablecoin.mint)
    finally:
        await db.close()
