// The prosumer app: devices, energy, live earnings, balances, payouts, bills, redeem.
import { api, follow, fromBase64, toBase64 } from "./api";
import { chart, hourLabel, hourly } from "./charts";
import { h, section, signature, table, toast } from "./dom";
import { kwh, label, short, units, whenIso } from "./format";
import { fail } from "./main";
import { current, signTransaction } from "./wallets";

interface Balance {
  mint: string;
  symbol: string;
  name: string;
  decimals: number;
  credited: string;
  pending: string;
  paid: string;
  redeemed: string;
  onChain: string;
  stablecoinValue: string;
}

export async function renderProsumer(root: HTMLElement, wallet: string): Promise<() => void> {
  const overview = await api<any>("/api/prosumer/overview");
  const coin = overview.stablecoin as { decimals: number };
  const earned = h("output", { id: "earned-live", "aria-live": "polite" }, "0");
  let earnedBase = 0n;
  let earnedDecimals = 6;
  const balancesBox = h("div", { id: "balances" });
  const payoutsBox = h("div", { id: "payouts" });
  const energyBox = h("div", { id: "energy" });
  const billBox = h("div", { id: "bill" });
  const feed = h("ol", { id: "live-feed", class: "feed", "aria-label": "Settlement events for this wallet" });

  root.append(
    h("h1", {}, "Your energy"),
    h("p", { class: "muted" }, "Wallet ", h("code", { id: "wallet-address" }, wallet)),
    h("div", { class: "grid two" },
      section("Devices", "devices-heading", devices(overview)),
      section("Earnings, live", "live-heading",
        h("p", { class: "big" }, "Earned since you opened this page: ", earned),
        h("p", { class: "muted" }, "Credits appear here as the settlement engine records your readings."),
        feed,
      ),
    ),
    section("Energy", "energy-heading", energyBox),
    section("Balances", "balances-heading", balancesBox),
    section("Current bill", "bill-heading", billBox),
    section("Payouts and redemptions", "payouts-heading", payoutsBox),
  );

  let balances: Balance[] = [];
  const refreshBalances = async () => {
    balances = (await api<{ balances: Balance[] }>("/api/prosumer/balances")).balances;
    earnedDecimals = balances[0]?.decimals ?? 6;
    balancesBox.replaceChildren(balanceTable(balances, coin.decimals), redeemForm(balances, refreshAll));
  };
  const refreshPayouts = async () => payoutsBox.replaceChildren(payoutTables(await api<any>("/api/prosumer/payouts"), balances));
  const refreshEnergy = async () => energyBox.replaceChildren(...energyCharts(await api<any>("/api/prosumer/energy?hours=24"), balances));
  const refreshBill = async () => billBox.replaceChildren(bills((await api<any>("/api/prosumer/bills")).bills, coin.decimals));
  const refreshAll = async () => {
    await refreshBalances();
    await Promise.all([refreshPayouts(), refreshEnergy(), refreshBill()]);
  };
  await refreshAll();

  let pending: number | undefined;
  const source = follow("/api/prosumer/events", (event) => {
    const credit = event.credit;
    if (credit) {
      earnedBase += BigInt(credit.amountBaseUnits ?? "0");
      earned.textContent = units(earnedBase, earnedDecimals);
    }
    feed.prepend(h("li", {}, describe(event, balances)));
    while (feed.children.length > 20) feed.lastElementChild?.remove();
    // Many events arrive together: refresh once they settle down.
    clearTimeout(pending);
    pending = window.setTimeout(() => refreshAll().catch(fail), 400);
  });
  return () => source.close();
}

function devices(overview: any): HTMLElement {
  const rows = overview.devices.map((d: any) => [
    d.record?.label || short(d.derId),
    label(d.record?.kind ?? "DEVICE_KIND_UNSPECIFIED", "DEVICE_KIND_"),
    h("span", { class: "status" }, label(d.status, "DEVICE_STATUS_")),
    d.record?.vendorNamespace ?? "",
  ]);
  const enrolled = overview.enrollments.map((e: any) => [e.programName, e.programId, e.accountRef, label(String(e.status), "")]);
  const last = overview.lastReadingEnd ? new Date(overview.lastReadingEnd * 1000).toLocaleString() : "no readings yet";
  return h("div", {},
    table("Devices paying this wallet", ["Device", "Kind", "Status", "Vendor"], rows, "device-table"),
    table("Programs", ["Program", "Id", "Account", "Status"], enrolled, "enrollment-table"),
    h("p", { class: "muted" }, `Last reading: ${last}`),
  );
}

function symbolOf(mint: string, balances: Balance[]): Balance | undefined {
  return balances.find((b) => b.mint === mint);
}

function describe(event: any, balances: Balance[]): string {
  const token = (mint: string) => symbolOf(mint, balances);
  if (event.credit) {
    const t = token(event.credit.mint);
    return `Credited ${units(event.credit.amountBaseUnits, t?.decimals ?? 6)} ${t?.symbol ?? ""} for ${kwh(event.credit.energyWh ?? 0)} kWh`;
  }
  const payout = event.payoutSent ?? event.payoutConfirmed ?? event.payoutFailed;
  if (payout) {
    const t = token(payout.mint);
    const state = event.payoutConfirmed ? "confirmed" : event.payoutFailed ? "failed" : "sent";
    return `Payout ${state}: ${units(payout.amountBaseUnits, t?.decimals ?? 6)} ${t?.symbol ?? ""}`;
  }
  if (event.redemption) return `Redemption ${label(event.redemption.redemption.state, "REDEMPTION_STATE_")}`;
  return "Settlement event";
}

function balanceTable(balances: Balance[], coinDecimals: number): HTMLElement {
  return table(
    "Token balances and their stablecoin value",
    ["Token", "On chain", "Worth (stablecoin)", "Credited", "Pending payout", "Redeemed"],
    balances.map((b) => [
      `${b.symbol} · ${b.name}`,
      h("span", { "data-mint": b.mint, class: "on-chain" }, units(b.onChain, b.decimals)),
      units(b.stablecoinValue, coinDecimals, 2),
      units(b.credited, b.decimals),
      units(b.pending, b.decimals),
      units(b.redeemed, b.decimals),
    ]),
    "balance-table",
  );
}

function parseAmount(text: string, decimals: number): bigint {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match || (match[2]?.length ?? 0) > decimals) throw new Error(`enter an amount with at most ${decimals} decimals`);
  return BigInt(match[1]) * 10n ** BigInt(decimals) + BigInt((match[2] ?? "").padEnd(decimals, "0") || "0");
}

function redeemForm(balances: Balance[], refresh: () => Promise<void>): HTMLElement {
  const held = balances.filter((b) => BigInt(b.onChain) > 0n);
  const select = h("select", { id: "redeem-token", name: "token" }, ...held.map((b) => h("option", { value: b.mint }, b.symbol)));
  const amount = h("input", { id: "redeem-amount", name: "amount", inputmode: "decimal", required: true, autocomplete: "off" });
  const outcome = h("p", { id: "redeem-outcome", role: "status" });
  const button = h("button", { type: "submit" }, "Redeem");
  const form = h("form", {
    class: "inline",
    onsubmit: async (e: Event) => {
      e.preventDefault();
      button.disabled = true;
      try {
        const token = balances.find((b) => b.mint === select.value)!;
        if (!current) throw new Error("sign in again with your wallet to sign a redemption");
        const base = parseAmount(amount.value, token.decimals);
        outcome.textContent = "Preparing…";
        const prepared = await api<any>("/api/prosumer/redemptions", { mint: token.mint, amount: base.toString() });
        outcome.textContent = "Waiting for your wallet's signature…";
        const signed = await signTransaction(current.wallet, current.account, fromBase64(prepared.transaction));
        outcome.textContent = "Submitting…";
        const done = await api<any>(`/api/prosumer/redemptions/${prepared.redemptionId}/submit`, { transaction: toBase64(signed) });
        outcome.replaceChildren(`Redemption ${label(done.state, "REDEMPTION_STATE_").toLowerCase()}: ${units(done.amountBaseUnits, token.decimals)} ${token.symbol}, signature `, signature(done.signature));
        toast("Redemption submitted");
        await refresh();
      } catch (error) {
        outcome.textContent = "";
        fail(error);
      } finally {
        button.disabled = false;
      }
    },
  },
    h("label", { for: "redeem-token" }, "Token"), select,
    h("label", { for: "redeem-amount" }, "Amount"), amount,
    button,
  );
  return held.length ? h("div", {}, h("h3", {}, "Redeem tokens for stablecoin"), form, outcome) : h("p", { class: "muted" }, "No tokens on chain to redeem yet.");
}

function payoutTables(data: any, balances: Balance[]): HTMLElement {
  const tok = (mint: string) => symbolOf(mint, balances);
  return h("div", {},
    table("Payouts", ["When", "Amount", "State", "Signature"], data.payouts.map((p: any) => [
      whenIso(p.createdAt),
      `${units(p.amountBaseUnits, tok(p.mint)?.decimals ?? 6)} ${tok(p.mint)?.symbol ?? ""}`,
      label(p.state, "PAYOUT_STATE_"),
      signature(p.signature),
    ]), "payout-table"),
    table("Redemptions", ["When", "Amount", "Paid", "State", "Signature"], data.redemptions.map((r: any) => [
      new Date(Number(r.createdAtUs) / 1000).toLocaleString(),
      `${units(r.amount, tok(r.mint)?.decimals ?? 6)} ${r.symbol}`,
      units(r.payout, 6),
      label(r.state, "REDEMPTION_STATE_"),
      signature(r.signature),
    ]), "redemption-table"),
  );
}

function energyCharts(data: any, balances: Balance[]): Node[] {
  const labels: string[] = [];
  for (let t = data.start; t < data.end; t += 3600) labels.push(hourLabel(t));
  const imported = hourly(data.start, data.end, data.energy, (r: any) => r.hour, (r: any) => r.importWh / 1000);
  const exported = hourly(data.start, data.end, data.energy, (r: any) => r.hour, (r: any) => r.exportWh / 1000);
  const decimals = balances[0]?.decimals ?? 6;
  const credited = hourly(data.start, data.end, data.credits, (r: any) => r.hour, (r: any) => Number(r.amount) / 10 ** decimals);
  const totalIn = imported.reduce((a, b) => a + b, 0);
  const totalOut = exported.reduce((a, b) => a + b, 0);
  return [
    h("p", { id: "energy-totals" }, `Last 24 hours: imported ${totalIn.toFixed(1)} kWh, exported ${totalOut.toFixed(1)} kWh.`),
    h("div", { class: "grid two" },
      chart("Energy", labels, [
        { label: "Imported", values: imported, color: "#b3541e" },
        { label: "Exported", values: exported, color: "#1f6f43" },
      ], "kWh"),
      chart("Credits earned", labels, [{ label: "Credited", values: credited, color: "#2b4c9b" }], "tokens"),
    ),
    data.dr.length
      ? table("Demand-response events", ["Event", "Baseline kWh", "Actual kWh", "Reduced kWh", "Credited"], data.dr.map((r: any) => [
          new Date(r.start * 1000).toLocaleString(), kwh(r.baselineWh), kwh(r.actualWh), kwh(r.performanceWh), units(r.credited, decimals),
        ]), "dr-table")
      : h("p", { class: "muted" }, "No demand-response events yet."),
  ];
}

function cents(r: { numerator: string; denominator: string } | undefined): string {
  if (!r) return "0.00";
  const micro = (BigInt(r.numerator) * 1000n) / BigInt(r.denominator); // thousandths of a micro-unit
  return units(micro / 1000n, 6, 2);
}

function bills(found: any[], coinDecimals: number): HTMLElement {
  if (!found.length) return h("p", { class: "muted" }, "None of your programs bills you through OpenVPP.");
  return h("div", {}, ...found.map((bill) =>
    h("div", { class: "bill" },
      h("p", { class: "big" }, `Amount due ${units(bill.amountDueBaseUnits ?? "0", coinDecimals, 2)}`),
      h("p", { class: "muted" }, `${bill.programId} · account ${bill.accountRef} · ${bill.periodStart} to ${bill.periodEnd} · ${label(bill.state, "BILL_STATE_")}`),
      h("p", {}, `Imported ${kwh(bill.importedWh ?? 0)} kWh, exported ${kwh(bill.exportedWh ?? 0)} kWh`),
      table("Bill lines (rounded to cents; the bill itself is exact)", ["Line", "Period", "Amount"], (bill.lines ?? []).map((l: any) => [
        label(l.kind, "BILL_LINE_KIND_"), l.period === undefined ? "" : String(l.period), cents(l.amountMicro),
      ])),
    ),
  ));
}
