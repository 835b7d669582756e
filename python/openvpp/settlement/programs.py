"""How a utility program credits and pays: what it pays for (CreditKind),
in which use-case token, at which rates (tariff or feed), and how each
credit is split between parties by basis points."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import base58

from openvpp import errors
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied, program_not_found
from openvpp.kernel.tenancy import Viewer, cross_tenant
from openvpp.settlement import money
from openvpp.store import billing_repo, routing_repo, settlement_repo, token_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

BPS = 10_000
NEEDS_FEED = (pb.CREDIT_KIND_CO2_REWARD,)
NEEDS_TARIFF = (pb.CREDIT_KIND_DR_PERFORMANCE,)


@dataclass(frozen=True, slots=True)
class Share:
    party: int
    wallet: str  # empty: the device's own address
    bps: int


@dataclass(frozen=True, slots=True)
class ProgramConfig:
    program_id: str
    utility: str
    version: int
    kind: int
    mint: str
    tariff_id: str
    price_feed_id: str
    split: tuple[Share, ...]
    hold_reason: str
    dr_includes_exports: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ProgramConfig:
        split = tuple(Share(s["party"], s["wallet"], s["bps"]) for s in json.loads(row.split))
        return cls(
            row.program_id,
            row.utility_namespace,
            row.version,
            row.kind,
            row.mint,
            row.tariff_id,
            row.price_feed_id,
            split,
            row.hold_reason,
            bool(row.dr_includes_exports),
        )

    def wallets(self, der_id: str) -> list[tuple[int, str, int]]:
        """(party, wallet, bps) for one device's credit."""
        return [(s.party, s.wallet or der_id, s.bps) for s in self.split]


def _check_split(split: Sequence[pb.SplitShare]) -> tuple[Share, ...]:
    if not split:
        return (Share(pb.PARTY_OWNER, "", BPS),)
    shares: list[Share] = []
    for i, s in enumerate(split):
        if s.party == pb.PARTY_UNSPECIFIED:
            raise errors.InvalidArgument.field(f"split[{i}].party", "must be set")
        if s.bps == 0:
            raise errors.InvalidArgument.field(f"split[{i}].bps", "must be positive")
        if s.party == pb.PARTY_OWNER:
            if s.wallet:
                raise errors.InvalidArgument.field(f"split[{i}].wallet", "the owner is paid at the device's address")
        else:
            try:
                if len(base58.b58decode(s.wallet)) != 32:
                    raise ValueError
            except ValueError:
                raise errors.InvalidArgument.field(f"split[{i}].wallet", "must be a base58 Solana address") from None
        shares.append(Share(s.party, s.wallet, s.bps))
    total = sum(s.bps for s in shares)
    if total != BPS:
        raise errors.InvalidArgument.field("split", f"basis points sum to {total}, not 10,000", "SPLIT_NOT_WHOLE")
    return tuple(shares)


class ProgramSettlements:
    def __init__(self, db: Database, clock_us: Clock = clock.system) -> None:
        self.clock_us = clock_us
        self.db = db

    async def configure(self, caller: Identity, request: pb.ConfigureProgramSettlementRequest) -> ProgramConfig:
        if request.kind == pb.CREDIT_KIND_UNSPECIFIED:
            raise errors.InvalidArgument.field("kind", "must be set")
        split = _check_split(request.split)
        if request.kind in NEEDS_FEED and not request.price_feed_id:
            raise errors.InvalidArgument.field("price_feed_id", "CO2 rewards need a feed's carbon intensity")
        if request.kind in NEEDS_TARIFF and not request.tariff_id:
            raise errors.InvalidArgument.field("tariff_id", "DR needs a tariff (its time zone and incentives)")
        if request.kind == pb.CREDIT_KIND_NEM_EXPORT and not (request.tariff_id or request.price_feed_id):
            raise errors.InvalidArgument.field("tariff_id", "NEM export needs a tariff or a price feed")
        if request.dr_includes_exports and request.kind != pb.CREDIT_KIND_DR_PERFORMANCE:
            raise errors.InvalidArgument.field(
                "dr_includes_exports", "only a DR program's performance can include exports"
            )
        async with self.db.write() as conn:
            program = await routing_repo.program(conn, request.program_id)
            if program is None:
                raise program_not_found(request.program_id)
            if not caller.acts_for(program.utility_namespace):
                raise denied("configure its own programs")
            utility = program.utility_namespace
            token = await token_repo.token(conn, request.mint)
            if token is None or token.program_id != request.program_id:
                raise errors.FailedPrecondition(
                    f"{request.mint or 'mint'} is not a use-case token of {request.program_id}",
                    "TOKEN_NOT_OF_PROGRAM",
                    violations=[errors.FieldViolation("mint", "must be a token created for this program")],
                )
            money.check(
                request.kind,
                token.unit,
                token.decimals,
                token.redemption_value,
                await money.stablecoin_decimals(conn),
            )
            for field, kind, value in (
                ("tariff_id", "tariff", request.tariff_id),
                ("price_feed_id", "feed", request.price_feed_id),
            ):
                if not value:
                    continue
                owner = await settlement_repo.oracle_owner(conn, kind, value)
                if owner is None:
                    raise errors.NotFound(
                        f"no {field.removesuffix('_id').replace('_', ' ')} {value}", "ORACLE_NOT_FOUND"
                    )
                if owner != utility:
                    raise denied(f"use its own {field.removesuffix('_id').replace('_', ' ')}s")
            if request.kind == pb.CREDIT_KIND_NEM_EXPORT:
                clash = (
                    (None, request.program_id)
                    if await billing_repo.nets_exports(conn, request.program_id)
                    else await billing_repo.exports_paid_twice(conn, request.program_id, nets=False)
                )
                if clash is not None:
                    raise errors.FailedPrecondition(
                        f"exports of {request.program_id}'s devices are credited on the bills of {clash[1]}: "
                        "paying them as tokens too would pay twice",
                        "EXPORTS_PAID_TWICE",
                        violations=[errors.FieldViolation("kind", "the billing program must be imports only first")],
                    )
            existing = await settlement_repo.program_settlement(conn, request.program_id)
            values = {
                "utility_namespace": utility,
                "kind": request.kind,
                "mint": request.mint,
                "tariff_id": request.tariff_id,
                "price_feed_id": request.price_feed_id,
                "split": json.dumps([{"party": s.party, "wallet": s.wallet, "bps": s.bps} for s in split]),
                "updated_at_us": self.clock_us(),
                "dr_includes_exports": int(request.dr_includes_exports),
            }
            if existing is None:
                await settlement_repo.insert_program_settlement(conn, request.program_id, values)
            else:
                if existing.kind != request.kind or existing.mint != request.mint:
                    raise errors.FailedPrecondition(
                        "a program's credit kind and token are fixed once configured", "PROGRAM_SETTLEMENT_FIXED"
                    )
                await settlement_repo.update_program_settlement(conn, request.program_id, existing.version + 1, values)
            row = await settlement_repo.program_settlement(conn, request.program_id)
        return ProgramConfig.from_row(row)

    async def get(self, program_id: str) -> ProgramConfig:
        async with self.db.read() as conn:
            row = await settlement_repo.program_settlement(conn, program_id)
        if row is None:
            raise errors.NotFound(f"program {program_id} has no settlement configured", "PROGRAM_SETTLEMENT_NOT_FOUND")
        return ProgramConfig.from_row(row)

    async def visible(self, viewer: Viewer, program_id: str) -> ProgramConfig:
        """A program's settlement for its utility and the operator, and for a
        vendor with a device enrolled in it (the program and its token are
        public; its split and totals concern only those parties)."""
        config = await self.get(program_id)
        if viewer.everything or viewer.utility == config.utility:
            return config
        if viewer.vendor is not None:
            async with self.db.read() as conn:
                if await settlement_repo.vendor_enrolled_in(conn, program_id, viewer.vendor):
                    return config
        raise cross_tenant("read the settlement of its own programs or of programs its devices are enrolled in")

    async def all(self, utility: str | None = None) -> list[ProgramConfig]:
        async with self.db.read() as conn:
            return [ProgramConfig.from_row(r) for r in await settlement_repo.program_settlements(conn, utility)]
