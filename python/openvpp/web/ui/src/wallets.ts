// Wallets by the Wallet Standard: any installed wallet extension that offers
// connect, signMessage and signTransaction for Solana is listed.
import { getWallets } from "@wallet-standard/app";
import type { Wallet, WalletAccount } from "@wallet-standard/base";
import type { StandardConnectFeature } from "@wallet-standard/features";
import type { SolanaSignMessageFeature, SolanaSignTransactionFeature } from "@solana/wallet-standard-features";

export type SolanaWallet = Wallet & {
  features: StandardConnectFeature & SolanaSignMessageFeature & SolanaSignTransactionFeature;
};

const NEEDED = ["standard:connect", "solana:signMessage", "solana:signTransaction"];

export function usable(wallet: Wallet): wallet is SolanaWallet {
  return NEEDED.every((f) => f in wallet.features) && wallet.chains.some((c) => c.startsWith("solana:"));
}

export function listWallets(onChange: (wallets: SolanaWallet[]) => void): () => void {
  const registry = getWallets();
  const update = () => onChange(registry.get().filter(usable));
  update();
  const offRegister = registry.on("register", update);
  const offUnregister = registry.on("unregister", update);
  return () => {
    offRegister();
    offUnregister();
  };
}

export async function connect(wallet: SolanaWallet): Promise<WalletAccount> {
  const { accounts } = await wallet.features["standard:connect"].connect();
  if (!accounts.length) throw new Error(`${wallet.name} gave no account`);
  return accounts[0];
}

export async function signMessage(wallet: SolanaWallet, account: WalletAccount, message: Uint8Array): Promise<Uint8Array> {
  const [out] = await wallet.features["solana:signMessage"].signMessage({ account, message });
  return out.signature;
}

export async function signTransaction(wallet: SolanaWallet, account: WalletAccount, transaction: Uint8Array): Promise<Uint8Array> {
  const [out] = await wallet.features["solana:signTransaction"].signTransaction({ account, transaction });
  return out.signedTransaction;
}

// The wallet the prosumer signed in with, kept for signing redemptions.
export let current: { wallet: SolanaWallet; account: WalletAccount } | null = null;

export function remember(wallet: SolanaWallet, account: WalletAccount): void {
  current = { wallet, account };
}
