// The OpenVPP web app: sign-in, the prosumer app and the staff console,
// routed by the URL hash so the server serves one page.
import "./style.css";
import { api, ApiError, toBase64 } from "./api";
import { registerDevWallet, devWallet, DEV_WALLET_NAME } from "./devwallet";
import { h, section, toast } from "./dom";
import { renderProsumer } from "./prosumer";
import { renderStaff } from "./staff";
import { connect, listWallets, remember, signMessage, type SolanaWallet } from "./wallets";

interface Me {
  kind: "wallet" | "staff";
  wallet?: string;
  role?: string;
  namespace?: string;
}

const main = document.getElementById("main")!;
let stopPage: () => void = () => {};

function show(...children: Node[]): void {
  stopPage();
  stopPage = () => {};
  main.replaceChildren(...children);
  main.focus();
}

export function fail(error: unknown): void {
  const message = error instanceof ApiError ? `${error.message} (${error.reason})` : String((error as Error)?.message ?? error);
  toast(message);
}

async function me(): Promise<Me | null> {
  try {
    return await api<Me>("/api/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

function accountBar(who: Me | null): void {
  const nav = document.getElementById("account")!;
  if (!who) {
    nav.replaceChildren();
    return;
  }
  const name = who.kind === "wallet" ? `Wallet ${who.wallet!.slice(0, 4)}…${who.wallet!.slice(-4)}` : `${who.namespace} (${who.role})`;
  nav.replaceChildren(
    h("span", { class: "who" }, name),
    h("button", {
      type: "button",
      onclick: async () => {
        await api("/api/auth/logout", {});
        location.hash = "#/";
        await route();
      },
    }, "Sign out"),
  );
}

async function walletSignIn(wallet: SolanaWallet): Promise<void> {
  const account = await connect(wallet);
  const challenge = await api<{ message: string; nonce: string }>("/api/auth/wallet/challenge", { address: account.address });
  const signature = await signMessage(wallet, account, new TextEncoder().encode(challenge.message));
  await api("/api/auth/wallet/verify", { address: account.address, nonce: challenge.nonce, signature: toBase64(signature) });
  remember(wallet, account);
  location.hash = "#/prosumer";
}

async function staffSignIn(code: string): Promise<void> {
  await api("/api/auth/staff", { code: code.trim() });
  location.hash = "#/staff";
}

function signInPage(): void {
  const list = h("ul", { class: "wallets", "aria-label": "Wallets" });
  const stop = listWallets((wallets) => {
    list.replaceChildren(
      ...wallets.map((wallet) =>
        h(
          "li",
          {},
          h("button", { type: "button", class: "wallet", onclick: () => walletSignIn(wallet).catch(fail) },
            h("img", { src: wallet.icon, alt: "", width: "24", height: "24" }),
            `Sign in with ${wallet.name}`,
          ),
        ),
      ),
    );
    if (!wallets.length) list.append(h("li", {}, "No Solana wallet found. Install a wallet extension, or use a development key file below."));
  });
  const keyFile = h("input", { type: "file", id: "keyfile", accept: ".json,application/json" });
  const keyStatus = h("p", { id: "keyfile-status", role: "status" });
  keyFile.addEventListener("change", async () => {
    const file = keyFile.files?.[0];
    if (!file) return;
    try {
      const address = devWallet.load(await file.text());
      keyStatus.textContent = `Key file loaded for ${address}. Now choose "Sign in with ${DEV_WALLET_NAME}".`;
    } catch (error) {
      keyStatus.textContent = "";
      fail(error);
    }
  });
  const code = h("input", { id: "code", name: "code", autocomplete: "one-time-code", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { onsubmit: (e: Event) => { e.preventDefault(); staffSignIn(code.value).catch(fail); } },
    h("label", { for: "code" }, "Login code from ", h("code", {}, "openvpp partner login")),
    code,
    h("button", { type: "submit" }, "Sign in to the console"),
  );
  show(
    h("h1", {}, "Sign in"),
    h("div", { class: "grid two" },
      section("Homeowners and businesses", "prosumer-heading",
        h("p", {}, "Sign in with the Solana wallet your device pays. You sign a one-time message; no password, no transaction."),
        list,
        h("div", { class: "dev" },
          h("h3", {}, "Development wallet"),
          h("p", {}, h("strong", {}, "Development only: "), "signs with a key file you choose, kept in this page's memory. Never use a key that holds real money."),
          h("label", { for: "keyfile" }, "Key file (Solana CLI keypair JSON)"),
          keyFile,
          keyStatus,
        ),
      ),
      section("Utility staff", "staff-heading",
        h("p", {}, "Run ", h("code", {}, "openvpp partner login --bundle <your bundle>"), " and enter the code, or open the link it prints."),
        form,
      ),
    ),
  );
  stopPage = stop;
}

async function route(): Promise<void> {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  try {
    if (path === "/staff/login") {
      const code = new URLSearchParams(query).get("code");
      if (code) await staffSignIn(code);
      return;
    }
    const who = await me();
    accountBar(who);
    if (path === "/prosumer" && who?.kind === "wallet") {
      show();
      stopPage = await renderProsumer(main, who.wallet!);
    } else if (path === "/staff" && who?.kind === "staff") {
      show();
      stopPage = await renderStaff(main, who.role!, who.namespace!);
    } else if (who && path !== "/prosumer" && path !== "/staff") {
      location.hash = who.kind === "wallet" ? "#/prosumer" : "#/staff";
    } else {
      signInPage();
    }
  } catch (error) {
    fail(error);
  }
}

registerDevWallet();
window.addEventListener("hashchange", () => void route());
void route();
