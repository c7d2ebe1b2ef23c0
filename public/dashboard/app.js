// thingrelay dashboard: plain ES module, no build step, no third-party code. It uses only the public API:
// POST /oauth/token, GET /v1/users/{user}/devices, the /v2 relay, and the SSE streams (docs/streams.md).
// Tokens live in memory only (a reload asks to sign in again); EventSource cannot send headers, so streams
// carry the access token in ?authorization= (the server redacts it from logs; this page sends no Referer).
import { LiveChart, numericOf } from "./chart.js";

const $ = (id) => document.getElementById(id);
const session = { user: "", access: "", refresh: "" };
/** @type {Map<string, { li: HTMLLIElement, pill: HTMLElement, online: boolean }>} */
const rows = new Map();
let selected = "";
let eventsStream = null;
let statsStream = null;
let chartStream = null;
const chart = new LiveChart($("chart"));

// ------------------------------------------------------------------------------------------------ HTTP

async function tokenRequest(fields) {
  const res = await fetch("/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message || `sign-in failed (${res.status})`);
  session.access = body.access_token;
  session.refresh = body.refresh_token;
}

let refreshing = null;
/** Uses the refresh token once (single flight). Resolves false when the session is over. */
function refreshSession() {
  if (!session.refresh) return Promise.resolve(false);
  refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh })
    .then(() => true, () => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** Calls the API with the access token; on 401 refreshes once and retries. Throws with the server's message. */
async function api(method, path, json) {
  const attempt = () => fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${session.access}`,
      ...(json !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    body: json !== undefined ? JSON.stringify(json) : undefined,
  });
  let res = await attempt();
  if (res.status === 401 && (await refreshSession())) res = await attempt();
  if (res.status === 401) {
    signOut("Your session ended. Please sign in again.");
    throw new Error("signed out");
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body;
}

const userPath = () => `/v1/users/${encodeURIComponent(session.user)}`;
const resourcePath = (device, resource) =>
  `/v2/users/${encodeURIComponent(session.user)}/devices/${encodeURIComponent(device)}/${resource.split("/").map(encodeURIComponent).join("/")}`;

// --------------------------------------------------------------------------------------------- streams

/**
 * An EventSource that survives what EventSource alone does not: the server ending the stream because the
 * token expired (refresh, reopen), a shutdown (reopen later), and HTTP errors (refresh once, back off).
 */
class ManagedStream {
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
    const es = new EventSource(`${this.path}${sep}authorization=${encodeURIComponent(session.access)}`);
    this.es = es;
    es.onopen = () => {
      this.failures = 0;
      this.onState("open");
      this.listeners.open?.();
    };
    // Values are unnamed events (docs/streams.md): they all arrive at onmessage; only `end` is named.
    es.onmessage = (e) => this.listeners.message?.(JSON.parse(e.data), e);
    es.addEventListener("end", (e) => {
      es.close();
      const { reason } = JSON.parse(e.data);
      this.onState("closed");
      if (reason === "token_expired" || reason === "token_revoked") void this.reauth();
      else if (reason !== "forbidden") this.reopen(3000);
    });
    es.onerror = () => {
      // CONNECTING: the browser retries by itself (retry: from the server). CLOSED: it gave up (HTTP error).
      if (es.readyState !== EventSource.CLOSED) {
        this.onState("reconnecting");
        return;
      }
      this.onState("closed");
      void this.recover();
    };
  }

  /** The server refused the stream (EventSource does not say why): refresh if the token is the problem, else back off. */
  async recover() {
    if (this.stopped) return;
    const me = await fetch("/v1/me", { headers: { Authorization: `Bearer ${session.access}` } }).catch(() => null);
    if (me?.status === 401) {
      await this.reauth();
      return;
    }
    this.failures++;
    this.reopen(Math.min(30_000, 1000 * 2 ** this.failures));
  }

  async reauth() {
    if (this.stopped) return;
    if (!(await refreshSession())) {
      signOut("Your session ended. Please sign in again.");
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

// ------------------------------------------------------------------------------------------------- UI

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function show(view) {
  $("login-view").hidden = view !== "login";
  $("app-view").hidden = view !== "app";
  $("whoami").hidden = view !== "app";
}

function setOnline(device, online) {
  const row = rows.get(device);
  if (!row) return;
  row.online = online;
  row.pill.textContent = online ? "online" : "offline";
  row.pill.className = `pill ${online ? "online" : "offline"}`;
  row.li.dataset.state = online ? "online" : "offline";
}

async function loadDevices() {
  const list = await api("GET", `${userPath()}/devices`);
  const ul = $("device-list");
  ul.replaceChildren();
  rows.clear();
  for (const d of list) {
    const pill = el("span", { class: "pill" });
    const li = el("li", { class: "device", "data-device": d.device, tabIndex: 0 },
      el("div", {}, el("div", { class: "name", textContent: d.device }), el("div", { class: "desc", textContent: d.description || "" })),
      pill);
    li.addEventListener("click", () => void selectDevice(d.device, d.description));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void selectDevice(d.device, d.description);
    });
    if (d.device === selected) li.classList.add("selected");
    ul.append(li);
    rows.set(d.device, { li, pill, online: false });
    setOnline(d.device, d.connection?.active === true);
  }
  $("no-devices").hidden = list.length > 0;
}

function formatBytes(n) {
  if (typeof n !== "number") return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function showStats(s) {
  $("stat-connected").textContent = s.connected ? "online" : "offline";
  $("stat-since").textContent = s.connected_ts ? new Date(s.connected_ts).toLocaleString() : "–";
  $("stat-ip").textContent = s.ip_address || "–";
  $("stat-rx").textContent = formatBytes(s.rx_bytes);
  $("stat-tx").textContent = formatBytes(s.tx_bytes);
}

async function selectDevice(device, description) {
  selected = device;
  for (const [name, row] of rows) row.li.classList.toggle("selected", name === device);
  $("device-empty").hidden = true;
  $("device-detail").hidden = false;
  $("detail-title").textContent = device;
  $("detail-description").textContent = description || "";
  statsStream?.stop();
  statsStream = new ManagedStream(`${userPath()}/devices/${encodeURIComponent(device)}/stats`, { message: showStats });
  if (chartStream && chartStream.device !== device) stopChart();
  await loadResources();
}

function valueText(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Parses what the user typed: JSON when it is JSON (true, 42, {"a":1}), else the text as a string. */
function parseInput(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function loadResources() {
  const device = selected;
  const ul = $("resource-list");
  ul.replaceChildren();
  if (!rows.get(device)?.online) {
    $("resources-note").textContent = "The device is offline; its resources appear when it connects.";
    return;
  }
  let api_;
  try {
    api_ = await api("GET", resourcePath(device, "api"));
  } catch (err) {
    $("resources-note").textContent = `Could not list resources: ${err.message}`;
    return;
  }
  if (device !== selected) return;
  const names = Object.keys(api_).sort();
  $("resources-note").textContent = names.length ? "" : "The device declared no resources.";
  for (const name of names) ul.append(resourceRow(device, name, api_[name].kind));
}

function resourceRow(device, name, kind) {
  const result = el("span", { class: "result" });
  const report = (p) => {
    result.className = "result";
    result.textContent = "…";
    p.then((text) => {
      result.textContent = text;
    }, (err) => {
      result.className = "result error";
      result.textContent = err.message;
    });
  };
  const form = el("form");
  form.addEventListener("submit", (e) => e.preventDefault());
  if (kind === "output") {
    const read = el("button", { type: "button", class: "read", textContent: "Read" });
    read.addEventListener("click", () => report(api("GET", resourcePath(device, name)).then((b) => valueText(b?.out))));
    const interval = el("input", { class: "interval", value: "1", title: "seconds between values", inputMode: "decimal" });
    const watch = el("button", { type: "button", class: "watch", textContent: "Watch" });
    watch.addEventListener("click", () => startChart(device, name, interval.value.trim() || "1"));
    form.append(read, interval, watch);
  } else if (kind === "input" || kind === "io") {
    const input = el("input", { class: "value", placeholder: "true, 42, {\"a\":1}…", name: "value" });
    const send = el("button", { type: "submit", class: "send", textContent: "Send" });
    form.addEventListener("submit", () => {
      report(api("POST", resourcePath(device, name), { in: parseInput(input.value) })
        .then((b) => (kind === "io" ? valueText(b?.out) : "sent ✓")));
    });
    form.append(input, send);
  } else {
    const run = el("button", { type: "button", class: "run", textContent: "Run" });
    run.addEventListener("click", () => report(api("GET", resourcePath(device, name)).then(() => "done ✓")));
    form.append(run);
  }
  return el("li", { class: "resource", "data-resource": name },
    el("span", { class: "rname", textContent: name }), el("span", { class: "kind", textContent: kind }), el("div", {}, form, result));
}

function startChart(device, resource, interval) {
  if (!/^\d{1,6}(\.\d)?$/.test(interval)) {
    $("chart-card").hidden = false;
    $("chart-note").textContent = "interval: seconds, at most one decimal (0 = values the device pushes)";
    return;
  }
  stopChart();
  chart.clear();
  $("chart-card").hidden = false;
  $("chart-title").textContent = `${device} / ${resource}`;
  $("chart-value").textContent = "–";
  $("chart-note").textContent = `every ${interval} s`;
  chartStream = new ManagedStream(`${resourcePath(device, resource)}?interval=${encodeURIComponent(interval)}`, {
    message: ({ out, ts }) => {
      $("chart-value").textContent = valueText(out);
      const y = numericOf(out);
      if (y === null) $("chart-note").textContent = "values are not numeric: showing the latest only";
      else chart.push(ts, y);
    },
  }, (state) => {
    if (state === "reconnecting") $("chart-note").textContent = "reconnecting…";
    if (state === "open") $("chart-note").textContent = `every ${interval} s`;
  });
  chartStream.device = device;
}

function stopChart() {
  chartStream?.stop();
  chartStream = null;
  $("chart-card").hidden = true;
}

function startEvents() {
  eventsStream?.stop();
  eventsStream = new ManagedStream(`${userPath()}/events`, {
    // (Re)connected: catch up on anything that changed while the stream was down.
    open: () => void loadDevices().catch(() => {}),
    // Account events carry their kind in the data: {"type":"online"|"offline","device",…}.
    message: ({ type, device }) => {
      if (type === "online" && !rows.has(device)) {
        void loadDevices().catch(() => {});
        return;
      }
      if (type !== "online" && type !== "offline") return;
      setOnline(device, type === "online");
      if (device === selected) void loadResources();
    },
  }, (state) => {
    $("live").textContent = `events: ${state === "open" ? "live" : state}`;
    $("live").className = `pill ${state === "open" ? "on" : "off"}`;
  });
}

function signOut(message = "") {
  eventsStream?.stop();
  statsStream?.stop();
  stopChart();
  eventsStream = statsStream = null;
  if (session.refresh) {
    const body = new URLSearchParams({ token: session.refresh }).toString();
    void fetch("/oauth/revoke", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body }).catch(() => {});
  }
  session.user = session.access = session.refresh = "";
  selected = "";
  rows.clear();
  $("device-list").replaceChildren();
  $("device-detail").hidden = true;
  $("device-empty").hidden = false;
  $("login-error").textContent = message;
  show("login");
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const username = $("username").value.trim();
  try {
    await tokenRequest({ grant_type: "password", username, password: $("password").value });
  } catch (err) {
    $("login-error").textContent = err.message;
    return;
  }
  $("password").value = "";
  session.user = username;
  $("account").textContent = username;
  show("app");
  try {
    await loadDevices();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
  startEvents();
});
$("signout").addEventListener("click", () => signOut());
$("chart-stop").addEventListener("click", stopChart);
show("login");
