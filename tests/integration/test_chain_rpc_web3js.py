"""`openvpp chain serve` through @solana/web3.js and @solana/spl-token, in
Node: the test in tests/js runs against a chain served here. Its
dependencies are pinned by tests/js/package-lock.json and installed by
`make js-deps` (part of `make test`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer

from openvpp.billing.payrequest import transfer_url, transferred
from openvpp.chain import spl
from openvpp.chain.rpc import RpcChain
from tests.integration.served_chain import served_chain

JS = Path(__file__).resolve().parents[1] / "js"


@pytest.mark.timeout(300)
async def test_web3js_and_spl_token_confirm_parse_list_and_subscribe(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is required (the CI installs it)"
    assert (JS / "node_modules" / "@solana" / "web3.js").is_dir(), "run `make js-deps` first"
    async with served_chain(f"sqlite:///{tmp_path / 'chain.db'}") as chain:
        mint = await chain.token_2022_mint_with_metadata(Keypair(), [("unit", "kWh")])
        env = {
            **os.environ,
            "OPENVPP_RPC_URL": chain.url,
            "OPENVPP_PAYER": json.dumps(list(bytes(chain.payer))),
            "OPENVPP_METADATA_MINT": str(mint),
        }
        process = await asyncio.create_subprocess_exec(
            node,
            "--test",
            "--test-reporter=spec",
            "chain.test.mjs",
            cwd=JS,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    report = output.decode(errors="replace")
    print(report)
    assert process.returncode == 0, report
    assert "# fail 0" in report or "fail 0" in report, report


@pytest.mark.timeout(300)
async def test_solana_pay_pays_openvpps_transfer_request_and_openvpp_finds_it(tmp_path: Path) -> None:
    """The URL a bill's payment request carries, paid by @solana/pay's own
    transfer; OpenVPP's reference lookup (on a cluster) and its matcher then
    find exactly that payment."""
    node = shutil.which("node")
    assert node is not None, "Node.js is required (the CI installs it)"
    assert (JS / "node_modules" / "@solana" / "pay").is_dir(), "run `make js-deps` first"
    async with served_chain(f"sqlite:///{tmp_path / 'chain.db'}") as chain:
        payer = chain.payer.pubkey()
        mint = await chain.token_mint(payer, 6)
        treasury, reference = Keypair().pubkey(), Keypair().pubkey()
        await chain.send(
            [
                # A wallet Solana Pay can pay holds SOL: wallets refuse a recipient with no account.
                transfer(TransferParams(from_pubkey=payer, to_pubkey=treasury, lamports=1_000_000_000)),
                spl.create_ata(payer, payer, mint, spl.TOKEN_PROGRAM_ID),
                spl.create_ata(payer, treasury, mint, spl.TOKEN_PROGRAM_ID),
                spl.mint_to(
                    spl.TOKEN_PROGRAM_ID, mint, spl.ata(payer, mint, spl.TOKEN_PROGRAM_ID), payer, 100_000_000, 6
                ),
            ]
        )
        amount, memo = 12_345_600, "pacific/nem-bill PAC-0000005 2026-12-01"
        url = transfer_url(str(treasury), amount, 6, str(mint), str(reference), "pacific", memo)
        env = {
            **os.environ,
            "OPENVPP_RPC_URL": chain.url,
            "OPENVPP_PAYER": json.dumps(list(bytes(chain.payer))),
            "OPENVPP_PAY_URL": url,
            "OPENVPP_PAY_RECIPIENT": str(treasury),
            "OPENVPP_PAY_MINT": str(mint),
            "OPENVPP_PAY_AMOUNT": "12.3456",
            "OPENVPP_PAY_REFERENCE": str(reference),
            "OPENVPP_PAY_LABEL": "pacific",
            "OPENVPP_PAY_MEMO": memo,
        }
        process = await asyncio.create_subprocess_exec(
            node,
            "--test",
            "--test-reporter=spec",
            "pay.test.mjs",
            cwd=JS,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 240)
        report = output.decode(errors="replace")
        print(report)
        assert process.returncode == 0, report
        (signature,) = [line.split()[-1] for line in report.splitlines() if line.strip().startswith("PAID ")]
        rpc = RpcChain(chain.url, development=True)
        try:
            found = await rpc.signatures_for_address(reference, 20)
            assert [str(s) for s in found] == [signature]
            record = await rpc.transaction(found[0])
            assert record is not None
            assert record.error is None
            moved = transferred(
                record.raw, spl.TOKEN_PROGRAM_ID, spl.ata(treasury, mint, spl.TOKEN_PROGRAM_ID), mint, reference
            )
            assert moved == amount
        finally:
            await rpc.close()
