// A small live line chart on a <canvas>, drawn by hand (no library, no build step).

/** Numbers to plot from a streamed value: numbers as they are, booleans as 0/1, else the first numeric field. */
export function numericOf(value) {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return null;
}

export class LiveChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ maxPoints?: number }} [options]
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.maxPoints = options.maxPoints ?? 120;
    /** @type {{ ts: number, y: number }[]} */
    this.points = [];
    this.resize = () => this.draw();
    if (typeof ResizeObserver === "function") {
      this.observer = new ResizeObserver(this.resize);
      this.observer.observe(canvas);
    }
  }

  clear() {
    this.points = [];
    this.draw();
  }

  /** Adds a point (ts in ms) and redraws. */
  push(ts, y) {
    this.points.push({ ts, y });
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    this.draw();
  }

  dispose() {
    this.observer?.disconnect();
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 800;
    const cssH = canvas.clientHeight || 260;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);

    const pad = { left: 56, right: 16, top: 12, bottom: 28 };
    const w = cssW - pad.left - pad.right;
    const h = cssH - pad.top - pad.bottom;
    const style = getComputedStyle(canvas);
    const fg = style.getPropertyValue("--chart-fg").trim() || "#9aa7b4";
    const grid = style.getPropertyValue("--chart-grid").trim() || "#2a3440";
    const line = style.getPropertyValue("--chart-line").trim() || "#4cc38a";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = fg;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;

    const pts = this.points;
    if (pts.length === 0) {
      ctx.textAlign = "center";
      ctx.fillText("waiting for values…", pad.left + w / 2, pad.top + h / 2);
      return;
    }
    let min = Math.min(...pts.map((p) => p.y));
    let max = Math.max(...pts.map((p) => p.y));
    if (min === max) {
      min -= 1;
      max += 1;
    }
    const span = max - min;
    min -= span * 0.05;
    max += span * 0.05;
    const t0 = pts[0].ts;
    const t1 = Math.max(pts[pts.length - 1].ts, t0 + 1);
    const x = (ts) => pad.left + ((ts - t0) / (t1 - t0)) * w;
    const y = (v) => pad.top + (1 - (v - min) / (max - min)) * h;

    // Horizontal grid with value labels.
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = min + ((max - min) * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + w, yy);
      ctx.stroke();
      ctx.fillText(formatNumber(v), pad.left - 8, yy);
    }
    // Time labels: first and last point.
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(new Date(t0).toLocaleTimeString(), pad.left, pad.top + h + 8);
    ctx.textAlign = "right";
    ctx.fillText(new Date(t1).toLocaleTimeString(), pad.left + w, pad.top + h + 8);

    // The series.
    ctx.strokeStyle = line;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.ts), y(p.y)) : ctx.lineTo(x(p.ts), y(p.y))));
    ctx.stroke();
    const last = pts[pts.length - 1];
    ctx.fillStyle = line;
    ctx.beginPath();
    ctx.arc(x(last.ts), y(last.y), 3.5, 0, Math.PI * 2);
    ctx.fill();
  }
}

function formatNumber(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-2)) return v.toExponential(1);
  return Number(v.toFixed(a >= 100 ? 0 : 2)).toString();
}
