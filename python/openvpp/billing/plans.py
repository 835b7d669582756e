"""How a utility program bills: regime, tariff (URDB JSON), time zone,
billing cycle, true-up and taxes. Versions are rows; a bill keeps the
version it was computed under."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.billing import periods, urdb
from openvpp.billing.engine import Plan, Regime
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied, program_not_found
from openvpp.kernel.tenancy import Viewer
from openvpp.store import billing_repo, routing_repo, settlement_repo
from openvpp.store.database import Database
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import settlement_pb2

REGIMES: dict[int, Regime] = {
    pb.BILLING_REGIME_NET_METERING: Regime.NET_METERING,
    pb.BILLING_REGIME_NET_BILLING: Regime.NET_BILLING,
    pb.BILLING_REGIME_IMPORTS_ONLY: Regime.IMPORTS_ONLY,
}
MAX_URDB_BYTES = 1 << 20
MAX_TAX_BPS = 10_000


def billing_not_configured(program_id: str) -> errors.NotFound:
    return errors.NotFound(f"program {program_id} does not bill", "BILLING_NOT_CONFIGURED")


MAX_RETRIES = 10
MIN_RETRY_INTERVAL_S = 60
DEFAULT_RETRY_INTERVAL_S = 86_400


@functools.lru_cache(maxsize=256)
def _tariff(urdb_json: str, label: str) -> Any:
    return urdb.tariff(json.loads(urdb_json), label or None)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    program_id: str
    version: int
    utility: str
    regime: int
    time_zone: str
    cycle_day: int
    true_up_month: int
    surplus_rate: int
    tax_bps: int
    urdb_json: str
    urdb_label: str
    tariff_name: str
    bills_from: str
    collect_threshold: int
    payment_retries: int = 0
    retry_interval_s: int = DEFAULT_RETRY_INTERVAL_S
    accepts_tokens: bool = False

    @classmethod
    def from_row(cls, row: Any) -> PlanRecord:
        return cls(
            row.program_id,
            row.version,
            row.utility_namespace,
            row.regime,
            row.time_zone,
            row.cycle_day,
            row.true_up_month,
            row.surplus_rate,
            row.tax_bps,
            row.urdb_json,
            row.urdb_label,
            row.tariff_name,
            row.bills_from,
            row.collect_threshold,
            row.payment_retries,
            row.retry_interval_s,
            bool(row.accepts_tokens),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def engine_plan(self) -> Plan:
        return Plan(
            _tariff(self.urdb_json, self.urdb_label),
            REGIMES[self.regime],
            self.true_up_month,
            self.surplus_rate,
            self.tax_bps,
        )

    def message(self) -> pb.BillingPlan:
        return pb.BillingPlan(
            program_id=self.program_id,
            regime=self.regime,  # type: ignore[arg-type]
            urdb_json=self.urdb_json,
            urdb_label=self.urdb_label,
            time_zone=self.time_zone,
            cycle_day=self.cycle_day,
            true_up_month=self.true_up_month,
            surplus_rate_micro_per_kwh=self.surplus_rate,
            tax_bps=self.tax_bps,
            version=self.version,
            tariff_name=self.tariff_name,
            bills_from=self.bills_from,
            collect_threshold_base_units=self.collect_threshold,
            payment_retries=self.payment_retries,
            retry_interval_seconds=self.retry_interval_s,
            accepts_tokens=self.accepts_tokens,
        )


def _check(plan: pb.BillingPlan) -> tuple[str, Any]:
    if plan.regime not in REGIMES:
        raise errors.InvalidArgument.field("plan.regime", "net metering, net billing or imports only")
    if plan.payment_retries > MAX_RETRIES:
        raise errors.InvalidArgument.field("plan.payment_retries", f"at most {MAX_RETRIES}")
    if 0 < plan.retry_interval_seconds < MIN_RETRY_INTERVAL_S:
        raise errors.InvalidArgument.field(
            "plan.retry_interval_seconds", f"0 (a day) or at least {MIN_RETRY_INTERVAL_S}"
        )
    try:
        ZoneInfo(plan.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise errors.InvalidArgument.field("plan.time_zone", f"{plan.time_zone!r} is not an IANA time zone") from exc
    periods.check_cycle_day(plan.cycle_day)
    if not 1 <= plan.true_up_month <= 12:
        raise errors.InvalidArgument.field("plan.true_up_month", "a month, 1 to 12")
    if plan.bills_from:
        try:
            date.fromisoformat(plan.bills_from)
        except ValueError as exc:
            raise errors.InvalidArgument.field("plan.bills_from", "a date, YYYY-MM-DD") from exc
    if plan.tax_bps > MAX_TAX_BPS:
        raise errors.InvalidArgument.field("plan.tax_bps", f"at most {MAX_TAX_BPS} (100 %)")
    if not plan.urdb_json or len(plan.urdb_json.encode()) > MAX_URDB_BYTES:
        raise errors.InvalidArgument.field("plan.urdb_json", f"a URDB tariff, up to {MAX_URDB_BYTES} bytes")
    try:
        document = json.loads(plan.urdb_json)
    except ValueError as exc:
        raise errors.InvalidArgument.field("plan.urdb_json", f"not JSON: {exc}") from exc
    try:
        tariff = urdb.tariff(document, plan.urdb_label or None)
    except errors.InvalidArgument as exc:
        # Name the URDB field inside the request's.
        violations = [errors.FieldViolation(f"plan.urdb_json.{v.field}", v.description) for v in exc.violations]
        raise errors.InvalidArgument(exc.message, exc.reason, violations=violations) from None
    return json.dumps(document, sort_keys=True, separators=(",", ":")), tariff


class BillingPlans:
    def __init__(self, db: Database, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.clock_us = clock_us

    async def configure(self, caller: Identity, plan: pb.BillingPlan) -> PlanRecord:
        canonical, tariff = _check(plan)
        async with self.db.write() as conn:
            program = await routing_repo.program(conn, plan.program_id)
            if program is None:
                raise program_not_found(plan.program_id)
            if not caller.acts_for(program.utility_namespace):
                raise denied("bill its own programs")
            settlement = await settlement_repo.program_settlement(conn, plan.program_id)
            if (
                settlement is not None
                and settlement.kind == settlement_pb2.CREDIT_KIND_NEM_EXPORT
                and plan.regime != pb.BILLING_REGIME_IMPORTS_ONLY
            ):
                raise errors.FailedPrecondition(
                    f"{plan.program_id} pays exports as tokens: billing them too would pay twice; "
                    "use BILLING_REGIME_IMPORTS_ONLY",
                    "EXPORTS_PAID_TWICE",
                    violations=[errors.FieldViolation("plan.regime", "must be BILLING_REGIME_IMPORTS_ONLY")],
                )
            if plan.regime != pb.BILLING_REGIME_IMPORTS_ONLY:
                clash = await billing_repo.exports_paid_twice(conn, plan.program_id, nets=True)
                if clash is not None:
                    raise errors.FailedPrecondition(
                        f"device {clash[0]} of {plan.program_id} has its exports paid as tokens by {clash[1]}: "
                        "billing them too would pay twice; use BILLING_REGIME_IMPORTS_ONLY",
                        "EXPORTS_PAID_TWICE",
                        violations=[errors.FieldViolation("plan.regime", "must be BILLING_REGIME_IMPORTS_ONLY")],
                    )
            latest = await billing_repo.latest_plan(conn, plan.program_id)
            version = 1 if latest is None else latest.version + 1
            if latest is not None:
                if plan.bills_from and plan.bills_from != latest.bills_from:
                    raise errors.FailedPrecondition(
                        f"billing of {plan.program_id} started on {latest.bills_from}; it cannot move",
                        "BILLS_FROM_FIXED",
                        violations=[errors.FieldViolation("plan.bills_from", f"must be empty or {latest.bills_from}")],
                    )
                bills_from = latest.bills_from
            else:
                now = self.clock_us() // 1_000_000
                bills_from = plan.bills_from or periods.local_date(now, ZoneInfo(plan.time_zone)).isoformat()
            await billing_repo.insert_plan(
                conn,
                {
                    "program_id": plan.program_id,
                    "version": version,
                    "utility_namespace": program.utility_namespace,
                    "regime": plan.regime,
                    "time_zone": plan.time_zone,
                    "cycle_day": plan.cycle_day,
                    "true_up_month": plan.true_up_month,
                    "surplus_rate": plan.surplus_rate_micro_per_kwh,
                    "tax_bps": plan.tax_bps,
                    "urdb_json": canonical,
                    "urdb_label": plan.urdb_label,
                    "tariff_name": tariff.name,
                    "bills_from": bills_from,
                    "collect_threshold": plan.collect_threshold_base_units,
                    "payment_retries": plan.payment_retries,
                    "retry_interval_s": plan.retry_interval_seconds or DEFAULT_RETRY_INTERVAL_S,
                    "accepts_tokens": int(plan.accepts_tokens),
                    "created_at_us": self.clock_us(),
                },
            )
            row = await billing_repo.plan_version(conn, plan.program_id, version)
        return PlanRecord.from_row(row)

    async def current(self, program_id: str) -> PlanRecord:
        async with self.db.read() as conn:
            return await self.current_in(conn, program_id)

    @staticmethod
    async def current_in(conn: AsyncConnection, program_id: str) -> PlanRecord:
        row = await billing_repo.latest_plan(conn, program_id)
        if row is None:
            raise billing_not_configured(program_id)
        return PlanRecord.from_row(row)

    async def version(self, program_id: str, version: int) -> PlanRecord:
        async with self.db.read() as conn:
            row = await billing_repo.plan_version(conn, program_id, version)
        if row is None:
            raise billing_not_configured(program_id)
        return PlanRecord.from_row(row)

    async def visible(self, viewer: Viewer, program_id: str) -> PlanRecord:
        async with self.db.read() as conn:
            return await self.visible_in(conn, viewer, program_id)

    async def visible_in(
        self, conn: AsyncConnection, viewer: Viewer, program_id: str, account_devices: Sequence[str] = ()
    ) -> PlanRecord:
        """The plan for its utility and the operator, and for a prosumer whose
        device is in the account read (`account_devices`); NOT_FOUND for
        anyone else, as for a program that does not bill."""
        plan = await self.current_in(conn, program_id)
        if viewer.everything or viewer.utility == plan.utility:
            return plan
        if viewer.holder is not None and viewer.holder in account_devices:
            return plan
        raise billing_not_configured(program_id)


__all__ = ["REGIMES", "BillingPlans", "PlanRecord", "billing_not_configured"]
