// Jobs: the queue's jobs by state; detail with data, progress, error; retry, remove; pause.
import { $, h, fill, show, badge, fmtTime, table, pager, details, pre } from './dom.js';
import { get, post, del, withQuery } from './api.js';

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed'];
const PAGE = 25;
let ctxRef = null;
let state = 'waiting';
let offset = 0;
let wired = false;

const queuePath = () => `/api/admin/queues/${encodeURIComponent(ctxRef.queue)}`;

function progressCell(progress) {
  if (progress === null || progress === undefined || progress === 0) return '—';
  if (typeof progress === 'number') {
    return h('span', { class: 'progress' },
      h('progress', { max: '100', value: String(Math.max(0, Math.min(100, progress))) }),
      ` ${progress}%`);
  }
  return JSON.stringify(progress);
}

async function showDetail(id) {
  const job = await get(`/api/admin/jobs/${encodeURIComponent(id)}`);
  const retry = job.state === 'failed'
    ? h('button', { type: 'button', id: 'job-retry', onclick: () => action(() => post(`/api/admin/jobs/${encodeURIComponent(id)}/retry`), 'Job moved back to waiting.', id) }, 'Retry')
    : null;
  const remove = job.state !== 'active'
    ? h('button', { type: 'button', class: 'secondary', id: 'job-remove', onclick: () => action(() => del(`/api/admin/jobs/${encodeURIComponent(id)}`), 'Job removed.', null) }, 'Remove')
    : null;
  fill($('job-detail'), h('div', { class: 'card detail' },
    h('div', { class: 'view-head' },
      h('h2', {}, 'Job ', h('span', { class: 'mono' }, job.id), ' ', badge(job.state)),
      h('div', { class: 'actions' }, retry, remove,
        h('button', { type: 'button', class: 'secondary small', onclick: () => fill($('job-detail')) }, 'Close'))),
    details([
      ['Handler', job.name],
      ['Progress', progressCell(job.progress)],
      ['Attempts', `${job.attemptsMade} of ${job.maxAttempts}`],
      ['Priority', job.priority ?? '—'],
      ['Created', fmtTime(job.createdAt)],
      ['Processed', fmtTime(job.processedAt)],
      ['Finished', fmtTime(job.finishedAt)],
      ['Error', job.failedReason ? h('pre', { class: 'error-text' }, job.failedReason) : '—'],
      ['Data', pre(job.data)],
      ['Result', pre(job.result)],
      ['Options', pre(job.options)],
    ])));
  $('job-detail').scrollIntoView({ block: 'nearest' });
}

async function action(fn, message, reopen) {
  try {
    await fn();
    ctxRef.notify(message, 'ok');
  } catch (err) {
    ctxRef.notify(err.message);
  }
  if (reopen) await showDetail(reopen).catch(() => fill($('job-detail')));
  else fill($('job-detail'));
  await refresh();
}

function renderTabs(counts) {
  fill($('jobs-tabs'), STATES.map((s) => h('button', {
    type: 'button',
    class: `tab ${s === state ? 'active' : ''}`,
    'data-state': s,
    onclick: () => {
      state = s;
      offset = 0;
      fill($('job-detail'));
      refresh().catch((err) => ctxRef.notify(err.message));
    },
  }, `${s} `, h('span', { class: 'count' }, String(counts[s] ?? 0)))));
}

async function refresh() {
  const [queue, page] = await Promise.all([
    get(queuePath()),
    get(withQuery(`${queuePath()}/jobs`, { state, limit: PAGE, offset })),
  ]);
  renderTabs(queue.counts);
  const qs = $('queue-state');
  qs.className = `badge state-${queue.paused ? 'paused' : 'running'}`;
  fill(qs, queue.paused ? 'queue paused' : 'queue running');
  show($('queue-pause'), !queue.paused);
  show($('queue-resume'), queue.paused);
  fill($('jobs-table'), table(
    [
      { title: 'Id', cell: (j) => j.id, class: 'mono' },
      { title: 'Handler', cell: (j) => j.name, class: 'mono' },
      { title: 'State', cell: (j) => badge(j.state) },
      { title: 'Progress', cell: (j) => progressCell(j.progress) },
      { title: 'Attempts', cell: (j) => `${j.attemptsMade}/${j.maxAttempts}` },
      { title: 'Created', cell: (j) => fmtTime(j.createdAt) },
      { title: 'Error', cell: (j) => (j.failedReason ? h('span', { class: 'error-text clip' }, j.failedReason) : '—') },
    ],
    page.items,
    { empty: `No ${state} jobs.`, onRowClick: (j) => showDetail(j.id).catch((err) => ctxRef.notify(err.message)) },
  ));
  pager($('jobs-pager'), page, (next) => {
    offset = next;
    refresh().catch((err) => ctxRef.notify(err.message));
  });
}

export async function enter(ctx, args) {
  ctxRef = ctx;
  if (!wired) {
    wired = true;
    $('queue-pause').addEventListener('click', () => action(() => post(`${queuePath()}/pause`), 'Queue paused.', null));
    $('queue-resume').addEventListener('click', () => action(() => post(`${queuePath()}/resume`), 'Queue resumed.', null));
  }
  if (args && STATES.includes(args[0])) state = args[0];
  await refresh();
}

export function leave() {}
