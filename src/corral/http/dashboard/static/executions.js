// Executions: the execution log, paged, filtered by status, handler, schedule and time; a row
// opens its detail.
import {
  $, h, fill, show, badge, localTime, fmtMs, table, pager, details, pre, tracebacks, missedSummary,
} from './dom.js';
import { get, withQuery } from './api.js';

const PAGE = 25;
const TYPING_DELAY_MS = 300;
/** The API's parameter -> the filter's input. */
const INPUTS = {
  status: 'exec-status',
  handlerName: 'exec-handler',
  scheduleId: 'exec-schedule',
  from: 'exec-from',
  to: 'exec-to',
};
let ctxRef = null;
let offset = 0;
let wired = false;
let typingTimer = null;
let seq = 0;
let scheduleNames = new Map();

class FilterError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** A datetime-local value (the browser's local time) -> ISO-8601 in UTC ('...Z'); '' stays ''. */
function instant(id, name) {
  const value = $(id).value;
  if (!value) return '';
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) throw new FilterError(name, `${name}: is not a valid date and time`);
  return moment.toISOString();
}

function filters() {
  return {
    status: $('exec-status').value,
    handlerName: $('exec-handler').value.trim(),
    scheduleId: $('exec-schedule').value,
    from: instant('exec-from', 'from'),
    to: instant('exec-to', 'to'),
  };
}

function clearError() {
  for (const id of Object.values(INPUTS)) $(id).classList.remove('invalid');
  show($('exec-error'), false);
}

function showError(err) {
  fill($('exec-error'), err.message);
  show($('exec-error'), true);
  const id = err.field && INPUTS[err.field.split('.')[0]];
  if (id) $(id).classList.add('invalid');
}

function scheduleCell(id) {
  if (!id) return '—';
  return scheduleNames.get(id) ?? h('span', { class: 'mono muted' }, `${id.slice(0, 8)}…`);
}

/** A failure's reason; on a 'missed' row, which ticks were skipped. */
function errorCell(row) {
  if (row.missed) return h('span', { class: 'missed-text' }, missedSummary(row.missed));
  return row.errorMessage ? h('span', { class: 'error-text clip' }, row.errorMessage) : '—';
}

function showDetail(row) {
  const name = row.jobId ? scheduleNames.get(row.jobId) : null;
  fill($('execution-detail'), h('div', { class: 'card detail' },
    h('div', { class: 'view-head' },
      h('h2', {}, 'Execution ', h('span', { class: 'mono' }, row.executionId)),
      h('button', { type: 'button', class: 'secondary small',
        onclick: () => fill($('execution-detail')) }, 'Close')),
    details([
      ['Status', badge(row.status)],
      // ticks the scheduler skipped (nothing ran): how many and from when to when
      row.missed ? ['Missed', h('span', { class: 'missed-text' }, missedSummary(row.missed))] : null,
      ['Handler', row.handlerName],
      ['Schedule', row.jobId ? h('span', {}, name ? `${name} ` : '', h('span', { class: 'mono muted' }, row.jobId)) : '—'],
      ['Trigger', row.trigger],
      ['Queue', row.queue],
      row.missed ? null : ['Enqueued', localTime(row.enqueuedAt)], // a skip enqueued nothing
      ['Started', localTime(row.startedAt)],
      ['Finished', localTime(row.finishedAt)],
      ['Duration', fmtMs(row.durationMs)],
      ['Retries', row.retryCount],
      ['Error', row.errorMessage ? h('pre', { class: 'error-text' }, row.errorMessage) : '—'],
      ['Traceback', tracebacks(row.stacktrace, 'execution-stacktrace')],
      ['Result', pre(row.result)],
    ].filter(Boolean))));
  $('execution-detail').scrollIntoView({ block: 'nearest' });
}

async function loadSchedules() {
  const select = $('exec-schedule');
  const chosen = select.value;
  const page = await get(withQuery('/api/admin/scheduled-jobs', { limit: 500, sort: 'name' }));
  scheduleNames = new Map(page.items.map((j) => [j.id, j.name]));
  fill(select, h('option', { value: '' }, 'all schedules'),
    page.items.map((j) => h('option', { value: j.id }, j.name)));
  // keep the choice if that schedule still exists
  select.value = scheduleNames.has(chosen) ? chosen : '';
}

async function refresh() {
  const mine = ++seq;
  clearError();
  let page;
  try {
    page = await get(withQuery('/api/admin/executions', { ...filters(), limit: PAGE, offset }));
  } catch (err) {
    if (mine !== seq) return;
    if (err instanceof FilterError || err.status === 422) {
      showError(err);
      fill($('executions-table'));
      fill($('executions-pager'));
      return;
    }
    throw err;
  }
  if (mine !== seq) return;
  fill($('executions-table'), table(
    [
      { title: 'Execution', cell: (r) => h('span', { class: 'clip id-clip', title: r.executionId }, r.executionId), class: 'mono' },
      { title: 'Status', cell: (r) => badge(r.status) },
      { title: 'Handler', cell: (r) => r.handlerName ?? '—', class: 'mono' },
      { title: 'Schedule', cell: (r) => scheduleCell(r.jobId) },
      { title: 'Trigger', cell: (r) => r.trigger ?? '—' },
      { title: 'Started', cell: (r) => localTime(r.startedAt) },
      { title: 'Duration', cell: (r) => fmtMs(r.durationMs), class: 'nowrap' },
      { title: 'Retries', cell: (r) => String(r.retryCount) },
      { title: 'Error', cell: errorCell },
    ],
    page.items,
    { empty: 'No executions match.', onRowClick: showDetail },
  ));
  pager($('executions-pager'), page, (next) => {
    offset = next;
    refresh().catch((err) => ctxRef.notify(err.message));
  });
}

function changed() {
  clearTimeout(typingTimer);
  offset = 0;
  fill($('execution-detail'));
  refresh().catch((err) => ctxRef.notify(err.message));
}

function wire() {
  if (wired) return;
  wired = true;
  $('exec-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    changed();
  });
  for (const id of ['exec-status', 'exec-schedule', 'exec-from', 'exec-to', 'exec-handler']) {
    $(id).addEventListener('change', changed);
  }
  $('exec-handler').addEventListener('input', () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(changed, TYPING_DELAY_MS);
  });
  $('exec-clear').addEventListener('click', () => {
    $('exec-filters').reset();
    changed();
  });
}

export async function enter(ctx) {
  ctxRef = ctx;
  wire();
  await loadSchedules().catch((err) => ctxRef.notify(`Schedules: ${err.message}`));
  await refresh();
}

export function leave() {
  clearTimeout(typingTimer);
}
