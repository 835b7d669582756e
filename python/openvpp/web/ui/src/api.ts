// The web API: JSON over fetch on this origin, errors with the server's reason.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly field = "",
  ) {
    super(message);
  }
}

export async function api<T>(path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const error = data.error ?? {};
    const field = error.fieldViolations?.[0]?.field ?? "";
    throw new ApiError(response.status, error.reason ?? "HTTP_" + response.status, error.message ?? text, field);
  }
  return data as T;
}

/** The console's gRPC calls: the request and response in proto3 JSON. */
export function rpc<T>(service: string, method: string, request: object = {}): Promise<T> {
  return api<T>(`/api/staff/rpc/${service}/${method}`, request);
}

/** Follows a server-sent settlement stream; EventSource resumes by itself. */
export function follow(path: string, onEvent: (event: Record<string, any>) => void): EventSource {
  const source = new EventSource(path);
  source.addEventListener("settlement", (message) => onEvent(JSON.parse((message as MessageEvent).data)));
  return source;
}

export function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
