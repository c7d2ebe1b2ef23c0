// Dashboard widgets. Each is bound to one device resource and fed by the dashboard's streams: resource values
// (SSE at the widget's interval) and the device's stats (connected or not). A widget whose device is offline
// says so and shows its last value as "last seen", never as live.
import { LiveChart } from "./chart.js";
import { api, el, numericOf, resourcePath, valueText } from "./core.js";

export const WIDGET_TYPES = {
  value: { label: "Value", streams: true },
  gauge: { label: "Gauge", streams: true },
  chart: { label: "Time-series chart", streams: true },
  switch: { label: "Switch (input, boolean)", streams: false },
  button: { label: "Button (run)", streams: false },
  slider: { label: "Slider (input, number)", streams: false },
  text: { label: "Text input", streams: false },
  json: { label: "JSON view", streams: true },
  map: { label: "Map (lat/lon)", streams: true },
  status: { label: "Device status", streams: false },
};

// The SVG namespace (a name, not a URL anything fetches), written so the bundle holds no URL literal.
const SVG = ["http", "//www.w3.org/2000/svg"].join(":");
function svg(tag, attrs = {}) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

function timeText(ts) {
  return ts ? new Date(ts).toLocaleTimeString() : "";
}

/**
 * A widget's body. `ctx` = { readOnly }. Returns { node, value(out, ts), online(bool), destroy() }.
 */
export function createWidget(w, ctx) {
  const o = w.options || {};
  const body = el("div", { class: `wbody w-${w.type}` });
  const note = el("p", { class: "wnote", "aria-live": "polite" });
  let last = null;
  let lastTs = 0;
  let isOnline = null;
  const stale = () => isOnline === false;
  const label = (text) => `${text}${o.unit ? ` ${o.unit}` : ""}`;
  const setNote = () => {
    if (isOnline === false) note.textContent = last === null ? "device offline" : `device offline · last seen ${timeText(lastTs)}`;
    else if (isOnline === null) note.textContent = "…";
    else note.textContent = lastTs ? `live · ${timeText(lastTs)}` : "live";
    body.classList.toggle("stale", stale());
  };
  const api_ = {
    node: el("div", {}, body, note),
    value() {},
    online(on) {
      // Stats arrive often (byte counters): only a change of state rewrites the note (an input's "on ✓" stays).
      if (isOnline === on) return;
      isOnline = on;
      setNote();
      this.onOnline?.(on);
    },
    destroy() {},
  };
  const report = (p, ok) => {
    note.textContent = "…";
    p.then(() => {
      note.textContent = ok;
    }, (err) => {
      note.textContent = err.message;
    });
  };

  switch (w.type) {
    case "value": {
      const big = el("output", { class: "big", textContent: "–" });
      body.append(big);
      api_.value = (out, ts) => {
        last = out;
        lastTs = ts;
        big.textContent = label(valueText(out));
        setNote();
      };
      api_.onOnline = (on) => {
        if (!on) big.textContent = last === null ? "–" : label(valueText(last));
      };
      break;
    }
    case "gauge": {
      const min = Number(o.min ?? 0);
      const max = Number(o.max ?? 100);
      const g = svg("svg", { viewBox: "0 0 120 70", class: "gauge", role: "img", "aria-label": `${w.resource} gauge` });
      g.append(svg("path", { d: "M10 60 A50 50 0 0 1 110 60", class: "track" }));
      const arc = svg("path", { d: "M10 60 A50 50 0 0 1 10 60", class: "fill" });
      const text = svg("text", { x: 60, y: 56, "text-anchor": "middle", class: "gtext" });
      text.textContent = "–";
      g.append(arc, text);
      body.append(g);
      api_.value = (out, ts) => {
        const y = numericOf(out);
        last = out;
        lastTs = ts;
        if (y === null) {
          text.textContent = "?";
          return setNote();
        }
        const f = Math.max(0, Math.min(1, (y - min) / (max - min || 1)));
        const a = Math.PI * (1 - f);
        arc.setAttribute("d", `M10 60 A50 50 0 0 1 ${(60 + 50 * Math.cos(a)).toFixed(2)} ${(60 - 50 * Math.sin(a)).toFixed(2)}`);
        text.textContent = label(String(Math.round(y * 100) / 100));
        setNote();
      };
      break;
    }
    case "chart": {
      const box = el("div", { class: "chartbox" });
      body.append(box);
      const chart = new LiveChart(box, w.resource);
      api_.chart = chart;
      api_.value = (out, ts) => {
        const y = numericOf(out);
        last = out;
        lastTs = ts;
        if (y !== null) chart.push(ts, y);
        setNote();
      };
      api_.onOnline = (on) => {
        if (!on) chart.gap();
      };
      api_.destroy = () => chart.destroy();
      break;
    }
    case "json": {
      const pre = el("pre", { class: "json", textContent: "–", tabIndex: 0 });
      body.append(pre);
      api_.value = (out, ts) => {
        last = out;
        lastTs = ts;
        pre.textContent = JSON.stringify(out, null, 2);
        setNote();
      };
      break;
    }
    case "map": {
      // No tile server is reachable: the position is drawn on a plain longitude/latitude plot.
      const latKey = o.lat || "lat";
      const lonKey = o.lon || "lon";
      const g = svg("svg", { viewBox: "-180 -90 360 180", class: "map", role: "img", "aria-label": `${w.resource} position` });
      g.append(svg("rect", { x: -180, y: -90, width: 360, height: 180, class: "sea" }));
      for (let x = -150; x < 180; x += 30) g.append(svg("line", { x1: x, y1: -90, x2: x, y2: 90, class: "grid" }));
      for (let y = -60; y < 90; y += 30) g.append(svg("line", { x1: -180, y1: y, x2: 180, y2: y, class: "grid" }));
      const trail = svg("polyline", { class: "trail", points: "" });
      const dot = svg("circle", { r: 4, class: "dot", cx: 0, cy: 0, visibility: "hidden" });
      g.append(trail, dot);
      const coords = el("p", { class: "coords", textContent: "–" });
      body.append(g, coords);
      const pts = [];
      api_.value = (out, ts) => {
        const lat = Number(out?.[latKey]);
        const lon = Number(out?.[lonKey]);
        last = out;
        lastTs = ts;
        if (!Number.isFinite(lat) || !Number.isFinite(lon)) {
          coords.textContent = `no "${latKey}"/"${lonKey}" in the value`;
          return setNote();
        }
        pts.push(`${lon},${-lat}`);
        if (pts.length > 100) pts.shift();
        trail.setAttribute("points", pts.join(" "));
        dot.setAttribute("cx", String(lon));
        dot.setAttribute("cy", String(-lat));
        dot.setAttribute("visibility", "visible");
        coords.textContent = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
        setNote();
      };
      break;
    }
    case "status": {
      const pill = el("span", { class: "pill offline", textContent: "…" });
      const since = el("p", { class: "muted" });
      body.append(el("p", { class: "big" }, pill), since);
      api_.stats = (s) => {
        pill.textContent = s.connected ? "online" : "offline";
        pill.className = `pill ${s.connected ? "online" : "offline"}`;
        since.textContent = s.connected ? `since ${new Date(s.connected_ts).toLocaleString()} · ${s.ip_address || ""}` : "";
      };
      api_.online = (on) => {
        isOnline = on;
        note.textContent = "";
      };
      break;
    }
    case "switch": {
      const input = el("input", { type: "checkbox", role: "switch", class: "switch", disabled: ctx.readOnly, id: `sw-${Math.random().toString(36).slice(2)}` });
      const lab = el("label", { class: "switchlabel", for: input.id, textContent: o.label || w.resource });
      body.append(input, lab);
      // The input's current state, when the device describes it with state (GET …/api).
      api_.onOnline = (on) => {
        input.disabled = ctx.readOnly || !on;
        if (on) {
          api("GET", `${resourcePath(w.device, w.resource)}/api`).then((b) => {
            if (typeof b?.in === "boolean") input.checked = b.in;
          }, () => {});
        }
      };
      input.addEventListener("change", () => {
        report(api("POST", resourcePath(w.device, w.resource), { in: input.checked }), input.checked ? "on ✓" : "off ✓");
      });
      api_.input = input;
      break;
    }
    case "button": {
      const b = el("button", { type: "button", class: "run", textContent: o.label || `Run ${w.resource}`, disabled: ctx.readOnly });
      b.addEventListener("click", () => report(api("GET", resourcePath(w.device, w.resource)), "done ✓"));
      api_.onOnline = (on) => {
        b.disabled = ctx.readOnly || !on;
      };
      body.append(b);
      break;
    }
    case "slider": {
      const min = Number(o.min ?? 0);
      const max = Number(o.max ?? 100);
      const id = `sl-${Math.random().toString(36).slice(2)}`;
      const input = el("input", { type: "range", min: String(min), max: String(max), step: String(o.step ?? 1), id, disabled: ctx.readOnly, class: "slider" });
      // Read-only (shared link): the device's value is not readable, so no number is shown as if it were.
      const out = el("output", { for: id, textContent: ctx.readOnly ? "" : input.value });
      body.append(el("label", { for: id, textContent: o.label || w.resource }), input, out);
      input.addEventListener("input", () => {
        out.textContent = input.value;
      });
      input.addEventListener("change", () => report(api("POST", resourcePath(w.device, w.resource), { in: Number(input.value) }), `${input.value} ✓`));
      api_.onOnline = (on) => {
        input.disabled = ctx.readOnly || !on;
      };
      break;
    }
    case "text": {
      const id = `tx-${Math.random().toString(36).slice(2)}`;
      const input = el("input", { id, class: "value", disabled: ctx.readOnly, placeholder: "text" });
      const send = el("button", { type: "submit", textContent: "Send", disabled: ctx.readOnly });
      const form = el("form", { class: "row" }, el("label", { for: id, class: "sr-only", textContent: o.label || w.resource }), input, send);
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        report(api("POST", resourcePath(w.device, w.resource), { in: input.value }), "sent ✓");
      });
      api_.onOnline = (on) => {
        input.disabled = send.disabled = ctx.readOnly || !on;
      };
      body.append(form);
      break;
    }
    default:
      body.append(el("p", { textContent: `unknown widget type ${w.type}` }));
  }
  if (ctx.readOnly && ["switch", "button", "slider", "text"].includes(w.type)) {
    // A shared link may not call inputs, nor read their state: say so instead of showing a guess.
    const base = api_.online.bind(api_);
    api_.online = (on) => {
      if (isOnline === on) return;
      base(on);
      note.textContent = on ? "read-only (shared link)" : "device offline";
    };
  }
  setNote();
  return api_;
}
