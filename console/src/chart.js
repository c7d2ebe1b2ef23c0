// Time-series chart on uPlot (a small, fast canvas chart library). Gaps: an outage is recorded as a null
// point, so the line breaks there instead of joining the values on either side of it.
import uPlot from "uplot";

const MAX_POINTS = 600;

export class LiveChart {
  constructor(container, label = "value") {
    this.container = container;
    this.xs = [];
    this.ys = [];
    this.label = label;
    this.plot = null;
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(container);
  }

  size() {
    const r = this.container.getBoundingClientRect();
    return { width: Math.max(120, Math.floor(r.width)), height: Math.max(80, Math.floor(r.height || 180)) };
  }

  ensure() {
    if (this.plot) return;
    this.plot = new uPlot({
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      // One point (or all at one time): a 30 s window ending there, not uPlot's years-wide default.
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => {
            if (min != null && max != null && min !== max) return [min, max];
            const last = this.xs[this.xs.length - 1] ?? Date.now() / 1000;
            return [last - 30, last + 1];
          },
        },
      },
      axes: [{ stroke: "#8a94a6", grid: { stroke: "#2a3140" } }, { stroke: "#8a94a6", grid: { stroke: "#2a3140" }, size: 50 }],
      // uPlot's default shows the points only while they are few (a lone value is visible as a dot).
      series: [{}, { label: this.label, stroke: "#4f9cf9", width: 2, spanGaps: false }],
    }, [this.xs, this.ys], this.container);
  }

  fit() {
    if (this.plot) this.plot.setSize(this.size());
  }

  /** A value at `ts` (ms). */
  push(ts, y) {
    this.xs.push(ts / 1000);
    this.ys.push(y);
    if (this.xs.length > MAX_POINTS) {
      this.xs.shift();
      this.ys.shift();
    }
    this.ensure();
    this.plot.setData([this.xs, this.ys]);
    // For tests and curious users: how many points and breaks the chart holds.
    this.container.dataset.points = String(this.ys.length);
    this.container.dataset.gaps = String(this.ys.filter((y) => y === null).length);
  }

  /** The device went away at `ts`: a break in the line. */
  gap(ts = Date.now()) {
    if (this.ys.length === 0 || this.ys[this.ys.length - 1] === null) return;
    this.push(ts, null);
  }

  clear() {
    this.xs.length = 0;
    this.ys.length = 0;
    this.plot?.setData([this.xs, this.ys]);
  }

  get points() {
    return this.ys.length;
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
