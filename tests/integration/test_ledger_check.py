"""CheckLedger against the chain: payouts in flight while it reads (landed on
chain, not yet recorded) are no false alarm, and tokens the books cannot
explain always are one."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from openvpp.chain import spl
from openvpp.integration import ca
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import STEP, aligned_now, settlement_world
from tests.integration.test_settlement_stream_recovery import day_of_readings

PGE = ca.Identity(ca.Role.UTILITY, "pge", 0)


class Stop(BaseException):
    """Stops the payer after its transactions landed, before it records them."""


async def test_payouts_landed_but_not_yet_recorded_are_allowed_for_and_off_book_tokens_are_not(
    fabric: Fabric, tmp_path: Path
) -> None:
    async with settlement_world(fabric, tmp_path, devices=3) as w:
        await w.submit(day_of_readings(w, 1, 4, aligned_now() - 20 * STEP))
        settlement = fabric.app.settlement
        assert settlement is not None

        def stop(at: str) -> None:
            if at == "confirmed":
                raise Stop(at)

        settlement.outbox._fault = stop
        with pytest.raises(Stop):
            await settlement.pipeline.settle_now(PGE, [w.program_id])
        settlement.outbox._fault = lambda _at: None

        check = await w.utility_call("CheckLedger", pb.CheckLedgerRequest())
        (token,) = check.tokens
        # On chain, not in the books as paid: in flight, and no problem.
        assert token.paid_base_units == 0
        assert token.supply_base_units == token.in_flight_base_units > 0
        assert check.ok, check
        assert 0 < check.chain_slot_from <= check.chain_slot

        # Tokens minted outside the books: a problem, and the holder named.
        mint = Pubkey.from_string(w.mint)
        device = w.devices[0].pubkey()
        keyring = settlement.keyring
        recent = await settlement.chain.latest_blockhash()
        off_book = spl.signed(
            [
                spl.mint_to(
                    spl.TOKEN_2022_PROGRAM_ID,
                    mint,
                    spl.ata(device, mint, spl.TOKEN_2022_PROGRAM_ID),
                    keyring.settlement_authority.pubkey(),
                    7,
                    6,
                )
            ],
            keyring.fee_payer,
            [keyring.settlement_authority],
            recent.blockhash,
        )
        (sent,) = await settlement.chain.send([off_book])
        assert not sent.error, sent
        check = await w.utility_call("CheckLedger", pb.CheckLedgerRequest())
        (token,) = check.tokens
        assert not check.ok
        assert str(device) in token.holder_mismatches
        assert not token.ok
        assert any(p.startswith(f"chain supply {token.supply_base_units} but the books expect") for p in token.problems)
