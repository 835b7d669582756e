// The utility staff console: programs, energy and credits, reserves, DR
// events, the settlement stream, the ledger check and device diagnosis.
// Every view is what the signed-in partner's certificate may see.
import { api, follow, rpc } from "./api";
import { chart, hourLabel, hourly } from "./charts";
import { h, section, signature, table } from "./dom";
import { kwh, label, short, units, when } from "./format";
import { fail } from "./main";

export async function renderStaff(root: HTMLElement, role: string, namespace: string): Promise<() => void> {
  const programsBox = h("div", { id: "programs" });
  const seriesBox = h("div", { id: "program-series" });
  const reservesBox = h("div", { id: "reserves" });
  const drBox = h("div", { id: "dr-events" });
  const drDetail = h("div", { id: "dr-detail", "aria-live": "polite" });
  const stream = h("ol", { id: "stream", class: "feed", "aria-label": "Settlement events" });
  const ledgerBox = h("div", { id: "ledger" });
  const diagnoseBox = h("div", { id: "diagnosis", "aria-live": "polite" });

  root.append(
    h("h1", {}, `Console · ${namespace}`),
    h("p", { class: "muted" }, `Signed in as ${role} ${namespace}: you see what this partner's certificate sees.`),
    section("Programs", "programs-heading", programsBox, seriesBox),
    h("div", { class: "grid two" },
      section("Reserves", "reserves-heading", reservesBox),
      section("Ledger check", "ledger-heading", ledgerBox),
    ),
    section("Demand-response events", "dr-heading", drBox, drDetail),
    h("div", { class: "grid two" },
      section("Settlement stream", "stream-heading", h("p", { class: "muted" }, "Live, newest first."), stream),
      section("Diagnose a device", "diagnose-heading", diagnoseForm(diagnoseBox), diagnoseBox),
    ),
  );

  const chain = await rpc<any>("SettlementService", "GetChainInfo");
  const coinDecimals = chain.stablecoinDecimals as number;
  const programs = (await api<any>("/api/staff/programs")).programs as any[];
  programsBox.replaceChildren(programTable(programs, coinDecimals, seriesBox));
  if (programs.length && role !== "device-vendor") void showSeries(programs[0].programId, seriesBox);
  const refreshReserves = async () => reservesBox.replaceChildren(reserveTable((await api<any>("/api/staff/reserves")).reserves, coinDecimals));
  const refreshDr = async () => drBox.replaceChildren(drTable((await api<any>("/api/staff/dr-events")).events, drDetail));
  await Promise.all([refreshReserves(), refreshDr()]);
  ledgerBox.replaceChildren(ledgerButton(ledgerBox));
  void runLedger(ledgerBox);

  let source: EventSource | null = null;
  let pending: number | undefined;
  if (role === "utility" || role === "operator") {
    source = follow("/api/staff/events", (event) => {
      stream.prepend(h("li", {}, h("span", { class: "cursor" }, `#${event.cursor}`), ` ${event.programId} · ${summary(event)}`));
      while (stream.children.length > 50) stream.lastElementChild?.remove();
      clearTimeout(pending);
      pending = window.setTimeout(() => Promise.all([refreshReserves(), refreshDr()]).catch(fail), 500);
    });
  } else {
    stream.append(h("li", {}, "The settlement stream is for utilities and the operator."));
  }
  return () => source?.close();
}

function summary(event: any): string {
  const kind = Object.keys(event).find((k) => !["cursor", "at", "programId"].includes(k)) ?? "event";
  const body = event[kind] ?? {};
  const amount = body.amountBaseUnits ?? body.amountDueBaseUnits;
  const who = body.wallet ?? body.derId ?? body.accountRef ?? "";
  return `${kind.replace(/([A-Z])/g, " $1").toLowerCase()}${who ? " · " + short(who) : ""}${amount ? " · " + amount + " base units" : ""}`;
}

function programTable(programs: any[], coinDecimals: number, seriesBox: HTMLElement): HTMLElement {
  return table("Programs and enrolled devices", ["Program", "Kind", "Active devices", "Pending", "Paid", ""], programs.map((p) => [
    h("span", {}, h("strong", {}, p.name), h("br"), h("code", {}, p.programId)),
    label(p.kind, "PROGRAM_KIND_"),
    String(p.enrolled.ENROLLMENT_STATUS_ACTIVE ?? 0),
    p.settlement ? units(p.settlement.pendingBaseUnits, 6) : "—",
    p.settlement ? units(p.settlement.paidBaseUnits, 6) : "—",
    h("button", { type: "button", onclick: () => showSeries(p.programId, seriesBox).catch(fail) }, `Chart ${p.programId}`),
  ]), "program-table");
  void coinDecimals;
}

async function showSeries(programId: string, box: HTMLElement): Promise<void> {
  let data: any;
  try {
    data = await api<any>(`/api/staff/programs/${programId}/series?hours=48`);
  } catch {
    box.replaceChildren();
    return;
  }
  const labels: string[] = [];
  for (let t = data.start; t < data.end; t += 3600) labels.push(hourLabel(t));
  const by = (rows: any[], f: (r: any) => number) => hourly(data.start, data.end, rows, (r: any) => r.hour, f);
  box.replaceChildren(
    h("h3", {}, `${programId}: last 48 hours`),
    h("div", { class: "grid two" },
      chart(`Energy of ${programId}`, labels, [
        { label: "Imported", values: by(data.energy, (r) => r.importWh / 1000), color: "#b3541e" },
        { label: "Exported", values: by(data.energy, (r) => r.exportWh / 1000), color: "#1f6f43" },
      ], "kWh"),
      chart(`Credits of ${programId}`, labels, [{ label: "Credited", values: by(data.credits, (r) => Number(r.amount) / 1e6), color: "#2b4c9b" }], "tokens"),
    ),
  );
}

function reserveTable(reserves: any[], coinDecimals: number): HTMLElement {
  return table("Reserve coverage, read from chain", ["Token", "Reserve", "Liability", "Coverage", "Slot"], reserves.map(({ token, reserve }) => {
    const bps = Number(reserve.coverageBps);
    return [
      h("span", {}, h("strong", {}, token.symbol), " ", h("code", {}, short(token.mint))),
      units(reserve.reserveBalanceBaseUnits, coinDecimals, 2),
      units(reserve.liabilityBaseUnits, coinDecimals, 2),
      h("span", { class: "coverage", "data-mint": token.mint },
        h("meter", { min: "0", max: "20000", low: "10000", optimum: "15000", value: String(Math.min(bps, 20000)), "aria-label": `coverage of ${token.symbol}` }),
        ` ${(bps / 100).toFixed(1)}% ${reserve.covered ? "covered" : "SHORT"}`,
      ),
      String(reserve.slot),
    ];
  }), "reserve-table");
}

function drTable(events: any[], detail: HTMLElement): HTMLElement {
  return table("Events, newest first", ["Window", "Program", "Devices settled", "Baseline kWh", "Actual kWh", "Reduced kWh", ""], events.map((e) => [
    `${when(e.start)} – ${new Date(e.end * 1000).toLocaleTimeString("en-US", { timeStyle: "short" })}`,
    e.programId,
    h("span", { class: "dr-devices", "data-event": e.eventId }, String(e.devicesSettled)),
    kwh(e.baselineWh),
    kwh(e.actualWh),
    h("span", { class: "dr-performance", "data-event": e.eventId }, kwh(e.performanceWh)),
    h("button", { type: "button", onclick: () => showEvent(e.eventId, detail).catch(fail) }, "Per device"),
  ]), "dr-table");
}

async function showEvent(eventId: string, box: HTMLElement): Promise<void> {
  const answer = await rpc<any>("SettlementService", "GetDrEvent", { eventId });
  const devices = answer.devices as any[];
  const slots = Math.max(0, ...devices.map((d) => d.baselineIntervalsWh.length));
  const sum = (key: string) => Array.from({ length: slots }, (_, i) => devices.reduce((a, d) => a + Number(d[key][i] ?? 0), 0) / 1000);
  const start = Number(answer.event.start ? Date.parse(answer.event.start) / 1000 : 0);
  const labels = Array.from({ length: slots }, (_, i) => new Date((start + i * 900) * 1000).toLocaleTimeString("en-US", { timeStyle: "short" }));
  box.replaceChildren(
    h("h3", {}, `Event ${short(eventId)}: baseline against actual`),
    chart("Baseline and actual load, all devices", labels, [
      { label: "Baseline", values: sum("baselineIntervalsWh"), color: "#7a7a7a", kind: "line" },
      { label: "Actual", values: sum("actualIntervalsWh"), color: "#b3541e" },
    ], "kWh"),
    table("Per device", ["Device", "Baseline kWh", "Actual kWh", "Reduced kWh", "Credited", "Note"], devices.map((d) => [
      h("code", {}, short(d.derId)), kwh(d.baselineWh), kwh(d.actualWh), kwh(d.performanceWh), units(d.creditedBaseUnits, 6), d.note,
    ]), "dr-device-table"),
  );
}

function ledgerButton(box: HTMLElement): HTMLElement {
  return h("button", { type: "button", onclick: () => runLedger(box).catch(fail) }, "Run the ledger check");
}

async function runLedger(box: HTMLElement): Promise<void> {
  let check: any;
  try {
    check = await rpc<any>("SettlementService", "CheckLedger");
  } catch (error) {
    box.replaceChildren(h("p", {}, "The ledger check is for utilities and the operator."));
    return;
  }
  box.replaceChildren(
    h("p", { id: "ledger-status", class: check.ok ? "ok" : "bad" }, check.ok ? `Balanced: ${check.entries} entries, every token and bill agrees with the chain.` : "Problems found"),
    ...check.problems.map((p: string) => h("p", { class: "bad" }, p)),
    table("Tokens", ["Token", "Credited", "Paid", "Supply", "OK"], check.tokens.map((t: any) => [
      h("code", {}, short(t.mint)), units(t.creditedBaseUnits, 6), units(t.paidBaseUnits, 6), units(t.supplyBaseUnits, 6), t.ok ? "yes" : "no",
    ])),
    ledgerButton(box),
  );
}

function diagnoseForm(box: HTMLElement): HTMLElement {
  const device = h("input", { id: "diagnose-device", name: "device", required: true, spellcheck: "false", autocomplete: "off" });
  const program = h("input", { id: "diagnose-program", name: "program", spellcheck: "false", autocomplete: "off" });
  return h("form", {
    onsubmit: async (e: Event) => {
      e.preventDefault();
      try {
        const answer = await rpc<any>("RoutingService", "Diagnose", { device: { any: device.value.trim() }, programId: program.value.trim() });
        box.replaceChildren(
          h("p", { class: answer.routable ? "ok" : "bad", id: "diagnosis-verdict" }, answer.routable ? `${short(answer.derId)} is routable` : `${short(answer.derId || device.value)} is not routable`),
          h("ol", { class: "checks" }, ...answer.checks.map((c: any) =>
            h("li", { class: c.state === "CHECK_STATE_PASS" ? "ok" : c.state === "CHECK_STATE_FAIL" ? "bad" : "" },
              h("strong", {}, `${label(c.state, "CHECK_STATE_")}: ${c.name}`), h("br"), c.detail, c.remedy ? h("span", {}, h("br"), `Fix: ${c.remedy}`) : null,
            ),
          )),
        );
      } catch (error) {
        box.replaceChildren();
        fail(error);
      }
    },
  },
    h("label", { for: "diagnose-device" }, "Device (der_id, name or alias)"), device,
    h("label", { for: "diagnose-program" }, "Program (optional)"), program,
    h("button", { type: "submit" }, "Diagnose"),
  );
}

export { signature };
