// Dashboards: stored server-side (/v1/users/{user}/dashboards), a 12-column grid of widgets, each live over SSE.
// Layout is a CSS grid placed through the CSSOM (the page's CSP forbids style attributes, not the CSSOM);
// widgets move and resize with buttons (and so by keyboard), which also works on a phone.
import { $, ManagedStream, api, copyText, el, session, userPath, devicePath, resourcePath } from "./core.js";
import { WIDGET_TYPES, createWidget } from "./widgets.js";

const COLS = 12;
let current = null; // the dashboard shown
let live = []; // open streams
let views = []; // widget views, index = widget index
let editing = false;

export function stopDashboard() {
  for (const s of live) s.stop();
  live = [];
  for (const v of views) v.destroy();
  views = [];
}

function place(node, l) {
  node.style.gridColumn = `${l.x + 1} / span ${l.w}`;
  node.style.gridRow = `${l.y + 1} / span ${l.h}`;
}

/** Streams for what the widgets show: one stats stream per device, one value stream per streamed widget. */
function startStreams(d) {
  const devices = [...new Set(d.widgets.map((w) => w.device))];
  for (const device of devices) {
    const mine = () => views.filter((v, i) => d.widgets[i]?.device === device);
    live.push(new ManagedStream(`${devicePath(device)}/stats`, {
      message: (s) => {
        for (const v of mine()) {
          v.stats?.(s);
          v.online(s.connected === true);
        }
      },
    }, (state) => {
      // The stats stream itself is down: nothing shown can be trusted as live.
      if (state !== "open") for (const v of mine()) v.online(false);
    }));
  }
  // One value stream per device resource (at the shortest interval its widgets ask for): browsers open at most
  // 6 HTTP/1.1 connections per origin, and every SSE stream holds one (README "Console").
  const groups = new Map();
  d.widgets.forEach((w, i) => {
    if (!WIDGET_TYPES[w.type]?.streams) return;
    const key = `${w.device}\n${w.resource}`;
    const g = groups.get(key) ?? { device: w.device, resource: w.resource, interval: Infinity, views: [] };
    g.interval = Math.min(g.interval, w.interval ?? 2);
    g.views.push(i);
    groups.set(key, g);
  });
  for (const g of groups.values()) {
    live.push(new ManagedStream(`${resourcePath(g.device, g.resource)}?interval=${encodeURIComponent(String(g.interval))}`, {
      message: ({ out, ts }) => {
        for (const i of g.views) views[i]?.value(out, ts);
      },
    }));
  }
}

export function renderDashboard(d, { readOnly = false } = {}) {
  stopDashboard();
  current = d;
  $("dash-title").textContent = d.name;
  const grid = $("dash-grid");
  grid.replaceChildren();
  grid.classList.toggle("editing", editing && !readOnly);
  $("dash-empty").hidden = d.widgets.length > 0;
  d.widgets.forEach((w, i) => {
    const view = createWidget(w, { readOnly });
    views[i] = view;
    const title = el("h3", { textContent: w.type === "status" ? w.device : `${w.device} · ${w.resource}` });
    const card = el("section", { class: "widget card", "data-type": w.type, "data-index": String(i), "aria-label": `${WIDGET_TYPES[w.type]?.label ?? w.type}: ${w.device} ${w.resource}` }, title, view.node);
    if (editing && !readOnly) card.append(editBar(i));
    place(card, w.layout);
    grid.append(card);
  });
  startStreams(d);
}

function editBar(i) {
  const b = (cls, text, label, fn) => {
    const btn = el("button", { type: "button", class: `tool ${cls}`, textContent: text, title: label, "aria-label": label });
    btn.addEventListener("click", () => {
      fn(current.widgets[i].layout);
      if (current.widgets[i]) pushDown(i);
      renderDashboard(current);
      $("dash-status").textContent = "unsaved changes";
    });
    return btn;
  };
  return el("div", { class: "editbar" },
    b("left", "←", "move left", (l) => { l.x = Math.max(0, l.x - 1); }),
    b("right", "→", "move right", (l) => { l.x = Math.min(COLS - l.w, l.x + 1); }),
    b("up", "↑", "move up", (l) => { l.y = Math.max(0, l.y - 1); }),
    b("down", "↓", "move down", (l) => { l.y = Math.min(199, l.y + 1); }),
    b("narrower", "−W", "narrower", (l) => { l.w = Math.max(1, l.w - 1); }),
    b("wider", "+W", "wider", (l) => { l.w = Math.min(COLS - l.x, l.w + 1); }),
    b("shorter", "−H", "shorter", (l) => { l.h = Math.max(1, l.h - 1); }),
    b("taller", "+H", "taller", (l) => { l.h = Math.min(12, l.h + 1); }),
    b("configure", "⚙", "configure", () => openWidgetForm(i)),
    b("remove", "✕", "remove widget", () => { current.widgets.splice(i, 1); }),
  );
}

const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** The first free place (top to bottom, left to right) for a w×h widget. */
function freeSpot(w, h) {
  for (let y = 0; y < 200; y++) {
    for (let x = 0; x + w <= COLS; x++) {
      const r = { x, y, w, h };
      if (!current.widgets.some((o) => overlaps(r, o.layout))) return r;
    }
  }
  return { x: 0, y: 0, w, h };
}

/** Widgets overlapped by the one at `i` move down below it (and so on, for the ones they then overlap). */
function pushDown(i) {
  const queue = [i];
  while (queue.length) {
    const a = current.widgets[queue.shift()].layout;
    current.widgets.forEach((o, j) => {
      if (o.layout === a || !overlaps(a, o.layout)) return;
      o.layout.y = Math.min(199, a.y + a.h);
      queue.push(j);
    });
  }
}

function openWidgetForm(index) {
  const f = $("widget-form");
  const w = index === undefined ? null : current.widgets[index];
  f.dataset.index = index === undefined ? "" : String(index);
  $("wf-type").value = w?.type ?? "value";
  $("wf-device").value = w?.device ?? ($("wf-device").options[0]?.value || "");
  $("wf-resource").value = w?.resource ?? "";
  $("wf-interval").value = String(w?.interval ?? 2);
  $("wf-options").value = w?.options ? JSON.stringify(w.options) : "";
  $("wf-error").textContent = "";
  $("widget-dialog").hidden = false;
  void suggestResources();
  $("wf-type").focus();
}

async function suggestResources() {
  const device = $("wf-device").value;
  const list = $("wf-resources");
  list.replaceChildren();
  if (!device) return;
  try {
    const described = await api("GET", resourcePath(device, "api"));
    for (const [name, r] of Object.entries(described || {})) list.append(el("option", { value: name, label: r.kind }));
  } catch {
    // offline: type the name
  }
}

async function save() {
  const body = { name: current.name, widgets: current.widgets };
  // `current` stays the object being edited (an edit made while this save is in flight is kept).
  const saved = await api("PUT", `${userPath()}/dashboards/${encodeURIComponent(current.id)}`, body);
  current.updated_ts = saved.updated_ts;
  $("dash-status").textContent = "saved ✓";
}

export async function loadDashboards(selectId) {
  const list = await api("GET", `${userPath()}/dashboards`);
  const sel = $("dash-select");
  sel.replaceChildren(...list.map((d) => el("option", { value: d.id, textContent: d.name })));
  $("dash-none").hidden = list.length > 0;
  $("dash-main").hidden = list.length === 0;
  if (list.length === 0) {
    stopDashboard();
    current = null;
    return;
  }
  const pick = list.find((d) => d.id === selectId) ?? list.find((d) => d.id === current?.id) ?? list[0];
  sel.value = pick.id;
  renderDashboard(pick);
}

export function fillDeviceChoices(devices) {
  $("wf-device").replaceChildren(...devices.map((d) => el("option", { value: d, textContent: d })));
}

function setEditing(on) {
  editing = on;
  $("dash-edit").textContent = editing ? "Done" : "Edit";
  $("dash-edit").setAttribute("aria-pressed", String(editing));
  $("dash-add").hidden = !editing;
  $("dash-save").hidden = !editing;
}

export function setupDashboards() {
  $("dash-select").addEventListener("change", () => void loadDashboards($("dash-select").value));
  $("dash-new").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const d = await api("POST", `${userPath()}/dashboards`, { name: $("dash-name").value.trim() || "Dashboard", widgets: [] });
      $("dash-name").value = "";
      setEditing(true);
      await loadDashboards(d.id);
    } catch (err) {
      $("dash-status").textContent = err.message;
    }
  });
  $("dash-edit").addEventListener("click", () => {
    setEditing(!editing);
    if (current) renderDashboard(current);
  });
  $("dash-add").addEventListener("click", () => openWidgetForm());
  $("dash-save").addEventListener("click", () => save().catch((err) => {
    $("dash-status").textContent = err.message;
  }));
  $("dash-delete").addEventListener("click", async () => {
    if (!current || !confirm(`Delete the dashboard "${current.name}"?`)) return;
    await api("DELETE", `${userPath()}/dashboards/${encodeURIComponent(current.id)}`);
    current = null;
    await loadDashboards();
  });
  $("dash-share").addEventListener("click", () => void share().catch((err) => {
    $("dash-status").textContent = err.message;
  }));
  $("wf-device").addEventListener("change", () => void suggestResources());
  $("wf-cancel").addEventListener("click", () => {
    $("widget-dialog").hidden = true;
  });
  $("widget-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const type = $("wf-type").value;
    let options;
    try {
      options = $("wf-options").value.trim() ? JSON.parse($("wf-options").value) : undefined;
    } catch {
      $("wf-error").textContent = "Options must be JSON, e.g. {\"min\":0,\"max\":40,\"unit\":\"°C\"}";
      return;
    }
    const idx = $("widget-form").dataset.index;
    const old = idx === "" ? null : current.widgets[Number(idx)];
    const size = { chart: [6, 3], map: [4, 3], json: [4, 3], gauge: [3, 2] }[type] ?? [3, 2];
    const w = {
      type, device: $("wf-device").value, resource: type === "status" ? $("wf-resource").value.trim() : $("wf-resource").value.trim(),
      layout: old?.layout ?? freeSpot(size[0], size[1]),
    };
    if (WIDGET_TYPES[type]?.streams) w.interval = Number($("wf-interval").value) || 2;
    if (options) w.options = options;
    if (old) current.widgets[Number(idx)] = w;
    else current.widgets.push(w);
    $("widget-dialog").hidden = true;
    renderDashboard(current);
    void save().catch((err) => {
      $("dash-status").textContent = err.message;
    });
  });
}

/**
 * Share read-only: a user access token that may read this dashboard and, per device, stream the resources its
 * widgets show and its stats — nothing else (no inputs, no other dashboard). The link carries it in the URL
 * fragment, which browsers never send to a server. Deleting the token (Tokens tab) revokes the link.
 */
async function share() {
  await save();
  const d = current;
  const devices = {};
  for (const w of d.widgets) {
    const e = (devices[w.device] ??= { resources: new Set() });
    if (WIDGET_TYPES[w.type]?.streams) e.resources.add(w.resource);
  }
  const Device = {};
  for (const [device, { resources }] of Object.entries(devices)) {
    Device[device] = ["GetDeviceStats", ...(resources.size ? [{ AccessDeviceResources: [...resources] }] : [])];
  }
  const allow = { Dashboard: { [d.id]: ["ReadDashboards"] }, ...(Object.keys(Device).length ? { Device } : {}) };
  const t = await api("POST", `${userPath()}/tokens`, { name: `share: ${d.name}`.slice(0, 64), allow });
  const link = `${location.origin}/dashboard/#share=${encodeURIComponent(session.user)}/${encodeURIComponent(d.id)}/${encodeURIComponent(t.token)}`;
  $("share-link").value = link;
  $("share-box").hidden = false;
  $("share-copy").textContent = "Copy";
}

export function setupShareCopy() {
  $("share-copy").addEventListener("click", () => void copyText($("share-link").value, $("share-copy")));
}

/** The page opened from a share link: read-only, no sign-in. */
export async function openShared(user, id, token) {
  session.shared = true;
  session.user = user;
  session.access = token;
  const d = await api("GET", `${userPath()}/dashboards/${encodeURIComponent(id)}`);
  $("dash-select").replaceChildren(el("option", { value: d.id, textContent: d.name }));
  renderDashboard(d, { readOnly: true });
}
