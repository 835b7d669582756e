// A few DOM helpers: elements are built with textContent, never innerHTML,
// so no server string is ever parsed as markup.

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(key.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(key, "");
    else if (value !== false) el.setAttribute(key, value);
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

export function table(caption: string, headers: string[], rows: Child[][], id = ""): HTMLElement {
  const body = rows.length
    ? rows.map((row) => h("tr", {}, ...row.map((cell) => h("td", {}, cell))))
    : [h("tr", {}, h("td", { colspan: String(headers.length), class: "empty" }, "Nothing yet"))];
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      id ? { id } : {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, ...headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, ...body),
    ),
  );
}

export function section(title: string, id: string, ...children: Child[]): HTMLElement {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

export function toast(message: string): void {
  const el = document.getElementById("toast")!;
  el.textContent = message;
  el.classList.add("shown");
  setTimeout(() => el.classList.remove("shown"), 4000);
}

export function signature(sig: string): Node | string {
  return sig ? h("code", { title: sig, class: "sig" }, `${sig.slice(0, 8)}…${sig.slice(-8)}`) : "—";
}
