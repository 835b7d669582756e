"""The settlement cadence and its on-demand twin: credit what can be priced
(readings, ended DR events), then pay what is pending."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from openvpp import errors
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.programs import denied
from openvpp.settlement.events import EventLog
from openvpp.settlement.payouts.payer import Payouts, SettlementView
from openvpp.settlement.pricing.dr import DemandResponse
from openvpp.settlement.pricing.pricer import Pricer
from openvpp.settlement.programs import ProgramConfig, ProgramSettlements

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SettleResult:
    settlement: SettlementView | None
    credits_posted: int


class Pipeline:
    def __init__(
        self, programs: ProgramSettlements, pricer: Pricer, dr: DemandResponse, payouts: Payouts, event_log: EventLog
    ) -> None:
        self.programs = programs
        self.pricer = pricer
        self.dr = dr
        self.payouts = payouts
        self.event_log = event_log

    async def credit(self, programs: Sequence[ProgramConfig], *, skip_busy: bool = False) -> int:
        """`skip_busy` (the cadence): a program another replica is crediting is left to it."""
        posted = 0
        for program in programs:
            posted += await self.pricer.run(program, skip_busy=skip_busy)
            posted += await self.dr.run(program, skip_busy=skip_busy)
        if posted:
            self.event_log.notify()
        return posted

    async def _chosen(self, caller: Identity, program_ids: Sequence[str]) -> list[ProgramConfig]:
        if caller.role not in (Role.UTILITY, Role.OPERATOR):
            raise denied("settle as a utility")
        mine = None if caller.role is Role.OPERATOR else caller.namespace
        if not program_ids:
            return await self.programs.all(mine)
        chosen = []
        for i, program_id in enumerate(program_ids):
            try:
                program = await self.programs.get(program_id)
            except errors.NotFound as exc:
                exc.violations = (errors.FieldViolation(f"program_ids[{i}]", exc.message),)
                raise
            if mine is not None and program.utility != mine:
                raise denied("settle its own programs")
            chosen.append(program)
        return chosen

    async def settle_now(self, caller: Identity, program_ids: Sequence[str]) -> SettleResult:
        """On demand: a short reserve refuses the call (FAILED_PRECONDITION) before anything is paid."""
        programs = await self._chosen(caller, program_ids)
        posted = await self.credit(programs)
        # Re-read: crediting does not change configuration, but holds may have moved.
        programs = [await self.programs.get(p.program_id) for p in programs]
        return SettleResult(await self.payouts.settle(programs, strict=True), posted)

    async def cycle(self, *, wait: bool = True) -> SettleResult:
        programs = await self.programs.all()
        posted = await self.credit(programs, skip_busy=True)
        programs = await self.programs.all()
        return SettleResult(await self.payouts.settle(programs, strict=False, wait=wait), posted)

    async def run(self, interval_seconds: float, stop: asyncio.Event) -> None:
        """Starts a cycle every `interval_seconds` (start to start). A cycle
        that overruns its interval is followed at once by the next, never
        overlapped: two settlements at once would only contend for the same
        program locks. Confirmations run in the background, so a cycle's
        length is crediting plus building and sending, not the chain's
        confirmation time."""
        loop = asyncio.get_running_loop()
        next_start = loop.time()
        try:
            while not stop.is_set():
                next_start += interval_seconds
                try:
                    await self.cycle(wait=False)
                except errors.OpenVPPError as exc:
                    log.warning("settlement cycle: %s", exc.message)
                except Exception:
                    log.exception("settlement cycle failed; retrying next cycle")
                delay = next_start - loop.time()
                if delay < 0:
                    next_start = loop.time()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            await self.payouts.drain()
