"""Demo step: the utility creates its SOLAR use-case token, funds the reserve
from its treasury and reads coverage from chain state; the operator anchors
the registry root on chain and a device's record is checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from openvpp.chain.embedded import PersistedChain
from openvpp.chain.keyring import Keyring
from openvpp.client.channel import channel_to
from openvpp.registry.verify import verify_anchored
from openvpp.store.database import Database
from openvpp.v1 import registry_pb2, registry_pb2_grpc, settlement_pb2_grpc
from openvpp.v1 import settlement_pb2 as pb

PROGRAM = "pacific/nem"
# One SOLAR (6 decimals, priced in USD) redeems for one stablecoin.
REDEMPTION_VALUE = 1_000_000
FUNDING = 250_000 * 10**6


@dataclass(frozen=True)
class TokenOutcome:
    token: pb.UseCaseToken
    before: pb.Reserve
    after: pb.Reserve
    funding_signature: str
    anchor: registry_pb2.RegistryAnchor
    anchor_checks: list[tuple[str, bool, str]]


def _coins(base_units: int, decimals: int = 6) -> str:
    return f"{base_units / 10**decimals:,.{decimals}f}".rstrip("0").rstrip(".")


def reserve_table(outcome: TokenOutcome) -> Table:
    table = Table(title=f"{outcome.token.symbol} reserve, read from chain state")
    for column in ("", "reserve (stablecoin)", "supply (SOLAR)", "mintable (SOLAR)", "coverage", "covered"):
        table.add_column(column, justify="right" if column else "left")
    for label, r in (("created", outcome.before), ("funded", outcome.after)):
        coverage = f"{r.coverage_bps / 100:.2f} %" if r.supply_base_units else "n/a"
        table.add_row(
            label,
            _coins(r.reserve_balance_base_units),
            _coins(r.supply_base_units, r.decimals),
            _coins(r.mintable_base_units, r.decimals),
            coverage,
            "yes" if r.covered else "NO",
        )
    return table


async def run_tokens(target: str, data_dir: Path, utility: Path, der_id: str) -> TokenOutcome:
    async with channel_to(target, utility) as channel:
        stub: Any = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await stub.CreateUseCaseToken(
                pb.CreateUseCaseTokenRequest(
                    program_id=PROGRAM,
                    name="Pacific Solar Export",
                    symbol="SOLAR",
                    uri="https://pacific.example/tokens/solar.json",
                    unit=pb.TOKEN_UNIT_USD,
                    decimals=6,
                    redemption_value_base_units=REDEMPTION_VALUE,
                    interest_rate_bps=200,
                )
            )
        ).token
        before = (await stub.GetReserve(pb.GetReserveRequest(mint=token.mint))).reserve
        funded = await stub.FundReserve(pb.FundReserveRequest(mint=token.mint, amount_base_units=FUNDING))
    async with channel_to(target, data_dir / "operator") as channel:
        registry: Any = registry_pb2_grpc.RegistryServiceStub(channel)
        anchor = (await registry.AnchorRegistry(registry_pb2.AnchorRegistryRequest())).anchor
        proof = await registry.GetInclusionProof(registry_pb2.GetInclusionProofRequest(der_id=der_id, anchored=True))
    # Checked against the chain's own persisted state, not the server's word.
    db = Database(f"sqlite:///{(data_dir / 'openvpp.db').resolve()}")
    try:
        authority = Keyring.load(data_dir, create=False).settlement_authority.pubkey()
        checks = (await verify_anchored(proof, PersistedChain(db), authority)).checks
    finally:
        await db.close()
    return TokenOutcome(token, before, funded.reserve, funded.signature, anchor, checks)
