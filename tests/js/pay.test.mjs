// OpenVPP's Solana Pay transfer requests through @solana/pay, the library
// wallets and point-of-sale apps use: the URL OpenVPP gives a bill parses,
// the library's own transfer pays it on `openvpp chain serve`, and its
// validation and reference lookup find that payment. Run by
// tests/integration/test_chain_rpc_web3js.py, which passes the URL (made
// by openvpp.billing.payrequest), the values it must carry and a payer
// holding the token.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createTransfer, findReference, parseURL, validateTransfer } from "@solana/pay";
import { Connection, Keypair, PublicKey, sendAndConfirmTransaction } from "@solana/web3.js";
import BigNumber from "bignumber.js";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};

const connection = new Connection(env("OPENVPP_RPC_URL"), "confirmed");
const payer = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(env("OPENVPP_PAYER"))));

test("a bill's transfer request parses, pays and validates with @solana/pay", async () => {
  const request = parseURL(env("OPENVPP_PAY_URL"));
  assert.equal(request.recipient.toBase58(), env("OPENVPP_PAY_RECIPIENT"));
  assert.equal(request.splToken.toBase58(), env("OPENVPP_PAY_MINT"));
  assert.ok(request.amount.isEqualTo(new BigNumber(env("OPENVPP_PAY_AMOUNT"))), request.amount.toString());
  assert.equal(request.reference.length, 1);
  assert.equal(request.reference[0].toBase58(), env("OPENVPP_PAY_REFERENCE"));
  assert.equal(request.label, env("OPENVPP_PAY_LABEL"));
  assert.equal(request.memo, env("OPENVPP_PAY_MEMO"));

  const { recipient, amount, splToken, reference, memo } = request;
  const tx = await createTransfer(connection, payer.publicKey, { recipient, amount, splToken, reference, memo });
  const signature = await sendAndConfirmTransaction(connection, tx, [payer], { commitment: "confirmed" });
  const found = await findReference(connection, reference[0], { finality: "confirmed" });
  assert.equal(found.signature, signature);
  await validateTransfer(connection, signature, { recipient, amount, splToken, reference }, { commitment: "confirmed" });
  console.log(`PAID ${signature}`);
});

test("a transfer of another amount does not validate", async () => {
  const request = parseURL(env("OPENVPP_PAY_URL"));
  const { recipient, splToken, reference } = request;
  const other = new PublicKey(Keypair.generate().publicKey);
  const tx = await createTransfer(connection, payer.publicKey, {
    recipient,
    amount: request.amount.minus(new BigNumber("0.000001")),
    splToken,
    reference: [other],
  });
  const signature = await sendAndConfirmTransaction(connection, tx, [payer], { commitment: "confirmed" });
  await assert.rejects(
    validateTransfer(connection, signature, { recipient, amount: request.amount, splToken, reference: [other] }),
  );
});
