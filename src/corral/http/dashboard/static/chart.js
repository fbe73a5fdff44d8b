// The overview's chart: jobs completed and failed per minute, as stacked bars in an SVG built
// with createElementNS (no markup parsed; every label is a text node).
import { h, fill } from './dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const W = 960;
const H = 220;
const PAD = { left: 44, right: 12, top: 14, bottom: 26 };
const LABEL_EVERY = 10; // a time label on every tenth minute
// The width of one character of a tick label (11 user units, see style.css), a little over the
// widest digit, so labels are kept apart without measuring text (the chart may be drawn hidden).
const CHAR_W = 0.66 * 11;
const LABEL_GAP = 6;

/** An SVG element; attribute values are set with setAttribute, children appended as nodes. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (/^on/i.test(key) || key === 'style' || key === 'href') throw new Error(`attribute ${key} is not allowed`);
    el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** 0 -> 1, 7 -> 10, 12 -> 20, 130 -> 200: an axis maximum of 1, 2 or 5 times a power of ten. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function clock(at) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return String(at);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
}

function count(value) {
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function legend(totalCompleted, totalFailed) {
  return [
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-completed' }),
      `completed ${totalCompleted}`),
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-failed' }),
      `failed ${totalFailed}`),
  ];
}

function build(points) {
  const rows = points.map((p) => ({ at: p.at, completed: count(p.completed), failed: count(p.failed) }));
  const totalCompleted = rows.reduce((sum, p) => sum + p.completed, 0);
  const totalFailed = rows.reduce((sum, p) => sum + p.failed, 0);
  const top = niceMax(Math.max(0, ...rows.map((p) => p.completed + p.failed)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const base = PAD.top + plotH;
  const slot = plotW / Math.max(1, rows.length);
  const barW = Math.max(1, slot * 0.72);
  const y = (value) => (value / top) * plotH;
  const fixed = (n) => n.toFixed(2);

  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `Jobs per minute: ${totalCompleted} completed, ${totalFailed} failed in the last ${rows.length} minutes`,
    'data-total-completed': totalCompleted,
    'data-total-failed': totalFailed,
    'data-points': rows.length,
  });
  // grid and the y axis: 0, half, max
  for (const fraction of [0, 0.5, 1]) {
    const gy = fixed(base - fraction * plotH);
    svg.append(s('line', { class: fraction === 0 ? 'axis' : 'grid', x1: PAD.left, x2: W - PAD.right, y1: gy, y2: gy }));
    if (fraction === 0.5 && top % 2) continue; // no "0.5" label
    svg.append(s('text', { class: `tick ${fraction === 1 ? 'y-max' : ''}`, x: PAD.left - 6, y: fixed(base - fraction * plotH + 4), 'text-anchor': 'end' },
      String(top * fraction)));
  }
  rows.forEach((p, i) => {
    const x = PAD.left + i * slot + (slot - barW) / 2;
    const label = `${clock(p.at)} — ${p.completed} completed, ${p.failed} failed`;
    const group = s('g', { class: 'bar', 'data-at': p.at }, s('title', {}, label));
    // a full-height transparent target, so every minute has a tooltip, even an empty one
    group.append(s('rect', { class: 'bar-hit', x: fixed(PAD.left + i * slot), y: PAD.top, width: fixed(slot), height: plotH }));
    const hc = y(p.completed);
    const hf = y(p.failed);
    if (p.completed) {
      group.append(s('rect', { class: 'bar-completed', x: fixed(x), y: fixed(base - hc), width: fixed(barW), height: fixed(hc) },
        s('title', {}, label)));
    }
    if (p.failed) {
      group.append(s('rect', { class: 'bar-failed', x: fixed(x), y: fixed(base - hc - hf), width: fixed(barW), height: fixed(hf) },
        s('title', {}, label)));
    }
    svg.append(group);
  });
  for (const label of xLabels(rows, slot)) {
    svg.append(s('text', { class: 'tick x-label', x: fixed(label.x), y: H - 8, 'text-anchor': label.anchor },
      label.text));
  }
  return { svg, totalCompleted, totalFailed };
}

/** [left, right] of a label of `text` drawn at `x` with `anchor`, estimated. */
function extent(x, text, anchor) {
  const width = text.length * CHAR_W;
  if (anchor === 'end') return [x - width, x];
  if (anchor === 'start') return [x, x + width];
  return [x - width / 2, x + width / 2];
}

/**
 * The x-axis labels: "HH:MM now" under the current minute, and the round ten minutes (local
 * time) wherever they fit without touching a label already placed, right to left.
 */
function xLabels(rows, slot) {
  const placed = [];
  const fits = ([left, right]) => placed.every(
    (other) => right + LABEL_GAP <= other.span[0] || left >= other.span[1] + LABEL_GAP);
  for (let i = rows.length - 1; i >= 0; i -= 1) {
    const last = i === rows.length - 1;
    if (!last && new Date(rows[i].at).getMinutes() % LABEL_EVERY !== 0) continue;
    const x = PAD.left + i * slot + slot / 2;
    const text = last ? `${clock(rows[i].at)} now` : clock(rows[i].at);
    const anchor = last ? 'end' : i < 2 ? 'start' : 'middle';
    const span = extent(x, text, anchor);
    if (last || fits(span)) placed.push({ x, text, anchor, span });
  }
  return placed.reverse();
}

/**
 * Draw the series from GET /api/admin/queues/{q}/throughput into `container` (and the legend
 * into `legendEl`); `answer` may be {error} when the endpoint failed. Unchanged data is not
 * redrawn, so a tooltip stays open across polls.
 */
export function renderThroughput(container, legendEl, answer) {
  if (!answer || answer.error || !Array.isArray(answer.points)) {
    container.dataset.key = '';
    fill(legendEl);
    fill(container, h('p', { class: 'chart-note' },
      `The per-minute series is not available${answer && answer.error ? `: ${answer.error}` : '.'}`));
    return;
  }
  const key = JSON.stringify(answer.points);
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  const { svg, totalCompleted, totalFailed } = build(answer.points);
  fill(legendEl, legend(totalCompleted, totalFailed));
  fill(container, svg,
    totalCompleted + totalFailed === 0 ? h('p', { class: 'chart-note' }, 'No jobs finished in the last hour.') : null);
}
