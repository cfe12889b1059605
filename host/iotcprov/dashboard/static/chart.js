// A small line chart on a <canvas>: time on x, one numeric series on y. Our own code (no
// third-party library is vendored into the repository), about what the dashboard needs:
//
//   const chart = new LineChart(figureElement, "temperature");
//   chart.add([[t0, 21.5], [t1, 21.7]]);   // seconds since the epoch, value
//   chart.setWindow(300);                  // the last 5 minutes; null shows every point
//
// Drawing is batched to one animation frame however many points arrive. The canvas is scaled
// for the screen's pixel ratio and redrawn when the figure is resized. For screen readers the
// canvas is an image whose label says the point count, the latest value and the range shown;
// `figure.dataset.points` holds the point count (tests read it).

const MAX_POINTS = 20000; // kept per chart; the oldest go first
const PADDING = { left: 56, right: 14, top: 10, bottom: 28 };
const INK = "#111";
const GRID = "#d1d5db";
const LINE = "#0b4fb3";

export class LineChart {
  constructor(figure, label) {
    this.figure = figure;
    this.label = label;
    this.points = [];
    this.windowSeconds = null;
    this.pending = false;
    this.canvas = figure.querySelector("canvas");
    this.latest = figure.querySelector(".latest");
    this.canvas.setAttribute("role", "img");
    new ResizeObserver(() => this.schedule()).observe(this.canvas);
    this.schedule();
  }

  /** Append [time, value] pairs (in time order). */
  add(pairs) {
    for (const [t, v] of pairs) {
      if (Number.isFinite(t) && Number.isFinite(v)) this.points.push([t, v]);
    }
    if (this.points.length > MAX_POINTS) this.points.splice(0, this.points.length - MAX_POINTS);
    this.figure.dataset.points = String(this.points.length);
    this.schedule();
  }

  setWindow(seconds) {
    this.windowSeconds = seconds;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  visible() {
    if (!this.windowSeconds || !this.points.length) return { points: this.points, from: null, to: null };
    const to = Math.max(Date.now() / 1000, this.points[this.points.length - 1][0]);
    const from = to - this.windowSeconds;
    // points are in time order: find the first inside the window by bisection
    let low = 0, high = this.points.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.points[mid][0] < from) low = mid + 1; else high = mid;
    }
    return { points: this.points.slice(low), from, to };
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "12px system-ui, sans-serif";
    g.fillStyle = INK;

    const { points, from, to } = this.visible();
    const last = this.points[this.points.length - 1];
    if (this.latest) this.latest.textContent = last ? formatValue(last[1]) : "";
    if (!points.length) {
      g.textAlign = "center";
      g.fillText(this.points.length ? "no data in this range" : "waiting for data…", width / 2, height / 2);
      this.describe(points);
      return;
    }
    let x0 = from ?? points[0][0], x1 = to ?? points[points.length - 1][0];
    if (x1 - x0 < 1) { x0 -= 0.5; x1 += 0.5; }
    let y0 = Infinity, y1 = -Infinity;
    for (const [, v] of points) { if (v < y0) y0 = v; if (v > y1) y1 = v; }
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    const margin = (y1 - y0) * 0.08;
    y0 -= margin; y1 += margin;

    const plotW = width - PADDING.left - PADDING.right;
    const plotH = height - PADDING.top - PADDING.bottom;
    const sx = (t) => PADDING.left + ((t - x0) / (x1 - x0)) * plotW;
    const sy = (v) => PADDING.top + (1 - (v - y0) / (y1 - y0)) * plotH;

    // grid and y labels
    g.strokeStyle = GRID;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of niceTicks(y0, y1, Math.max(2, Math.floor(plotH / 40)))) {
      const y = Math.round(sy(v)) + 0.5;
      g.beginPath(); g.moveTo(PADDING.left, y); g.lineTo(width - PADDING.right, y); g.stroke();
      g.fillText(formatValue(v), PADDING.left - 6, y);
    }
    // x labels: clock times
    g.textAlign = "center";
    g.textBaseline = "top";
    const xTicks = Math.max(2, Math.floor(plotW / 110));
    for (let i = 0; i <= xTicks; i++) {
      const t = x0 + ((x1 - x0) * i) / xTicks;
      const x = sx(t);
      g.textAlign = i === 0 ? "left" : i === xTicks ? "right" : "center"; // the ends stay inside
      g.fillText(new Date(t * 1000).toLocaleTimeString([], { hour12: false }), x, height - PADDING.bottom + 8);
    }
    g.strokeStyle = INK;
    g.beginPath();
    g.moveTo(PADDING.left, PADDING.top); g.lineTo(PADDING.left, height - PADDING.bottom);
    g.lineTo(width - PADDING.right, height - PADDING.bottom);
    g.stroke();

    // the series: a line, and dots while they are few enough to tell apart
    g.strokeStyle = LINE;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach(([t, v], i) => (i ? g.lineTo(sx(t), sy(v)) : g.moveTo(sx(t), sy(v))));
    g.stroke();
    if (points.length <= plotW / 6) {
      g.fillStyle = LINE;
      for (const [t, v] of points) { g.beginPath(); g.arc(sx(t), sy(v), 2.5, 0, 2 * Math.PI); g.fill(); }
    }
    this.describe(points);
  }

  describe(points) {
    const last = this.points[this.points.length - 1];
    let text = `${this.label}: ${this.points.length} points`;
    if (last) {
      let low = Infinity, high = -Infinity;
      for (const [, v] of points) { low = Math.min(low, v); high = Math.max(high, v); }
      text += `, latest ${formatValue(last[1])}`;
      if (points.length) text += `; ${points.length} shown, from ${formatValue(low)} to ${formatValue(high)}`;
    }
    this.canvas.setAttribute("aria-label", text);
  }
}

export function formatValue(v) {
  if (Number.isInteger(v)) return String(v);
  const size = Math.abs(v);
  if (size >= 1000 || size === 0) return v.toFixed(0);
  if (size >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}

/** About `count` round-numbered ticks covering [low, high]. */
export function niceTicks(low, high, count) {
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}
