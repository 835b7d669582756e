"""`openvpp chain serve` through solana-py, a client users already have:
its HTTP client parses every answer into solders' typed responses, and its
WebSocket client into typed notifications, so a wrong shape fails here."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import base58
import httpx
import pytest
import websockets
import zstandard
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import MemcmpOpts, TokenAccountOpts, TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotificationJsonParsed,
    LogsNotification,
    ProgramNotification,
    RootNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from openvpp.chain import spl
from openvpp.chain.base import MAX_BLOCKHASH_AGE
from openvpp.chain.embedded import EmbeddedChain
from tests.integration.served_chain import ServedChain, served_chain


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[ServedChain]:
    async with served_chain(f"sqlite:///{tmp_path / 'chain.db'}") as served:
        yield served


@pytest.fixture
async def client(chain: ServedChain) -> AsyncIterator[AsyncClient]:
    rpc = AsyncClient(chain.url)
    yield rpc
    await rpc.close()


def untyped(value: object) -> Any:
    """solders types parsed JSON as a union of JSON values; tests index into it."""
    return value


async def raw_call(chain: ServedChain, method: str, *params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            chain.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
    body: dict[str, Any] = response.json()
    return body


async def signed_v0(chain: ServedChain, instructions: list[Any], payer: Keypair | None = None) -> VersionedTransaction:
    payer = payer or chain.payer
    recent = await chain.embedded.latest_blockhash()
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], recent.blockhash)
    return VersionedTransaction(message, [payer])


async def next_notification(ws: SolanaWsClient, kind: type[Any]) -> Any:
    return (await notifications(ws, [kind]))[kind]


async def notifications(ws: SolanaWsClient, kinds: list[type[Any]]) -> dict[type[Any], Any]:
    """The first notification of each kind, in whatever order they arrive."""
    found: dict[type[Any], Any] = {}
    async with asyncio.timeout(10):
        while len(found) < len(kinds):
            note = await ws.recv()
            for kind in kinds:
                if isinstance(note, kind) and kind not in found:
                    found[kind] = note
    return found


async def test_a_transfer_is_confirmed_by_polling_and_by_a_signature_subscription(
    chain: ServedChain, client: AsyncClient
) -> None:
    to = Keypair().pubkey()
    tx = await signed_v0(
        chain, [transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=to, lamports=1_000_000))]
    )
    async with SolanaWsClient(chain.ws_url) as ws:
        # Subscribed before it is sent: notified when it lands.
        await ws.signature_subscribe(signature=tx.signatures[0], commitment=Confirmed)
        sent = await client.send_transaction(tx)
        note = await next_notification(ws, SignatureNotification)
        assert note.result.value.err is None
        # Subscribed after it landed: notified at once.
        await ws.signature_subscribe(signature=sent.value)
        again = await next_notification(ws, SignatureNotification)
        assert again.result.value.err is None
    confirmed = await client.confirm_transaction(sent.value, Confirmed)
    assert confirmed.value[0] is not None
    assert (await client.get_balance(to)).value == 1_000_000


async def test_token_accounts_are_listed_parsed_and_ranked_as_wallets_read_them(
    chain: ServedChain, client: AsyncClient
) -> None:
    authority, alice, bob = Keypair(), Keypair(), Keypair()
    mint = await chain.token_mint(authority.pubkey(), decimals=6)
    alice_ata = spl.ata(alice.pubkey(), mint, spl.TOKEN_PROGRAM_ID)
    bob_ata = spl.ata(bob.pubkey(), mint, spl.TOKEN_PROGRAM_ID)
    await chain.send(
        [
            spl.create_ata(chain.payer.pubkey(), alice.pubkey(), mint, spl.TOKEN_PROGRAM_ID),
            spl.create_ata(chain.payer.pubkey(), bob.pubkey(), mint, spl.TOKEN_PROGRAM_ID),
            spl.mint_to(spl.TOKEN_PROGRAM_ID, mint, alice_ata, authority.pubkey(), 5_250_000, 6),
        ],
        [authority],
    )
    raw = await chain.send(
        [spl.transfer(spl.TOKEN_PROGRAM_ID, alice_ata, mint, bob_ata, alice.pubkey(), 1_250_000, 6)], [alice]
    )
    signature = VersionedTransaction.from_bytes(raw).signatures[0]

    parsed = await client.get_token_accounts_by_owner_json_parsed(alice.pubkey(), TokenAccountOpts(mint=mint))
    (only,) = parsed.value
    assert only.pubkey == alice_ata
    info = untyped(only.account.data.parsed)["info"]
    assert info["tokenAmount"] == {"amount": "4000000", "decimals": 6, "uiAmount": 4.0, "uiAmountString": "4"}
    assert info["owner"] == str(alice.pubkey())
    assert info["state"] == "initialized"
    by_program = await client.get_token_accounts_by_owner(
        bob.pubkey(), TokenAccountOpts(program_id=spl.TOKEN_PROGRAM_ID)
    )
    assert [spl.token_amount(bytes(a.account.data)) for a in by_program.value] == [1_250_000]

    largest = (await client.get_token_largest_accounts(mint)).value
    assert [(a.address, a.amount.amount) for a in largest] == [(alice_ata, "4000000"), (bob_ata, "1250000")]
    assert (await client.get_token_supply(mint)).value.ui_amount_string == "5.25"

    history = (await client.get_signatures_for_address(alice_ata)).value
    assert history[0].signature == signature
    assert len(history) == 2
    older = (await client.get_signatures_for_address(alice_ata, before=signature)).value
    assert [h.signature for h in older] == [history[1].signature]

    tx = (await client.get_transaction(signature, "jsonParsed", max_supported_transaction_version=0)).value
    assert tx is not None
    assert tx.block_time is not None
    (instruction,) = untyped(tx.transaction.transaction).message.instructions
    assert instruction.program == "spl-token"
    assert instruction.parsed["type"] == "transferChecked"
    assert instruction.parsed["info"]["tokenAmount"]["amount"] == "1250000"
    meta = tx.transaction.meta
    assert meta is not None
    before = {b.account_index: b.ui_token_amount.amount for b in meta.pre_token_balances or []}
    after = {b.account_index: b.ui_token_amount.amount for b in meta.post_token_balances or []}
    assert sorted(before.values()) == ["0", "5250000"]
    assert sorted(after.values()) == ["1250000", "4000000"]
    assert meta.pre_balances[0] - meta.post_balances[0] == meta.fee

    as_base64 = (await client.get_transaction(signature, "base64")).value
    assert as_base64 is not None
    assert bytes(untyped(as_base64.transaction.transaction)) == raw


async def test_a_token_2022_mint_shows_its_metadata_and_interest_extensions_parsed(
    chain: ServedChain, client: AsyncClient
) -> None:
    authority = Keypair()
    mint = await chain.token_2022_mint_with_metadata(authority, [("unit", "kWh"), ("redemption_value", "120")])
    account = (await client.get_account_info_json_parsed(mint)).value
    assert account is not None
    parsed = untyped(account.data).parsed
    assert account.data.program == "spl-token-2022"  # type: ignore[union-attr]
    assert parsed["type"] == "mint"
    extensions = {e["extension"]: e.get("state") for e in parsed["info"]["extensions"]}
    assert extensions["metadataPointer"] == {"authority": str(authority.pubkey()), "metadataAddress": str(mint)}
    metadata = extensions["tokenMetadata"]
    assert (metadata["name"], metadata["symbol"], metadata["mint"]) == ("Solar credit", "SOLAR", str(mint))
    assert metadata["additionalMetadata"] == [["unit", "kWh"], ["redemption_value", "120"]]
    assert extensions["interestBearingConfig"]["currentRate"] == 250

    holder = Keypair().pubkey()
    await chain.send([spl.create_ata(chain.payer.pubkey(), holder, mint, spl.TOKEN_2022_PROGRAM_ID)])
    listed = await client.get_token_accounts_by_owner_json_parsed(holder, TokenAccountOpts(mint=mint))
    (held,) = listed.value
    info = untyped(held.account.data.parsed)["info"]
    assert info["tokenAmount"]["decimals"] == 3
    assert {"extension": "immutableOwner"} in info["extensions"]


async def test_preflight_refuses_what_would_fail_and_skip_preflight_lands_it_charged(
    chain: ServedChain, client: AsyncClient
) -> None:
    broke = Keypair()
    await chain.send(
        [transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=broke.pubkey(), lamports=1_000_000))]
    )
    too_much = transfer(TransferParams(from_pubkey=broke.pubkey(), to_pubkey=Keypair().pubkey(), lamports=5_000_000))
    tx = await signed_v0(chain, [too_much], broke)
    with pytest.raises(RPCException) as refused:
        await client.send_transaction(tx)
    assert "InstructionError" in str(refused.value) or "insufficient" in str(refused.value).lower()
    assert (await client.get_signature_statuses([tx.signatures[0]])).value == [None]
    assert (await client.get_balance(broke.pubkey())).value == 1_000_000

    landed = await client.send_transaction(tx, TxOpts(skip_preflight=True))
    status = (await client.get_signature_statuses([landed.value])).value[0]
    assert status is not None
    assert status.err is not None
    assert (await client.get_balance(broke.pubkey())).value == 1_000_000 - 5000


async def test_fees_blockhashes_and_cluster_facts(chain: ServedChain, client: AsyncClient) -> None:
    to = Keypair().pubkey()
    instructions = [
        set_compute_unit_limit(50_000),
        set_compute_unit_price(30_000),
        transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=to, lamports=1_000_000)),
    ]
    tx = await signed_v0(chain, instructions)
    quoted = (await client.get_fee_for_message(tx.message)).value  # type: ignore[arg-type]
    sent = await client.send_transaction(tx)
    landed = (await client.get_transaction(sent.value, max_supported_transaction_version=0)).value
    assert landed is not None
    assert landed.transaction.meta is not None
    assert quoted == landed.transaction.meta.fee == 5000 + 1500

    # Per slot, the lowest bid among transactions writing every given account.
    fees = (await client.get_recent_prioritization_fees([to])).value
    assert [f.prioritization_fee for f in fees] == [30_000]

    latest = (await client.get_latest_blockhash()).value
    valid = await raw_call(chain, "isBlockhashValid", str(latest.blockhash), {"commitment": "processed"})
    assert valid["result"]["value"] is True
    chain.embedded.produce_blocks(MAX_BLOCKHASH_AGE + 1)
    expired = await raw_call(chain, "isBlockhashValid", str(latest.blockhash))
    assert expired["result"]["value"] is False
    assert (await client.get_fee_for_message(tx.message)).value is None  # type: ignore[arg-type]

    epoch = (await client.get_epoch_info()).value
    assert epoch.absolute_slot == (await client.get_slot()).value
    assert epoch.transaction_count is not None
    assert epoch.transaction_count >= 2
    genesis = (await client.get_genesis_hash()).value
    reopened = await EmbeddedChain.open(chain.db, slot_seconds=None)
    assert reopened.genesis_hash == genesis


async def test_min_context_slot_commitment_and_account_encodings(chain: ServedChain, client: AsyncClient) -> None:
    slot = (await client.get_slot()).value
    ahead = await raw_call(chain, "getBalance", str(chain.payer.pubkey()), {"minContextSlot": slot + 1000})
    assert ahead["error"]["code"] == -32016
    bad = await raw_call(chain, "getBalance", str(chain.payer.pubkey()), {"commitment": "eventually"})
    assert bad["error"]["code"] == -32602

    mint = await chain.token_mint(Keypair().pubkey())
    data = bytes((await client.get_account_info(mint)).value.data)  # type: ignore[union-attr]
    small = await raw_call(chain, "getAccountInfo", str(mint), {"encoding": "base58"})
    assert base58.b58decode(small["result"]["value"]["data"][0]) == data
    packed = await raw_call(chain, "getAccountInfo", str(mint), {"encoding": "base64+zstd"})
    text, label = packed["result"]["value"]["data"]
    assert label == "base64+zstd"
    assert zstandard.ZstdDecompressor().decompress(base64.b64decode(text)) == data
    window = await raw_call(
        chain, "getAccountInfo", str(mint), {"encoding": "base64", "dataSlice": {"offset": 36, "length": 9}}
    )
    assert base64.b64decode(window["result"]["value"]["data"][0]) == data[36:45]
    program = await chain.token_2022_mint_with_metadata(Keypair(), [])
    too_big = await raw_call(chain, "getAccountInfo", str(program), {"encoding": "base58"})
    assert too_big["error"]["code"] == -32600

    legacy_only = await raw_call(chain, "getTransaction", str(Signature.default()))
    assert legacy_only["result"] is None
    tx = await signed_v0(
        chain,
        [transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000))],
    )
    await client.send_transaction(tx)
    refused = await raw_call(chain, "getTransaction", str(tx.signatures[0]), {"encoding": "json"})
    assert refused["error"]["code"] == -32015
    shown = await raw_call(
        chain, "getTransaction", str(tx.signatures[0]), {"encoding": "json", "maxSupportedTransactionVersion": 0}
    )
    assert shown["result"]["version"] == 0
    assert shown["result"]["meta"]["loadedAddresses"] == {"writable": [], "readonly": []}


async def test_account_program_logs_slot_and_root_subscriptions(chain: ServedChain, client: AsyncClient) -> None:
    authority, owner = Keypair(), Keypair()
    mint = await chain.token_mint(authority.pubkey(), decimals=2)
    ata = spl.ata(owner.pubkey(), mint, spl.TOKEN_PROGRAM_ID)
    await chain.send([spl.create_ata(chain.payer.pubkey(), owner.pubkey(), mint, spl.TOKEN_PROGRAM_ID)])
    async with SolanaWsClient(chain.ws_url) as ws:
        account_sub = await ws.account_subscribe(pubkey=ata, encoding="jsonParsed")
        await ws.program_subscribe(
            program_id=spl.TOKEN_PROGRAM_ID,
            encoding="base64",
            filters=[165, MemcmpOpts(offset=32, bytes=str(owner.pubkey()))],
        )
        await ws.logs_subscribe(filter_=RpcTransactionLogsFilterMentions(ata))
        await ws.slot_subscribe()
        await ws.root_subscribe()
        minted = await chain.send(
            [spl.mint_to(spl.TOKEN_PROGRAM_ID, mint, ata, authority.pubkey(), 1234, 2)], [authority]
        )

        seen = await notifications(
            ws,
            [AccountNotificationJsonParsed, ProgramNotification, LogsNotification, SlotNotification, RootNotification],
        )
        changed = seen[AccountNotificationJsonParsed]
        assert changed.subscription == account_sub.subscription_id
        assert changed.result.value.data.parsed["info"]["tokenAmount"]["uiAmountString"] == "12.34"
        assert seen[ProgramNotification].result.value.pubkey == ata
        logs = seen[LogsNotification]
        assert logs.result.value.signature == VersionedTransaction.from_bytes(minted).signatures[0]
        assert logs.result.value.err is None
        assert f"Program {spl.TOKEN_PROGRAM_ID} invoke [1]" in logs.result.value.logs
        assert seen[SlotNotification].result.slot >= 1
        assert seen[RootNotification].result >= 1
        await ws.unsubscribe(account_sub)

    # The program subscription, read raw: it carries the matching account only.
    async with websockets.connect(chain.ws_url) as raw_ws:
        filters = [{"dataSize": 165}, {"memcmp": {"offset": 32, "bytes": str(owner.pubkey())}}]
        params = [str(spl.TOKEN_PROGRAM_ID), {"encoding": "base64", "filters": filters}]
        await raw_ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "programSubscribe", "params": params}))
        assert '"result"' in await raw_ws.recv()
        await chain.send([spl.mint_to(spl.TOKEN_PROGRAM_ID, mint, ata, authority.pubkey(), 1, 2)], [authority])
        note = json.loads(await asyncio.wait_for(raw_ws.recv(), 10))
        assert note["method"] == "programNotification"
        assert note["params"]["result"]["value"]["pubkey"] == str(ata)
        await raw_ws.send('{"jsonrpc":"2.0","id":2,"method":"accountUnsubscribe","params":[999999]}')
        assert json.loads(await raw_ws.recv())["error"]["code"] == -32602


async def test_airdrop_simulation_and_health(chain: ServedChain, client: AsyncClient) -> None:
    wallet = Keypair()
    async with SolanaWsClient(chain.ws_url) as ws:
        airdrop = await client.request_airdrop(wallet.pubkey(), 2_000_000_000)
        await ws.signature_subscribe(signature=airdrop.value)
        assert (await next_notification(ws, SignatureNotification)).result.value.err is None
    assert (await client.get_balance(wallet.pubkey())).value == 2_000_000_000
    tx = await signed_v0(
        chain,
        [transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000))],
        wallet,
    )
    simulated = (await client.simulate_transaction(tx, sig_verify=True)).value
    assert simulated.err is None
    assert simulated.units_consumed is not None
    assert simulated.units_consumed > 0
    # Simulating changed nothing.
    assert (await client.get_balance(wallet.pubkey())).value == 2_000_000_000
    assert (await raw_call(chain, "getHealth"))["result"] == "ok"
    too_much = await raw_call(chain, "requestAirdrop", str(wallet.pubkey()), 10**13)
    assert too_much["error"]["code"] == -32602


async def test_the_websocket_is_also_on_the_http_port(chain: ServedChain, client: AsyncClient) -> None:
    async with SolanaWsClient(chain.url.replace("http", "ws")) as ws:
        sub = await ws.slot_subscribe()
        note = await next_notification(ws, SlotNotification)
        assert note.subscription == sub.subscription_id


async def test_unknown_methods_and_bad_params_get_json_rpc_errors(chain: ServedChain) -> None:
    assert (await raw_call(chain, "getNothing"))["error"]["code"] == -32601
    assert (await raw_call(chain, "getBalance", "not-a-key"))["error"]["code"] == -32602
    assert (await raw_call(chain, "sendTransaction", "!!"))["error"]["code"] == -32602
    batch = await raw_call_batch(chain, [("getSlot", []), ("getNothing", [])])
    assert "result" in batch[0]
    assert batch[1]["error"]["code"] == -32601


async def raw_call_batch(chain: ServedChain, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    async with httpx.AsyncClient() as http:
        response = await http.post(chain.url, json=body)
    result: list[dict[str, Any]] = response.json()
    return result
