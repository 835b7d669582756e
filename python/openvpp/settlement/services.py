"""The settlement domain's services as one value, built by the composition
root (`openvpp.server.compose`) and handed to the servicer."""

from __future__ import annotations

from dataclasses import dataclass

from openvpp.chain.base import Chain
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Outbox
from openvpp.settlement.events import EventLog
from openvpp.settlement.ledger.journal import Ledger
from openvpp.settlement.ledger.statement import Statements
from openvpp.settlement.payouts.payer import Payouts
from openvpp.settlement.pipeline import Pipeline
from openvpp.settlement.pricing.dr import DemandResponse
from openvpp.settlement.pricing.oracles import Oracles
from openvpp.settlement.programs import ProgramSettlements
from openvpp.settlement.tokens.redemption import Redemptions
from openvpp.settlement.tokens.stablecoin import Stablecoin
from openvpp.settlement.tokens.usecase import UseCaseTokens


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
