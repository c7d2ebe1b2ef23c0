// Shared plumbing of the console: the signed-in session (kept across reloads), the API client with silent
// refresh, and a managed EventSource. Only the public REST and SSE API is used.

export const $ = (id) => document.getElementById(id);

/**
 * The session. The refresh token is kept in sessionStorage so a reload (same tab) stays signed in; it is not
 * shared with other tabs (each tab signs in; refresh tokens rotate on every use, and two tabs sharing one would
 * trip reuse detection) and it is gone when the tab closes. localStorage would survive closing the browser, at
 * the price of a long-lived credential readable by any script of this origin (README "Console").
 * Sign-out revokes it with POST /oauth/revoke.
 */
const KEY = "thingrelay.session";
export const session = { user: "", admin: false, access: "", refresh: "", shared: false };

export function persist() {
  if (session.shared) return;
  if (session.refresh) sessionStorage.setItem(KEY, JSON.stringify({ user: session.user, refresh: session.refresh }));
  else sessionStorage.removeItem(KEY);
}

export function savedSession() {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return v && typeof v.user === "string" && v.user !== "" && typeof v.refresh === "string" ? v : null;
  } catch {
    return null;
  }
}

export async function tokenRequest(fields) {
  const res = await fetch("/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message || `sign-in failed (${res.status})`);
  session.access = body.access_token;
  session.refresh = body.refresh_token;
  persist();
  scheduleRefresh(body.expires_in);
}

let refreshTimer;
/** Refreshes shortly before the access token expires, so open streams and calls never see it lapse. */
function scheduleRefresh(expiresIn) {
  clearTimeout(refreshTimer);
  if (typeof expiresIn !== "number" || expiresIn <= 0) return;
  refreshTimer = setTimeout(() => void refreshSession(), Math.max(5, expiresIn * 0.8) * 1000);
}

let refreshing = null;
/** Uses the refresh token once (single flight). Resolves false when the session is over. */
export function refreshSession() {
  if (!session.refresh) return Promise.resolve(false);
  refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh })
    .then(() => true, () => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

let onSignedOut = () => {};
export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

/** Ends the session: revokes the refresh token (its whole family) and forgets it. */
export function endSession() {
  clearTimeout(refreshTimer);
  if (session.refresh && !session.shared) {
    const body = new URLSearchParams({ token: session.refresh }).toString();
    void fetch("/oauth/revoke", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body }).catch(() => {});
  }
  session.user = session.access = session.refresh = "";
  session.admin = false;
  persist();
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API with the access token; on 401 refreshes once and retries. Throws ApiError with the server's message. */
export async function api(method, path, json) {
  const attempt = () => fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${session.access}`,
      ...(json !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    body: json !== undefined ? JSON.stringify(json) : undefined,
  });
  let res = await attempt();
  if (res.status === 401 && !session.shared && (await refreshSession())) res = await attempt();
  if (res.status === 401 && !session.shared) {
    onSignedOut("Your session ended. Please sign in again.");
    throw new ApiError(401, "unauthorized", "signed out");
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  if (!res.ok) throw new ApiError(res.status, body?.error?.code, body?.error?.message || `HTTP ${res.status}`);
  return body;
}

const enc = encodeURIComponent;
export const userPath = (user = session.user) => `/v1/users/${enc(user)}`;
export const devicePath = (device) => `${userPath()}/devices/${enc(device)}`;
export const resourcePath = (device, resource) =>
  `/v2/users/${enc(session.user)}/devices/${enc(device)}/${resource.split("/").map(enc).join("/")}`;

/**
 * An EventSource that survives what EventSource alone does not: the server ending the stream because the
 * token expired (refresh, reopen), a shutdown (reopen later), and HTTP errors (refresh once, back off).
 * Values are unnamed events (docs/streams.md): they arrive at onmessage; only `end` is named.
 */
export class ManagedStream {
  constructor(path, listeners, onState = () => {}) {
    this.path = path;
    this.listeners = listeners;
    this.onState = onState;
    this.failures = 0;
    this.stopped = false;
    this.timer = undefined;
    this.open();
  }

  open() {
    if (this.stopped) return;
    const sep = this.path.includes("?") ? "&" : "?";
    const es = new EventSource(`${this.path}${sep}authorization=${enc(session.access)}`);
    this.es = es;
    es.onopen = () => {
      this.failures = 0;
      this.onState("open");
      this.listeners.open?.();
    };
    es.onmessage = (e) => this.listeners.message?.(JSON.parse(e.data), e);
    es.addEventListener("end", (e) => {
      es.close();
      const { reason } = JSON.parse(e.data);
      this.onState("closed");
      if ((reason === "token_expired" || reason === "token_revoked") && !session.shared) void this.reauth();
      else if (reason !== "forbidden") this.reopen(3000);
    });
    es.onerror = () => {
      // CONNECTING: the browser retries by itself. CLOSED: it gave up (HTTP error).
      if (es.readyState !== EventSource.CLOSED) {
        this.onState("reconnecting");
        return;
      }
      this.onState("closed");
      void this.recover();
    };
  }

  async recover() {
    if (this.stopped) return;
    const me = await fetch("/v1/me", { headers: { Authorization: `Bearer ${session.access}` } }).catch(() => null);
    if (me?.status === 401 && !session.shared) {
      await this.reauth();
      return;
    }
    this.failures++;
    this.reopen(Math.min(30_000, 1000 * 2 ** this.failures));
  }

  async reauth() {
    if (this.stopped) return;
    if (!(await refreshSession())) {
      onSignedOut("Your session ended. Please sign in again.");
      return;
    }
    this.failures++;
    this.reopen(Math.min(30_000, 250 * 2 ** this.failures));
  }

  reopen(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.es?.close();
  }
}

/** Builds an element: attributes (class, data-*, aria-*, properties) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function valueText(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** What the user typed: JSON when it is JSON (true, 42, {"a":1}), else the text as a string. */
export function parseInput(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A number out of a value: a number, a numeric string, or the first numeric field of an object. */
export function numericOf(v) {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v && typeof v === "object") for (const x of Object.values(v)) if (typeof x === "number" && Number.isFinite(x)) return x;
  return null;
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) button.textContent = "Copied ✓";
  } catch {
    if (button) button.textContent = "Select and copy";
  }
}
