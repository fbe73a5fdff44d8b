// Overview: counts by state, success rate, processing time, jobs finished per minute (chart),
// workers, health. Polls every 3 s.
import { $, h, fill, badge, fmtMs, table } from './dom.js';
import { get } from './api.js';
import { renderThroughput } from './chart.js';

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed'];
const POLL_MS = 3000;
let timer = null;

function stat(label, value, extra) {
  return h('div', { class: `stat ${extra || ''}` },
    h('div', { class: 'stat-value' }, String(value)),
    h('div', { class: 'stat-label' }, label));
}

async function health() {
  try {
    return await get('/health/ready');
  } catch (err) {
    return { status: 'unready', details: { error: err.message } };
  }
}

function renderHealth(ready, queue) {
  const d = ready.details || {};
  const pill = (label, value) => h('div', { class: 'pill' },
    h('span', { class: 'pill-label' }, label), badge(value ?? 'unknown'));
  fill($('overview-health'),
    pill('API', ready.status),
    pill('Health', d.health),
    pill('Redis', d.redis),
    pill('Database', d.database),
    pill('Queue', queue.paused ? 'paused' : 'running'),
    pill('Schedulers alive', d.schedulersAlive ?? '—'),
    Array.isArray(d.problems) && d.problems.length
      ? h('ul', { class: 'problems' }, d.problems.map((p) => h('li', {}, String(p))))
      : null);
}

/** 42 s, 5 min, 3 h 12 min, 2 d 4 h: how long ago `startedMs` was. */
export function fmtUptime(startedMs, nowMs = Date.now()) {
  if (typeof startedMs !== 'number' || !Number.isFinite(startedMs)) return '—';
  const s = Math.max(0, Math.floor((nowMs - startedMs) / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 24) return `${hours} h ${min % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const text = (value) => (value === null || value === undefined || value === '' ? '—' : String(value));

function renderWorkers(workers) {
  fill($('overview-workers'), table(
    [
      // the worker's id (and name, if it has one) on hover: rarely needed, long
      { title: 'Host', cell: (w) => h('span', { title: [w.name, w.id].filter(Boolean).join(' · ') || null }, text(w.host)) },
      { title: 'PID', cell: (w) => text(w.pid), class: 'mono' },
      { title: 'Concurrency', cell: (w) => text(w.concurrency) },
      { title: 'Handlers', cell: (w) => (Array.isArray(w.handlers) && w.handlers.length
        ? h('span', { class: 'mono small' }, w.handlers.map(String).join(', ')) : '—') },
      { title: 'Uptime', cell: (w) => fmtUptime(w.started_at_ms), class: 'nowrap' },
    ],
    workers,
    { empty: 'No live workers.' },
  ));
}

async function throughput(ctx) {
  try {
    return await get(`/api/admin/queues/${encodeURIComponent(ctx.queue)}/throughput?minutes=60`);
  } catch (err) {
    return { error: err.message };
  }
}

async function refresh(ctx) {
  const [queue, ready, series] = await Promise.all([
    get(`/api/admin/queues/${encodeURIComponent(ctx.queue)}`),
    health(),
    throughput(ctx),
  ]);
  renderHealth(ready, queue);
  renderThroughput($('overview-chart'), $('overview-chart-legend'), series);
  fill($('overview-counts'),
    STATES.map((s) => stat(s, queue.counts[s] ?? 0, `state-${s}`)));
  const m = queue.metrics;
  fill($('overview-metrics'),
    stat('success rate', m.totalJobs ? `${(m.successRate * 100).toFixed(1)} %` : '—'),
    stat('avg processing time', m.totalJobs ? fmtMs(m.averageProcessingTime) : '—'),
    stat('completed (total)', m.completedJobs),
    stat('failed (total)', m.failedJobs),
    stat('retried attempts', m.retriedAttempts),
    stat('workers alive', queue.workers.length));
  renderWorkers(queue.workers);
  fill($('overview-updated'), `updated ${new Date().toLocaleTimeString()}`);
}

export async function enter(ctx) {
  await refresh(ctx);
  timer = setInterval(() => refresh(ctx).catch((err) => ctx.notify(err.message)), POLL_MS);
}

export function leave() {
  clearInterval(timer);
  timer = null;
}
