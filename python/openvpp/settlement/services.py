"""The settlement domain's services as one value, built by the composition
root (`openvpp.server.compose`) and handed to the servicer."""

from __future__ import annotations

from dataclasses import dataclass

from openvpp.chain.base import Chain
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Outbox
from openvpp.settlement.accounts.ledger import Ledger
from openvpp.settlement.accounts.statement import Statements
from openvpp.settlement.log.events import EventLog
from openvpp.settlement.payouts import Payouts
from openvpp.settlement.pipeline import Pipeline
from openvpp.settlement.programs import ProgramSettlements
from openvpp.settlement.redemption import Redemptions
from openvpp.settlement.reserves.stablecoin import Stablecoin
from openvpp.settlement.reserves.tokens import UseCaseTokens
from openvpp.settlement.valuation.dr import DemandResponse
from openvpp.settlement.valuation.oracles import Oracles


@dataclass(frozen=True)
class SettlementServices:
    chain: Chain
    keyring: Keyring
    outbox: Outbox
    stablecoin: Stablecoin
    tokens: UseCaseTokens
    redemptions: Redemptions
    oracles: Oracles
    programs: ProgramSettlements
    dr: DemandResponse
    payouts: Payouts
    ledger: Ledger
    event_log: EventLog
    pipeline: Pipeline
    statements: Statements
