// Executions: the execution log, paged, filtered by status; a row opens its detail.
import { $, h, fill, badge, fmtTime, fmtMs, table, pager, details, pre } from './dom.js';
import { get, withQuery } from './api.js';

const PAGE = 25;
let ctxRef = null;
let offset = 0;
let wired = false;

function showDetail(row) {
  fill($('execution-detail'), h('div', { class: 'card detail' },
    h('div', { class: 'view-head' },
      h('h2', {}, 'Execution ', h('span', { class: 'mono' }, row.executionId)),
      h('button', { type: 'button', class: 'secondary small',
        onclick: () => fill($('execution-detail')) }, 'Close')),
    details([
      ['Status', badge(row.status)],
      ['Handler', row.handlerName],
      ['Schedule', row.jobId],
      ['Trigger', row.trigger],
      ['Queue', row.queue],
      ['Started', fmtTime(row.startedAt)],
      ['Finished', fmtTime(row.finishedAt)],
      ['Duration', fmtMs(row.durationMs)],
      ['Retries', row.retryCount],
      ['Error', row.errorMessage ? h('pre', { class: 'error-text' }, row.errorMessage) : '—'],
      ['Result', pre(row.result)],
    ])));
  $('execution-detail').scrollIntoView({ block: 'nearest' });
}

async function refresh() {
  const status = $('exec-status').value;
  const page = await get(withQuery('/api/admin/executions', { status, limit: PAGE, offset }));
  fill($('executions-table'), table(
    [
      { title: 'Execution', cell: (r) => r.executionId, class: 'mono' },
      { title: 'Status', cell: (r) => badge(r.status) },
      { title: 'Handler', cell: (r) => r.handlerName ?? '—', class: 'mono' },
      { title: 'Trigger', cell: (r) => r.trigger ?? '—' },
      { title: 'Started', cell: (r) => fmtTime(r.startedAt) },
      { title: 'Duration', cell: (r) => fmtMs(r.durationMs) },
      { title: 'Retries', cell: (r) => String(r.retryCount) },
      { title: 'Error', cell: (r) => (r.errorMessage ? h('span', { class: 'error-text clip' }, r.errorMessage) : '—') },
    ],
    page.items,
    { empty: 'No executions match.', onRowClick: showDetail },
  ));
  pager($('executions-pager'), page, (next) => {
    offset = next;
    refresh().catch((err) => ctxRef.notify(err.message));
  });
}

export async function enter(ctx) {
  ctxRef = ctx;
  if (!wired) {
    wired = true;
    $('exec-status').addEventListener('change', () => {
      offset = 0;
      fill($('execution-detail'));
      refresh().catch((err) => ctxRef.notify(err.message));
    });
  }
  await refresh();
}

export function leave() {}
