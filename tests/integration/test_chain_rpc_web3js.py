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
