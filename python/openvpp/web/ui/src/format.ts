// Exact money: base units arrive as decimal strings and are kept as BigInt.

export function units(base: string | number | bigint, decimals: number, places = decimals): string {
  const value = BigInt(base);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  let fraction = (abs % scale).toString().padStart(decimals, "0").slice(0, places);
  fraction = places > 0 ? "." + fraction : "";
  return (negative ? "-" : "") + whole.toLocaleString("en-US") + fraction;
}

export function kwh(wh: number | string): string {
  return (Number(wh) / 1000).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 3 });
}

export function when(seconds: number | string): string {
  return new Date(Number(seconds) * 1000).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" });
}

export function whenIso(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" }) : "—";
}

export function short(address: string): string {
  return address.length > 12 ? `${address.slice(0, 4)}…${address.slice(-4)}` : address;
}

export function label(enumName: string, prefix: string): string {
  const text = enumName.replace(prefix, "").replaceAll("_", " ").toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
}
