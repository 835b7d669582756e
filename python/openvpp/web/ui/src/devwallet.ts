// DEVELOPMENT ONLY. A Wallet Standard wallet that signs with a key file the
// user picks (a Solana CLI keypair: a JSON array of 64 bytes). It is for the
// demo and the browser tests, where no wallet extension is installed; it
// keeps the key in this page's memory only and says so wherever it appears.
// Written here because no published wallet signs from a file the user gives.
import { ed25519 } from "@noble/curves/ed25519.js";
import type { Wallet, WalletAccount, WalletIcon } from "@wallet-standard/base";
import { registerWallet } from "@wallet-standard/wallet";
import bs58 from "bs58";

const ICON: WalletIcon =
  "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAzMiAzMiI+PHJlY3Qgd2lkdGg9IjMyIiBoZWlnaHQ9IjMyIiByeD0iNiIgZmlsbD0iIzg4MTMzNyIvPjx0ZXh0IHg9IjE2IiB5PSIyMiIgZm9udC1zaXplPSIxNCIgdGV4dC1hbmNob3I9Im1pZGRsZSIgZmlsbD0iI2ZmZiI+REVWPC90ZXh0Pjwvc3ZnPg==";
export const DEV_WALLET_NAME = "Development key file (development only)";
const CHAINS = ["solana:localnet", "solana:devnet"] as const;

/** Reads a Solana CLI keypair file and checks its public half. */
export function parseKeyFile(text: string): { secret: Uint8Array; publicKey: Uint8Array } {
  let bytes: unknown;
  try {
    bytes = JSON.parse(text);
  } catch {
    throw new Error("the key file is not JSON (expected a Solana CLI keypair: 64 numbers)");
  }
  if (!Array.isArray(bytes) || bytes.length !== 64 || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) {
    throw new Error("the key file must hold 64 bytes, as `solana-keygen` writes");
  }
  const all = Uint8Array.from(bytes as number[]);
  const secret = all.slice(0, 32);
  const publicKey = ed25519.getPublicKey(secret);
  if (!publicKey.every((b, i) => b === all[32 + i])) throw new Error("the key file's public key does not match its secret");
  return { secret, publicKey };
}

function readShortVec(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let shift = 0, i = at; ; shift += 7, i++) {
    const b = bytes[i];
    value |= (b & 0x7f) << shift;
    if (!(b & 0x80)) return [value, i + 1];
  }
}

/** Signs a wire transaction (legacy or v0) in the slot of `publicKey`. */
export function signWire(wire: Uint8Array, secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const [count, sigStart] = readShortVec(wire, 0);
  const messageStart = sigStart + 64 * count;
  const message = wire.slice(messageStart);
  const headerAt = message[0] & 0x80 ? 1 : 0;
  const required = message[headerAt];
  const [keys, keysAt] = readShortVec(message, headerAt + 3);
  for (let i = 0; i < Math.min(required, keys, count); i++) {
    const key = message.slice(keysAt + 32 * i, keysAt + 32 * (i + 1));
    if (key.every((b, j) => b === publicKey[j])) {
      const signed = wire.slice();
      signed.set(ed25519.sign(message, secret), sigStart + 64 * i);
      return signed;
    }
  }
  throw new Error("this transaction does not ask the key file's account to sign");
}

class KeyFileWallet implements Wallet {
  readonly version = "1.0.0" as const;
  readonly name = DEV_WALLET_NAME;
  readonly icon = ICON;
  readonly chains = CHAINS;
  #accounts: WalletAccount[] = [];
  #secret: Uint8Array | null = null;
  #listeners = new Set<(props: { accounts: readonly WalletAccount[] }) => void>();

  get accounts(): readonly WalletAccount[] {
    return this.#accounts;
  }

  load(text: string): string {
    const { secret, publicKey } = parseKeyFile(text);
    this.#secret = secret;
    const address = bs58.encode(publicKey);
    this.#accounts = [
      {
        address,
        publicKey,
        chains: CHAINS,
        features: ["solana:signMessage", "solana:signTransaction"],
        label: "key file",
      },
    ];
    for (const listener of this.#listeners) listener({ accounts: this.#accounts });
    return address;
  }

  #key(account: WalletAccount): Uint8Array {
    if (!this.#secret || account.address !== this.#accounts[0]?.address) throw new Error("load the key file first");
    return this.#secret;
  }

  get features() {
    return {
      "standard:connect": {
        version: "1.0.0" as const,
        connect: async () => {
          if (!this.#accounts.length) throw new Error("choose a key file first");
          return { accounts: this.#accounts };
        },
      },
      "standard:disconnect": {
        version: "1.0.0" as const,
        disconnect: async () => {
          this.#secret = null;
          this.#accounts = [];
        },
      },
      "standard:events": {
        version: "1.0.0" as const,
        on: (_event: "change", listener: (props: { accounts: readonly WalletAccount[] }) => void) => {
          this.#listeners.add(listener);
          return () => this.#listeners.delete(listener);
        },
      },
      "solana:signMessage": {
        version: "1.0.0" as const,
        signMessage: async (...inputs: { account: WalletAccount; message: Uint8Array }[]) =>
          inputs.map(({ account, message }) => ({
            signedMessage: message,
            signature: ed25519.sign(message, this.#key(account)),
          })),
      },
      "solana:signTransaction": {
        version: "1.0.0" as const,
        supportedTransactionVersions: ["legacy", 0] as const,
        signTransaction: async (...inputs: { account: WalletAccount; transaction: Uint8Array }[]) =>
          inputs.map(({ account, transaction }) => ({
            signedTransaction: signWire(transaction, this.#key(account), account.publicKey as Uint8Array),
          })),
      },
    };
  }
}

export const devWallet = new KeyFileWallet();

export function registerDevWallet(): void {
  registerWallet(devWallet);
}
