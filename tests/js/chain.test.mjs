// `openvpp chain serve` through @solana/web3.js 1.x and @solana/spl-token,
// the clients most wallets and dApps are written with. Run by
// tests/integration/test_chain_rpc_web3js.py, which serves a fresh chain and
// passes its URL, a funded payer and an OpenVPP-style Token-2022 mint.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as spl from "@solana/spl-token";
import {
  ComputeBudgetProgram,
  Connection,
  Keypair,
  PublicKey,
  SendTransactionError,
  SystemProgram,
  Transaction,
  TransactionMessage,
  VersionedTransaction,
  sendAndConfirmTransaction,
} from "@solana/web3.js";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};

// No wsEndpoint: web3.js finds the PubSub on the port after the HTTP one.
const connection = new Connection(env("OPENVPP_RPC_URL"), "confirmed");
const payer = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(env("OPENVPP_PAYER"))));
const metadataMint = new PublicKey(env("OPENVPP_METADATA_MINT"));

const within = (ms, promise, what) => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

let mint;
let alice;
let bob;
let aliceAta;
let bobAta;
let transferSignature;

before(async () => {
  alice = Keypair.generate();
  bob = Keypair.generate();
  // createMint, the ATA helpers, mintTo and transfer all confirm through
  // signatureSubscribe: each resolves only if the WebSocket answers.
  mint = await within(30_000, spl.createMint(connection, payer, payer.publicKey, null, 6), "createMint");
  aliceAta = (await spl.getOrCreateAssociatedTokenAccount(connection, payer, mint, alice.publicKey)).address;
  bobAta = (await spl.getOrCreateAssociatedTokenAccount(connection, payer, mint, bob.publicKey)).address;
  await spl.mintTo(connection, payer, mint, aliceAta, payer, 5_000_000n);
  transferSignature = await spl.transfer(connection, payer, aliceAta, bobAta, alice, 1_500_000n);
});

after(async () => {
  // The WebSocket client reconnects forever unless told to stop.
  connection._rpcWebSocket.close();
});

test("sendAndConfirmTransaction confirms a transfer and the balance shows it", async () => {
  const to = Keypair.generate().publicKey;
  const tx = new Transaction().add(SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports: 2_000_000 }));
  const signature = await within(30_000, sendAndConfirmTransaction(connection, tx, [payer]), "sendAndConfirmTransaction");
  assert.equal(await connection.getBalance(to), 2_000_000);
  const [status] = (await connection.getSignatureStatuses([signature])).value;
  assert.equal(status.err, null);
  assert.equal(status.confirmationStatus, "finalized");
});

test("confirmTransaction with a blockhash strategy resolves for a versioned transaction", async () => {
  const latest = await connection.getLatestBlockhash();
  const to = Keypair.generate().publicKey;
  assert.equal(await connection.isBlockhashValid(latest.blockhash).then((r) => r.value), true);
  const message = new TransactionMessage({
    payerKey: payer.publicKey,
    recentBlockhash: latest.blockhash,
    instructions: [
      ComputeBudgetProgram.setComputeUnitLimit({ units: 10_000 }),
      ComputeBudgetProgram.setComputeUnitPrice({ microLamports: 100_000 }),
      SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports: 1_000_000 }),
    ],
  }).compileToV0Message();
  const fee = (await connection.getFeeForMessage(message)).value;
  assert.equal(fee, 5000 + 1000);
  const tx = new VersionedTransaction(message);
  tx.sign([payer]);
  const signature = await connection.sendTransaction(tx);
  const confirmed = await within(30_000, connection.confirmTransaction({ signature, ...latest }), "confirmTransaction");
  assert.equal(confirmed.value.err, null);
  const landed = await connection.getTransaction(signature, { maxSupportedTransactionVersion: 0 });
  assert.equal(landed.version, 0);
  assert.equal(landed.meta.fee, fee);
  assert.deepEqual(landed.meta.loadedAddresses, { writable: [], readonly: [] });
  assert.ok(landed.blockTime > 1_700_000_000);
  // Per slot, the lowest bid among transactions writing all the given
  // accounts: only this one writes `to`.
  const fees = await connection.getRecentPrioritizationFees({ lockedWritableAccounts: [to] });
  assert.ok(fees.some((f) => f.prioritizationFee === 100_000), JSON.stringify(fees));
});

test("a wallet lists its token accounts, parsed and raw, and the largest holders", async () => {
  const parsed = await connection.getParsedTokenAccountsByOwner(alice.publicKey, { mint });
  assert.equal(parsed.value.length, 1);
  assert.ok(parsed.value[0].pubkey.equals(aliceAta));
  const info = parsed.value[0].account.data.parsed.info;
  assert.equal(info.tokenAmount.amount, "3500000");
  assert.equal(info.tokenAmount.uiAmountString, "3.5");
  assert.equal(info.mint, mint.toBase58());
  const raw = await connection.getTokenAccountsByOwner(bob.publicKey, { programId: spl.TOKEN_PROGRAM_ID });
  assert.equal(raw.value.length, 1);
  assert.equal(spl.AccountLayout.decode(raw.value[0].account.data).amount, 1_500_000n);
  const account = await spl.getAccount(connection, bobAta);
  assert.equal(account.amount, 1_500_000n);
  const largest = await connection.getTokenLargestAccounts(mint);
  assert.deepEqual(
    largest.value.map((a) => [a.address.toBase58(), a.amount]),
    [
      [aliceAta.toBase58(), "3500000"],
      [bobAta.toBase58(), "1500000"],
    ],
  );
  const supply = await connection.getTokenSupply(mint);
  assert.equal(supply.value.amount, "5000000");
  const balance = await connection.getTokenAccountBalance(aliceAta);
  assert.equal(balance.value.uiAmount, 3.5);
});

test("transactions parse: instructions, token balances and signature history", async () => {
  const parsed = await connection.getParsedTransaction(transferSignature, { maxSupportedTransactionVersion: 0 });
  const [instruction] = parsed.transaction.message.instructions;
  assert.equal(instruction.program, "spl-token");
  assert.equal(instruction.parsed.type, "transfer");
  assert.equal(instruction.parsed.info.amount, "1500000");
  assert.equal(instruction.parsed.info.source, aliceAta.toBase58());
  const keys = parsed.transaction.message.accountKeys;
  assert.ok(keys[0].signer && keys[0].writable);
  const post = Object.fromEntries(parsed.meta.postTokenBalances.map((b) => [b.owner, b.uiTokenAmount.amount]));
  assert.deepEqual(post, { [alice.publicKey.toBase58()]: "3500000", [bob.publicKey.toBase58()]: "1500000" });
  assert.ok(parsed.meta.preBalances.length === keys.length && parsed.meta.postBalances.length === keys.length);

  const plain = await connection.getTransaction(transferSignature, { maxSupportedTransactionVersion: 0 });
  assert.equal(plain.version, "legacy");
  assert.equal(plain.transaction.signatures[0], transferSignature);

  const history = await connection.getSignaturesForAddress(aliceAta);
  assert.equal(history[0].signature, transferSignature);
  assert.ok(history.length >= 3); // created, minted to, transferred from
  const page = await connection.getSignaturesForAddress(aliceAta, { before: transferSignature, limit: 1 });
  assert.equal(page.length, 1);
  assert.equal(page[0].signature, history[1].signature);
});

test("Token-2022: a new mint reads back, and OpenVPP's metadata parses", async () => {
  const mint2022 = await spl.createMint(connection, payer, payer.publicKey, null, 2, undefined, undefined, spl.TOKEN_2022_PROGRAM_ID);
  const info = await spl.getMint(connection, mint2022, "confirmed", spl.TOKEN_2022_PROGRAM_ID);
  assert.equal(info.decimals, 2);
  const metadata = await spl.getTokenMetadata(connection, metadataMint);
  assert.equal(metadata.name, "Solar credit");
  assert.equal(metadata.symbol, "SOLAR");
  assert.deepEqual(metadata.additionalMetadata, [["unit", "kWh"]]);
  const parsed = await connection.getParsedAccountInfo(metadataMint);
  assert.equal(parsed.value.data.program, "spl-token-2022");
  const extensions = parsed.value.data.parsed.info.extensions.map((e) => e.extension);
  assert.ok(extensions.includes("metadataPointer") && extensions.includes("tokenMetadata"), extensions.join());
});

test("onAccountChange, onProgramAccountChange, onLogs and onSlotChange fire", async () => {
  const account = new Promise((resolve) => {
    const id = connection.onAccountChange(
      bobAta,
      (info) => {
        connection.removeAccountChangeListener(id);
        resolve(spl.AccountLayout.decode(info.data).amount);
      },
      { commitment: "confirmed" },
    );
  });
  const program = new Promise((resolve) => {
    const id = connection.onProgramAccountChange(
      spl.TOKEN_PROGRAM_ID,
      (keyed) => {
        connection.removeProgramAccountChangeListener(id);
        resolve(keyed.accountId.toBase58());
      },
      { commitment: "confirmed", filters: [{ dataSize: 165 }, { memcmp: { offset: 32, bytes: bob.publicKey.toBase58() } }] },
    );
  });
  const logs = new Promise((resolve) => {
    const id = connection.onLogs(bobAta, (entry) => {
      connection.removeOnLogsListener(id);
      resolve(entry);
    });
  });
  const slot = new Promise((resolve) => {
    const id = connection.onSlotChange((info) => {
      connection.removeSlotChangeListener(id);
      resolve(info.slot);
    });
  });
  // Let the subscriptions be acknowledged before the change they wait for.
  await new Promise((r) => setTimeout(r, 500));
  const signature = await spl.mintTo(connection, payer, mint, bobAta, payer, 250n);
  assert.equal(await within(15_000, account, "onAccountChange"), 1_500_250n);
  assert.equal(await within(15_000, program, "onProgramAccountChange"), bobAta.toBase58());
  const entry = await within(15_000, logs, "onLogs");
  assert.equal(entry.signature, signature);
  assert.equal(entry.err, null);
  assert.ok((await within(15_000, slot, "onSlotChange")) > 0);
});

test("preflight refuses a transfer the payer cannot afford, with its logs, and charges nothing", async () => {
  const broke = Keypair.generate();
  await sendAndConfirmTransaction(
    connection,
    new Transaction().add(SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: broke.publicKey, lamports: 1_000_000 })),
    [payer],
  );
  const tooMuch = new Transaction().add(
    SystemProgram.transfer({ fromPubkey: broke.publicKey, toPubkey: payer.publicKey, lamports: 900_000_000 }),
  );
  await assert.rejects(connection.sendTransaction(tooMuch, [broke]), (error) => {
    assert.ok(error instanceof SendTransactionError, String(error));
    assert.ok(error.logs.some((line) => line.includes("insufficient lamports")), error.logs.join("\n"));
    return true;
  });
  assert.equal(await connection.getBalance(broke.publicKey), 1_000_000);
  const simulated = await connection.simulateTransaction(tooMuch, [broke]);
  assert.deepEqual(simulated.value.err, { InstructionError: [0, { Custom: 1 }] });
});

test("cluster facts: genesis hash, epoch, version, slots and rent", async () => {
  const genesis = await connection.getGenesisHash();
  assert.equal(new PublicKey(genesis).toBase58(), genesis);
  assert.equal(await connection.getGenesisHash(), genesis);
  const epoch = await connection.getEpochInfo();
  assert.equal(epoch.epoch, Math.floor(epoch.absoluteSlot / epoch.slotsInEpoch));
  assert.ok(epoch.transactionCount > 0);
  assert.ok((await connection.getSlot()) >= epoch.absoluteSlot);
  assert.ok((await connection.getBlockHeight()) > 0);
  const schedule = await connection.getEpochSchedule();
  assert.equal(schedule.slotsPerEpoch, epoch.slotsInEpoch);
  assert.ok((await connection.getTransactionCount()) >= epoch.transactionCount);
  assert.ok((await connection.getVersion())["solana-core"]);
  assert.equal(await connection.getMinimumBalanceForRentExemption(165), await spl.getMinimumBalanceForRentExemptAccount(connection));
  const accounts = await connection.getMultipleAccountsInfo([aliceAta, Keypair.generate().publicKey]);
  assert.ok(accounts[0].owner.equals(spl.TOKEN_PROGRAM_ID));
  assert.equal(accounts[1], null);
  const holders = await connection.getProgramAccounts(spl.TOKEN_PROGRAM_ID, {
    filters: [{ dataSize: 165 }, { memcmp: { offset: 0, bytes: mint.toBase58() } }],
  });
  assert.equal(holders.length, 2);
});
