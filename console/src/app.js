// thingrelay console: devices, tokens, users and dashboards, through the public REST and SSE API only.
// Bundled by esbuild (npm run build:console) from console/src into public/dashboard/app.js.
import { LiveChart } from "./chart.js";
import {
  $, ApiError, ManagedStream, api, copyText, devicePath, el, endSession, numericOf, parseInput, refreshSession,
  persist, resourcePath, savedSession, session, setSignedOutHandler, tokenRequest, userPath, valueText,
} from "./core.js";
import { fillDeviceChoices, loadDashboards, openShared, setupDashboards, setupShareCopy, stopDashboard } from "./dashboards.js";

/** @type {Map<string, { li: HTMLLIElement, pill: HTMLElement, online: boolean, description: string }>} */
const rows = new Map();
let selected = "";
let eventsStream = null;
let statsStream = null;
let chartStream = null;
let chart = null;

function show(view) {
  $("login-view").hidden = view !== "login";
  $("app-view").hidden = view !== "app";
  $("whoami").hidden = view !== "app";
  $("tabs").hidden = view !== "app";
}

function showTab(name) {
  for (const t of ["devices", "dashboards", "tokens", "users"]) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`panel-${t}`).hidden = t !== name;
  }
  if (name !== "dashboards") stopDashboard();
  // Streams hold connections (6 per origin in HTTP/1.1 browsers): only the shown tab keeps its own.
  if (name !== "devices") {
    statsStream?.stop();
    statsStream = null;
    stopChart();
  } else if (selected && !statsStream) {
    statsStream = new ManagedStream(`${devicePath(selected)}/stats`, { message: showStats });
  }
  if (name === "dashboards") void loadDashboards().catch(report("dash-status"));
  if (name === "tokens") void loadUserTokens().catch(report("ut-status"));
  if (name === "users") void loadUsers().catch(report("users-status"));
}

const report = (id) => (err) => {
  $(id).textContent = err.message;
};

// ------------------------------------------------------------------------------------------- devices

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
    li.addEventListener("click", () => void selectDevice(d.device));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void selectDevice(d.device);
    });
    if (d.device === selected) li.classList.add("selected");
    ul.append(li);
    rows.set(d.device, { li, pill, online: false, description: d.description || "" });
    setOnline(d.device, d.connection?.active === true);
  }
  // An empty account says what to do first.
  $("no-devices").hidden = list.length > 0;
  $("getting-started").hidden = list.length > 0;
  fillDeviceChoices(list.map((d) => d.device));
  return list;
}

function formatBytes(n) {
  if (typeof n !== "number") return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

let resourcesShownFor = "";
function showStats(s) {
  // The stats stream is authoritative for the selected device (an account event may race with a list reload).
  if (rows.get(selected) && rows.get(selected).online !== (s.connected === true)) setOnline(selected, s.connected === true);
  if (s.connected && resourcesShownFor !== selected) void loadResources();
  if (!s.connected) resourcesShownFor = "";
  $("stat-connected").textContent = s.connected ? "online" : "offline";
  $("stat-since").textContent = s.connected_ts && s.connected ? new Date(s.connected_ts).toLocaleString() : "–";
  $("stat-ip").textContent = s.connected ? s.ip_address || "–" : "–";
  $("stat-rx").textContent = formatBytes(s.rx_bytes);
  $("stat-tx").textContent = formatBytes(s.tx_bytes);
  $("stats").classList.toggle("stale", !s.connected);
  $("close-session").disabled = !s.connected;
  if (!s.connected) chart?.gap();
  if (chartStream && chartStream.device === selected) $("chart-card").classList.toggle("stale", !s.connected);
  if (!s.connected && chartStream?.device === selected) $("chart-note").textContent = "device offline: the chart resumes when it reconnects";
}

async function selectDevice(device) {
  selected = device;
  for (const [name, row] of rows) row.li.classList.toggle("selected", name === device);
  $("device-empty").hidden = true;
  $("device-detail").hidden = false;
  $("detail-title").textContent = device;
  $("detail-description").textContent = rows.get(device)?.description || "";
  $("edit-description").value = rows.get(device)?.description || "";
  $("credentials-box").hidden = true;
  statsStream?.stop();
  statsStream = new ManagedStream(`${devicePath(device)}/stats`, { message: showStats });
  if (chartStream && chartStream.device !== device) stopChart();
  await Promise.all([loadResources(), loadDeviceTokens(), loadProperties(), loadCalls()].map((p) => p.catch(() => {})));
}

let resourcesGen = 0;
let describeRetries = 0;
async function loadResources() {
  const device = selected;
  const gen = ++resourcesGen;
  const ul = $("resource-list");
  ul.replaceChildren();
  resourcesShownFor = "";
  if (!rows.get(device)?.online) {
    $("resources-note").textContent = "The device is offline; its resources appear when it connects.";
    return;
  }
  let described;
  try {
    described = await api("GET", resourcePath(device, "api"));
  } catch (err) {
    // Just connected: the device describes its resources right after (or its session is still being set up),
    // so ask again while it is shown online, backing off from 250 ms to 2 s.
    const early = err.code === "resource_not_found" || err.code === "device_offline";
    if (early && rows.get(device)?.online && device === selected && gen === resourcesGen) {
      const delay = Math.min(250 * 2 ** Math.min(describeRetries, 3), 2000);
      describeRetries++;
      setTimeout(() => {
        if (device === selected && gen === resourcesGen) void loadResources();
      }, delay);
      $("resources-note").textContent = "Waiting for the device to describe its resources…";
      return;
    }
    $("resources-note").textContent = `Could not list resources: ${err.message}`;
    return;
  }
  describeRetries = 0;
  if (device !== selected || gen !== resourcesGen) return;
  resourcesShownFor = device;
  const names = Object.keys(described).sort();
  $("resources-note").textContent = names.length ? "" : "The device declared no resources.";
  ul.replaceChildren(...names.map((name) => resourceRow(device, name, described[name].kind)));
}

function resourceRow(device, name, kind) {
  const result = el("span", { class: "result", "aria-live": "polite" });
  const run = (p) => {
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
    read.addEventListener("click", () => run(api("GET", resourcePath(device, name)).then((b) => valueText(b?.out))));
    const interval = el("input", { class: "interval", value: "1", title: "seconds between values", "aria-label": `${name}: seconds between values`, inputMode: "decimal" });
    const watch = el("button", { type: "button", class: "watch", textContent: "Watch" });
    watch.addEventListener("click", () => startChart(device, name, interval.value.trim() || "1"));
    form.append(read, interval, watch);
  } else if (kind === "input" || kind === "io") {
    const input = el("input", { class: "value", placeholder: "true, 42, {\"a\":1}…", name: "value", "aria-label": `${name}: value to send` });
    const send = el("button", { type: "submit", class: "send", textContent: "Send" });
    form.addEventListener("submit", () => {
      run(api("POST", resourcePath(device, name), { in: parseInput(input.value) }).then((b) => (kind === "io" ? valueText(b?.out) : "sent ✓")));
    });
    form.append(input, send);
  } else {
    const go = el("button", { type: "button", class: "run", textContent: "Run" });
    go.addEventListener("click", () => run(api("GET", resourcePath(device, name)).then(() => "done ✓")));
    form.append(go);
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
  $("chart-card").hidden = false;
  chart = new LiveChart($("chart"), resource);
  $("chart-title").textContent = `${device} / ${resource}`;
  $("chart-value").textContent = "–";
  $("chart-note").textContent = `every ${interval} s`;
  chartStream = new ManagedStream(`${resourcePath(device, resource)}?interval=${encodeURIComponent(interval)}`, {
    message: ({ out, ts }) => {
      $("chart-value").textContent = valueText(out);
      $("chart-card").classList.remove("stale");
      $("chart-note").textContent = `every ${interval} s`;
      const y = numericOf(out);
      if (y === null) $("chart-note").textContent = "values are not numeric: showing the latest only";
      else chart.push(ts, y);
    },
  }, (state) => {
    if (state === "reconnecting") $("chart-note").textContent = "reconnecting…";
  });
  chartStream.device = device;
}

function stopChart() {
  chartStream?.stop();
  chartStream = null;
  chart?.destroy();
  chart = null;
  $("chart-card").hidden = true;
}

/** Credentials made in the page: 24 random bytes, base64url. Shown once. */
function newCredentials() {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function setupDeviceForms() {
  $("add-device").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("add-status").textContent = "";
    const device = $("new-device").value.trim();
    const credentials = newCredentials();
    try {
      await api("POST", `${userPath()}/devices`, { device, credentials, description: $("new-description").value.trim() || undefined });
    } catch (err) {
      $("add-status").textContent = err.message;
      return;
    }
    $("new-device").value = "";
    $("new-description").value = "";
    await loadDevices();
    await selectDevice(device);
    $("credentials-box").hidden = false;
    $("credentials-value").value = credentials;
    $("credentials-copy").textContent = "Copy";
  });
  $("credentials-copy").addEventListener("click", () => void copyText($("credentials-value").value, $("credentials-copy")));
  $("edit-device").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("PUT", devicePath(selected), { device_description: $("edit-description").value });
      $("detail-status").textContent = "saved ✓";
      await loadDevices();
      $("detail-description").textContent = $("edit-description").value;
    } catch (err) {
      $("detail-status").textContent = err.message;
    }
  });
  $("delete-device").addEventListener("click", async () => {
    if (!confirm(`Delete the device "${selected}" with its tokens, properties and queued calls?`)) return;
    try {
      await api("DELETE", `${devicePath(selected)}?force=true`);
    } catch (err) {
      $("detail-status").textContent = err.message;
      return;
    }
    statsStream?.stop();
    stopChart();
    selected = "";
    $("device-detail").hidden = true;
    $("device-empty").hidden = false;
    await loadDevices();
  });
  $("close-session").addEventListener("click", async () => {
    try {
      await api("DELETE", `${devicePath(selected)}/session`);
      $("detail-status").textContent = "session closed";
    } catch (err) {
      $("detail-status").textContent = err.message;
    }
  });
}

// -------------------------------------------------------------------------------------- device tokens

async function loadDeviceTokens() {
  const device = selected;
  const list = await api("GET", `${devicePath(device)}/tokens`);
  if (device !== selected) return;
  $("dt-list").replaceChildren(...list.map((t) => {
    const del = el("button", { type: "button", class: "danger", textContent: "Delete" });
    del.addEventListener("click", async () => {
      if (!confirm(`Delete the token "${t.name}"?`)) return;
      await api("DELETE", `${devicePath(device)}/tokens/${encodeURIComponent(t.id)}`).catch(report("dt-status"));
      await loadDeviceTokens();
    });
    const res = t.resources ? t.resources.join(", ") : "all resources";
    const exp = t.expiration ? `expires ${new Date(t.expiration).toLocaleString()}` : "no expiry";
    return el("li", { class: "token", "data-token": t.name }, el("span", { textContent: t.name }), el("span", { class: "muted", textContent: `${res} · ${exp}` }), del);
  }));
}

function setupDeviceTokens() {
  $("dt-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const resources = $("dt-resources").value.split(",").map((s) => s.trim()).filter(Boolean);
    const exp = $("dt-expiry").value ? new Date($("dt-expiry").value).getTime() : undefined;
    try {
      const t = await api("POST", `${devicePath(selected)}/tokens`, {
        token_name: $("dt-name").value.trim(), ...(resources.length ? { token_resources: resources } : {}), ...(exp ? { token_expiration: exp } : {}),
      });
      $("dt-new").hidden = false;
      $("dt-value").value = t.token;
      $("dt-copy").textContent = "Copy";
      $("dt-status").textContent = "";
      $("dt-name").value = "";
      await loadDeviceTokens();
    } catch (err) {
      $("dt-status").textContent = err.message;
    }
  });
  $("dt-copy").addEventListener("click", () => void copyText($("dt-value").value, $("dt-copy")));
}

// ----------------------------------------------------------------------------------------- properties

async function loadProperties() {
  const device = selected;
  const list = await api("GET", `/v3/users/${encodeURIComponent(session.user)}/devices/${encodeURIComponent(device)}/properties`);
  if (device !== selected) return;
  $("prop-list").replaceChildren(...list.map((p) => {
    const edit = el("button", { type: "button", textContent: "Edit" });
    edit.addEventListener("click", () => {
      $("prop-name").value = p.property;
      $("prop-value").value = JSON.stringify(p.value, null, 2);
      $("prop-value").focus();
    });
    const del = el("button", { type: "button", class: "danger", textContent: "Delete" });
    del.addEventListener("click", async () => {
      if (!confirm(`Delete the property "${p.property}"?`)) return;
      await api("DELETE", propertyPath(device, p.property)).catch(report("prop-status"));
      await loadProperties();
    });
    return el("li", { class: "property", "data-property": p.property }, el("span", { class: "rname", textContent: p.property }),
      el("code", { textContent: valueText(p.value).slice(0, 120) }), edit, del);
  }));
}

const propertyPath = (device, name) =>
  `/v3/users/${encodeURIComponent(session.user)}/devices/${encodeURIComponent(device)}/properties/${name.split("/").map(encodeURIComponent).join("/")}`;

function setupProperties() {
  $("prop-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    let value;
    try {
      value = JSON.parse($("prop-value").value);
    } catch {
      $("prop-status").textContent = "The value must be JSON (\"text\", 42, {\"a\":1}…)";
      return;
    }
    try {
      await api("PUT", propertyPath(selected, $("prop-name").value.trim()), { value });
      $("prop-status").textContent = "saved ✓";
      await loadProperties();
    } catch (err) {
      $("prop-status").textContent = err.message;
    }
  });
}

// -------------------------------------------------------------------------------------- queued calls

async function loadCalls() {
  const device = selected;
  const list = await api("GET", `${devicePath(device)}/calls`);
  if (device !== selected) return;
  $("calls-note").textContent = list.length ? "" : "No queued calls (POST with Prefer: respond-async queues one).";
  $("calls-list").replaceChildren(...list.map((c) => {
    const li = el("li", { class: "call", "data-status": c.status },
      el("span", { class: "rname", textContent: c.resource }),
      el("span", { class: `pill ${c.status}`, textContent: c.status }),
      el("span", { class: "muted", textContent: new Date(c.created_ts).toLocaleString() }));
    if (c.status === "queued") {
      const cancel = el("button", { type: "button", class: "danger", textContent: "Cancel" });
      cancel.addEventListener("click", async () => {
        await api("DELETE", `${devicePath(device)}/calls/${encodeURIComponent(c.id)}`).catch(report("calls-note"));
        await loadCalls();
      });
      li.append(cancel);
    }
    return li;
  }));
}

// -------------------------------------------------------------------------------------- user tokens

const ACTIONS = ["*", "AccessDeviceResources", "ListDeviceResources", "GetDeviceStats", "ReadDevice", "UpdateDevice", "DeleteDevice",
  "ListDevices", "CreateDevice", "ListDeviceTokens", "CreateDeviceToken", "DeleteDeviceToken", "ListDeviceSessions",
  "CloseDeviceSession", "ReadEvents", "ReadDeviceProperties", "WriteDeviceProperties", "ReadDashboards", "WriteDashboards"];

/** One row of the allow/deny editor: effect, type, name, actions, resources. */
function permRow(p = {}) {
  const sel = (cls, label, values, v) => el("select", { class: cls, "aria-label": label }, ...values.map((x) => el("option", { value: x, textContent: x, selected: x === v })));
  const actions = el("select", { class: "p-actions", multiple: true, size: 4, "aria-label": "actions" },
    ...ACTIONS.map((a) => el("option", { value: a, textContent: a, selected: (p.actions ?? ["*"]).includes(a) })));
  const remove = el("button", { type: "button", class: "tool", textContent: "✕", "aria-label": "remove permission" });
  const row = el("div", { class: "perm" },
    sel("p-effect", "allow or deny", ["allow", "deny"], p.effect ?? "allow"),
    sel("p-type", "type", ["Device", "Dashboard", "*"], p.type ?? "Device"),
    el("input", { class: "p-name", value: p.name ?? "*", "aria-label": "device or dashboard id, or *", placeholder: "id or *" }),
    actions,
    el("input", { class: "p-resources", value: p.resources ?? "", "aria-label": "resources (AccessDeviceResources), comma-separated", placeholder: "resources, comma-separated (optional)" }),
    remove);
  remove.addEventListener("click", () => {
    row.remove();
    showPermJson();
  });
  row.addEventListener("input", showPermJson);
  row.addEventListener("change", showPermJson);
  return row;
}

/** The editor's rows → {allow, deny} in Thinger's shape. */
function permissionsOf() {
  const out = { allow: {}, deny: {} };
  for (const row of $("perm-rows").querySelectorAll(".perm")) {
    const effect = row.querySelector(".p-effect").value;
    const type = row.querySelector(".p-type").value;
    const name = row.querySelector(".p-name").value.trim() || "*";
    const actions = [...row.querySelector(".p-actions").selectedOptions].map((o) => o.value);
    const resources = row.querySelector(".p-resources").value.split(",").map((s) => s.trim()).filter(Boolean);
    const items = ((out[effect][type] ??= {})[name] ??= []);
    if (items === "*") continue;
    for (const a of actions.length ? actions : ["*"]) {
      if (a === "AccessDeviceResources" && resources.length) items.push({ AccessDeviceResources: resources });
      else items.push(a);
    }
    if (items.length === 1 && items[0] === "*") out[effect][type][name] = "*";
  }
  return out;
}

function showPermJson() {
  $("perm-json").textContent = JSON.stringify(permissionsOf(), null, 1);
}

async function loadUserTokens() {
  const list = await api("GET", `${userPath()}/tokens`);
  $("ut-list").replaceChildren(...list.map((t) => {
    const del = el("button", { type: "button", class: "danger", textContent: "Delete" });
    del.addEventListener("click", async () => {
      if (!confirm(`Delete the token "${t.name}"? Links and apps using it stop working.`)) return;
      await api("DELETE", `${userPath()}/tokens/${encodeURIComponent(t.id)}`).catch(report("ut-status"));
      await loadUserTokens();
    });
    return el("li", { class: "token", "data-token": t.name }, el("span", { textContent: t.name }),
      el("code", { textContent: JSON.stringify({ allow: t.allow, deny: t.deny }).slice(0, 160) }), del);
  }));
}

function setupUserTokens() {
  $("perm-add").addEventListener("click", () => {
    $("perm-rows").append(permRow());
    showPermJson();
  });
  $("ut-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const exp = $("ut-expiry").value ? new Date($("ut-expiry").value).getTime() : undefined;
    try {
      const t = await api("POST", `${userPath()}/tokens`, { name: $("ut-name").value.trim(), ...permissionsOf(), ...(exp ? { expiration: exp } : {}) });
      $("ut-new").hidden = false;
      $("ut-value").value = t.token;
      $("ut-copy").textContent = "Copy";
      $("ut-status").textContent = "";
      await loadUserTokens();
    } catch (err) {
      $("ut-status").textContent = err.message;
    }
  });
  $("ut-copy").addEventListener("click", () => void copyText($("ut-value").value, $("ut-copy")));
  $("perm-rows").append(permRow({ effect: "allow", type: "Device", name: "*", actions: ["AccessDeviceResources", "GetDeviceStats"] }));
  showPermJson();
}

// -------------------------------------------------------------------------------------------- users

async function loadUsers() {
  const list = await api("GET", "/v1/users");
  $("users-list").replaceChildren(...list.map((u) => {
    const li = el("li", { class: "user", "data-user": u.username }, el("span", { textContent: u.username }), el("span", { class: "muted", textContent: u.admin ? "admin" : "" }));
    if (u.username !== session.user) {
      const del = el("button", { type: "button", class: "danger", textContent: "Delete" });
      del.addEventListener("click", async () => {
        if (!confirm(`Delete the account "${u.username}" with all its devices, tokens and dashboards?`)) return;
        await api("DELETE", `/v1/users/${encodeURIComponent(u.username)}`).catch(report("users-status"));
        await loadUsers();
      });
      li.append(del);
    }
    return li;
  }));
}

function setupUsers() {
  $("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/v1/users", { username: $("nu-name").value.trim(), password: $("nu-password").value });
      $("nu-name").value = $("nu-password").value = "";
      $("users-status").textContent = "created ✓";
      await loadUsers();
    } catch (err) {
      $("users-status").textContent = err.message;
    }
  });
}

// ----------------------------------------------------------------------------------- session, start

function startEvents() {
  eventsStream?.stop();
  eventsStream = new ManagedStream(`${userPath()}/events`, {
    // (Re)connected: catch up on anything that changed while the stream was down.
    open: () => void loadDevices().catch(() => {}),
    message: ({ type, device }) => {
      if (type === "call" && device === selected) void loadCalls().catch(() => {});
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
  stopDashboard();
  eventsStream = statsStream = null;
  endSession();
  selected = "";
  rows.clear();
  $("device-list").replaceChildren();
  $("device-detail").hidden = true;
  $("device-empty").hidden = false;
  $("login-error").textContent = message;
  show("login");
}
setSignedOutHandler(signOut);

async function enter(username) {
  session.user = username;
  persist();
  const me = await api("GET", "/v1/me").catch(() => null);
  session.admin = me?.admin === true;
  $("tab-users").hidden = !session.admin;
  $("account").textContent = username;
  show("app");
  showTab("devices");
  try {
    await loadDevices();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
  startEvents();
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
  await enter(username);
});
$("signout").addEventListener("click", () => signOut());
$("chart-stop").addEventListener("click", stopChart);
for (const t of ["devices", "dashboards", "tokens", "users"]) $(`tab-${t}`).addEventListener("click", () => showTab(t));
setupDeviceForms();
setupDeviceTokens();
setupProperties();
setupUserTokens();
setupUsers();
setupDashboards();
setupShareCopy();

async function start() {
  const share = /^#share=([^/]+)\/([^/]+)\/(.+)$/.exec(location.hash);
  if (share) {
    document.body.classList.add("shared");
    show("app");
    $("whoami").hidden = true;
    $("tabs").hidden = true;
    for (const t of ["devices", "tokens", "users"]) $(`panel-${t}`).hidden = true;
    $("panel-dashboards").hidden = false;
    try {
      await openShared(decodeURIComponent(share[1]), decodeURIComponent(share[2]), decodeURIComponent(share[3]));
    } catch (err) {
      $("dash-status").textContent = err instanceof ApiError && (err.status === 401 || err.status === 403)
        ? "This share link is no longer valid." : err.message;
    }
    return;
  }
  // A reload: the refresh token kept in this tab signs in again without a password.
  const saved = savedSession();
  if (saved) {
    session.user = saved.user;
    session.refresh = saved.refresh;
    if (await refreshSession()) {
      await enter(saved.user);
      return;
    }
    endSession();
  }
  show("login");
}
void start();
