// The admin REST API as the dashboard calls it: credentials, JSON calls, downloads and a job's live log.

const KEY = "talos-manager.authorization";

/** The `Authorization` header value kept for this tab, or null when signed out. */
export function authorization() {
  return sessionStorage.getItem(KEY);
}

/** Keeps credentials for this tab: an API token (Bearer) or the password (HTTP Basic). */
export function signIn(kind, secret) {
  const value = kind === "password"
    ? "Basic " + base64(`admin:${secret}`)
    : "Bearer " + secret;
  sessionStorage.setItem(KEY, value);
}

/** Forgets the credentials. */
export function signOut() {
  sessionStorage.removeItem(KEY);
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** An error answer of the API: `status`, and the body's `code`, `message` and `issues`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The service answered ${status}.`);
    this.status = status;
    this.code = body?.code || "error";
    this.issues = Array.isArray(body?.issues) ? body.issues : [];
  }
}

async function send(method, path, body, accept) {
  const headers = { Accept: accept };
  const credentials = authorization();
  if (credentials) headers.Authorization = credentials;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch (error) {
    throw new ApiError(0, { code: "network", message: `The service is unreachable (${error.message}).` });
  }
  if (response.status === 401) {
    signOut();
    window.dispatchEvent(new CustomEvent("unauthorized"));
  }
  if (!response.ok) {
    let errorBody = null;
    try {
      errorBody = await response.json();
    } catch {
      // Not JSON: keep the status only.
    }
    throw new ApiError(response.status, errorBody);
  }
  return response;
}

/** Calls the API; answers the JSON body, or null for an empty one. */
export async function api(method, path, body) {
  const response = await send(method, path, body, "application/json");
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Calls an operation that answers plain text (a runbook, a dry run); answers the text. */
export async function apiText(method, path) {
  const response = await send(method, path, undefined, "text/plain");
  return response.text();
}

/** Fetches a file from the API and hands it to the browser as a download named `filename`. */
export async function download(path, filename) {
  const response = await send("GET", path, undefined, "*/*");
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * Follows a job's log (server-sent events read with fetch, which can send the Authorization
 * header where EventSource cannot). Calls `onEvent` with each event's JSON until the job ends,
 * `signal` aborts, or the connection drops.
 */
export async function followJobLog(jobId, onEvent, signal) {
  const response = await send("GET", `/jobs/${encodeURIComponent(jobId)}/log`, undefined, "text/event-stream");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel);
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) onEvent(JSON.parse(data));
      }
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}
