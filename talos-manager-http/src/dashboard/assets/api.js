// The admin REST API as the dashboard calls it: credentials, JSON calls, downloads and live events
// (a job's log, the servers).

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
 * Reads the server-sent events of `path` with fetch rather than EventSource: EventSource cannot
 * send the Authorization header, and credentials in the URL would land in access logs. Calls
 * `onOpen` once connected, then `onEvent` with each event's JSON until the stream ends
 * (resolves), `signal` aborts (resolves) or the connection fails (rejects with an ApiError).
 * Keep-alive comments are skipped.
 */
export async function followEvents(path, onEvent, signal, onOpen) {
  const response = await send("GET", path, undefined, "text/event-stream");
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel);
  let buffer = "";
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal?.aborted) return;
        throw new ApiError(0, { code: "network", message: `The connection dropped (${error.message}).` });
      }
      const { value, done } = chunk;
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

/**
 * Follows a job's log: calls `onEvent` with each line's event, then the one with the job's
 * final status, until the job ends, `signal` aborts, or the connection drops.
 */
export function followJobLog(jobId, onEvent, signal) {
  return followEvents(`/jobs/${encodeURIComponent(jobId)}/log`, onEvent, signal);
}

/**
 * Follows the servers (`/servers/events`): every server once, then each server whose view,
 * newest job or machine config changed; an event whose `server` is null when one was deleted.
 */
export function followServerEvents(onEvent, signal, onOpen) {
  return followEvents("/servers/events", onEvent, signal, onOpen);
}
