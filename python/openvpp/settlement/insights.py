"""What the web app charts and lists, scoped by `Viewer` as every
settlement read is: a wallet's own energy, credits, DR results and
redemptions; a program's energy and credits over time, its enrolment and
its DR events, for its utility and the operator.

Readings, baselines and bills are customers' personal data: a wallet's are
for that wallet (and the operator); a program's aggregates for the utility
that runs it. A vendor sees the enrolment counts of its own devices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openvpp import errors
from openvpp.kernel.tenancy import Viewer, cross_tenant
from openvpp.store import insight_repo
from openvpp.store.database import Database

HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class Series:
    energy: Sequence[Any]  # (hour, import_wh, export_wh)
    credits: Sequence[Any]  # (hour, amount, energy_wh)


@dataclass(frozen=True, slots=True)
class ProgramSummary:
    program_id: str
    utility: str
    name: str
    kind: int
    enrolled: dict[int, int]  # enrollment status -> devices


class Insights:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _own_wallet(viewer: Viewer, address: str) -> None:
        if not (viewer.everything or viewer.holder == address):
            raise errors.NotFound(f"no wallet {address} of yours", "WALLET_NOT_FOUND")

    async def wallet_enrollments(self, viewer: Viewer, address: str) -> tuple[Sequence[Any], Any]:
        """The wallet's device's enrollments, and its reading state (or None)."""
        self._own_wallet(viewer, address)
        async with self.db.read() as conn:
            return (
                await insight_repo.device_enrollments(conn, address),
                await insight_repo.last_reading(conn, address),
            )

    async def wallet_series(self, viewer: Viewer, address: str, start: int, end: int) -> tuple[Series, Sequence[Any]]:
        """Hourly energy and credits of the wallet's device, and its DR results."""
        self._own_wallet(viewer, address)
        async with self.db.read() as conn:
            energy = await insight_repo.energy_by_hour(conn, insight_repo.device_is(address), start, end)
            credits = await insight_repo.credits_by_hour(
                conn, insight_repo.credited_to(address), start * 1_000_000, end * 1_000_000
            )
            dr = await insight_repo.device_dr_results(conn, address, 20)
        return Series(energy, credits), dr

    async def wallet_redemptions(self, viewer: Viewer, address: str) -> Sequence[Any]:
        self._own_wallet(viewer, address)
        async with self.db.read() as conn:
            return await insight_repo.holder_redemptions(conn, address, 50)

    async def programs(self, viewer: Viewer) -> list[ProgramSummary]:
        """The viewer's programs with their enrolment by status: a utility's
        own, every program for the operator, for a vendor the programs its
        devices are in with only its devices counted."""
        async with self.db.read() as conn:
            if viewer.everything or viewer.utility is not None:
                rows = await insight_repo.programs(conn, None if viewer.everything else viewer.utility)
            elif viewer.vendor is not None:
                rows = await insight_repo.vendor_programs(conn, viewer.vendor)
            else:
                rows = []
            counts = await insight_repo.enrollment_counts(
                conn, [r.program_id for r in rows], None if viewer.everything else viewer.vendor
            )
        return [
            ProgramSummary(
                r.program_id,
                r.utility_namespace,
                r.name,
                r.kind,
                {s: n for (p, s), n in counts.items() if p == r.program_id},
            )
            for r in rows
        ]

    async def _owned_program(self, viewer: Viewer, program_id: str) -> None:
        async with self.db.read() as conn:
            owner = await insight_repo.program_owner(conn, program_id)
        if owner is None:
            raise errors.NotFound(f"no program {program_id}", "PROGRAM_NOT_FOUND")
        if not (viewer.everything or viewer.utility == owner):
            raise cross_tenant("read its own programs' energy and credits")

    async def program_series(self, viewer: Viewer, program_id: str, start: int, end: int) -> Series:
        await self._owned_program(viewer, program_id)
        async with self.db.read() as conn:
            energy = await insight_repo.energy_by_hour(conn, insight_repo.enrolled_in(program_id), start, end)
            credits = await insight_repo.credits_by_hour(
                conn, insight_repo.credited_in([program_id]), start * 1_000_000, end * 1_000_000
            )
        return Series(energy, credits)

    async def dr_events(self, viewer: Viewer, limit: int = 50) -> Sequence[Any]:
        """The newest DR events of the viewer's programs, with settled totals."""
        if not (viewer.everything or viewer.utility is not None):
            return []
        async with self.db.read() as conn:
            rows = await insight_repo.programs(conn, None if viewer.everything else viewer.utility)
            return await insight_repo.dr_events(conn, [r.program_id for r in rows], limit)
