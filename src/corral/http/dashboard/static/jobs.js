// Jobs: the queue's jobs by state; detail with data, progress, error and log lines; retry,
// remove; pause; add a job; clean the queue.
import { $, h, fill, show, badge, localTime, table, pager, details, pre, tracebacks } from './dom.js';
import { get, post, del, withQuery } from './api.js';

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed'];
const PAGE = 25;
let ctxRef = null;
let state = 'waiting';
let chosen = false; // a state picked by the user (a tab or the URL) since the page opened
let offset = 0;
let wired = false;
let cleanTimer = null;

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

/** The job's log lines (the API sends the newest 100 and the total count); '—' when none. */
function logsCell(job) {
  const lines = Array.isArray(job.logs) ? job.logs : [];
  if (!lines.length) return '—';
  const total = Number.isInteger(job.logCount) ? job.logCount : lines.length;
  return h('div', { class: 'logs-box' },
    total > lines.length
      ? h('p', { class: 'muted small logs-note' }, `showing last ${lines.length} of ${total}`)
      : null,
    h('pre', { class: 'logs', id: 'job-logs' }, lines.map((line) => String(line)).join('\n')));
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
      ['Created', localTime(job.createdAt)],
      ['Processed', localTime(job.processedAt)],
      ['Finished', localTime(job.finishedAt)],
      ['Error', job.failedReason ? h('pre', { class: 'error-text' }, job.failedReason) : '—'],
      ['Traceback', tracebacks(job.stacktrace, 'job-stacktrace')],
      ['Logs', logsCell(job)],
      ['Data', pre(job.data)],
      ['Result', pre(job.result)],
      ['Options', pre(job.options)],
    ])));
  const logs = $('job-logs');
  if (logs) logs.scrollTop = logs.scrollHeight; // the newest lines in view
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
      chosen = true;
      offset = 0;
      fill($('job-detail'));
      refresh().catch((err) => ctxRef.notify(err.message));
    },
  }, `${s} `, h('span', { class: 'count' }, String(counts[s] ?? 0)))));
}

/** The handler names the live workers run, for the add form's suggestions. */
function renderHandlers(workers) {
  const names = new Set();
  for (const worker of workers || []) {
    for (const name of Array.isArray(worker.handlers) ? worker.handlers : []) names.add(String(name));
  }
  fill($('jf-handlers'), [...names].sort().map((name) => h('option', { value: name })));
}

async function refresh() {
  const [queue, page] = await Promise.all([
    get(queuePath()),
    get(withQuery(`${queuePath()}/jobs`, { state, limit: PAGE, offset })),
  ]);
  renderTabs(queue.counts);
  renderHandlers(queue.workers);
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
      { title: 'Created', cell: (j) => localTime(j.createdAt) },
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

// -- forms: field errors -----------------------------------------------------------------------

/** Show `message` in the form's error line and mark the input for `field` ('options.priority'). */
function formError(errorId, inputs, field, message) {
  fill($(errorId), message);
  show($(errorId), true);
  const parts = String(field || '').split('.');
  const id = inputs[parts.slice(0, 2).join('.')] ?? inputs[parts[0]];
  if (id) $(id).classList.add('invalid');
}

function clearFormErrors(formId, errorId) {
  for (const input of $(formId).querySelectorAll('.invalid')) input.classList.remove('invalid');
  show($(errorId), false);
}

class FormError extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

/** An optional integer input: '' -> undefined; anything but an integer is a FormError. */
function integer(id, field) {
  const input = $(id);
  const raw = input.value.trim();
  if (raw === '') {
    if (input.validity && input.validity.badInput) throw new FormError(field, 'must be an integer');
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new FormError(field, 'must be an integer');
  return value;
}

// -- add a job ------------------------------------------------------------------------------

const JOB_INPUTS = {
  name: 'jf-name',
  data: 'jf-data',
  'options.priority': 'jf-priority',
  'options.attempts': 'jf-attempts',
  'options.timeout': 'jf-timeout',
  'options.delay': 'jf-delay',
};

function jobBody() {
  const name = $('jf-name').value.trim();
  if (!name) throw new FormError('name', 'is required');
  let data;
  const text = $('jf-data').value.trim();
  try {
    data = text ? JSON.parse(text) : {};
  } catch (err) {
    throw new FormError('data', 'is not valid JSON');
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new FormError('data', 'must be a JSON object');
  const options = {};
  for (const [key, id] of [['priority', 'jf-priority'], ['attempts', 'jf-attempts'],
    ['timeout', 'jf-timeout'], ['delay', 'jf-delay']]) {
    const value = integer(id, `options.${key}`);
    if (value !== undefined) options[key] = value;
  }
  const body = { name, data };
  if (Object.keys(options).length) body.options = options;
  return body;
}

function openJobForm() {
  show($('job-form'), true);
  $('jf-name').focus();
}

function closeJobForm() {
  $('job-form').reset();
  clearFormErrors('job-form', 'jf-error');
  show($('job-form'), false);
}

async function addJob(event) {
  event.preventDefault();
  clearFormErrors('job-form', 'jf-error');
  let created;
  try {
    created = await post(`${queuePath()}/jobs`, jobBody());
  } catch (err) {
    formError('jf-error', JOB_INPUTS, err.field, err.message);
    return;
  }
  closeJobForm();
  ctxRef.notify(`Job ${created.id} added.`, 'ok');
  // show it: its state's tab and its detail
  try {
    const job = await get(`/api/admin/jobs/${encodeURIComponent(created.id)}`);
    if (STATES.includes(job.state)) {
      state = job.state;
      chosen = true;
      offset = 0;
    }
    await refresh();
    await showDetail(created.id);
  } catch (err) {
    await refresh().catch(() => {});
  }
}

// -- clean the queue --------------------------------------------------------------------------

const CLEAN_INPUTS = { status: 'clean-status', graceMs: 'clean-grace', limit: 'clean-limit' };

function disarmClean() {
  clearTimeout(cleanTimer);
  const button = $('clean-submit');
  delete button.dataset.armed;
  fill(button, 'Clean');
  button.classList.remove('danger');
}

function cleanBody() {
  const status = $('clean-status').value;
  const graceInput = $('clean-grace');
  const grace = graceInput.value.trim() === '' ? 0 : Number(graceInput.value);
  if (!Number.isFinite(grace) || grace < 0 || (graceInput.validity && graceInput.validity.badInput)) {
    throw new FormError('graceMs', 'must be a number >= 0');
  }
  const graceMs = Math.round(grace * Number($('clean-grace-unit').value));
  const limit = integer('clean-limit', 'limit');
  return { status, graceMs, limit: limit ?? 1000 };
}

async function clean(event) {
  event.preventDefault();
  clearFormErrors('clean-form', 'clean-error');
  show($('clean-result'), false);
  let body;
  try {
    body = cleanBody();
  } catch (err) {
    formError('clean-error', CLEAN_INPUTS, err.field, err.message);
    disarmClean();
    return;
  }
  const button = $('clean-submit');
  if (!button.dataset.armed) {
    // a second click confirms, as the schedules' Delete does
    button.dataset.armed = '1';
    fill(button, `Confirm: remove ${body.status} jobs`);
    button.classList.add('danger');
    clearTimeout(cleanTimer);
    cleanTimer = setTimeout(disarmClean, 4000);
    return;
  }
  disarmClean();
  let answer;
  try {
    answer = await post(`${queuePath()}/clean`, body);
  } catch (err) {
    formError('clean-error', CLEAN_INPUTS, err.field, err.message);
    return;
  }
  const message = `Removed ${answer.removed} ${answer.removed === 1 ? 'job' : 'jobs'}.`;
  fill($('clean-result'), message);
  show($('clean-result'), true);
  ctxRef.notify(message, 'ok');
  fill($('job-detail'));
  await refresh();
}

function wire() {
  if (wired) return;
  wired = true;
  $('queue-pause').addEventListener('click', () => action(() => post(`${queuePath()}/pause`), 'Queue paused.', null));
  $('queue-resume').addEventListener('click', () => action(() => post(`${queuePath()}/resume`), 'Queue resumed.', null));
  $('job-new').addEventListener('click', openJobForm);
  $('job-cancel').addEventListener('click', closeJobForm);
  $('job-form').addEventListener('submit', addJob);
  $('job-form').addEventListener('input', () => clearFormErrors('job-form', 'jf-error'));
  $('clean-open').addEventListener('click', () => {
    show($('clean-form'), true);
    $('clean-status').focus();
  });
  $('clean-cancel').addEventListener('click', () => {
    disarmClean();
    clearFormErrors('clean-form', 'clean-error');
    show($('clean-result'), false);
    show($('clean-form'), false);
  });
  $('clean-form').addEventListener('submit', clean);
  for (const id of ['clean-status', 'clean-grace', 'clean-grace-unit', 'clean-limit']) {
    $(id).addEventListener('input', disarmClean);
  }
}

/** The state the page opens on: the first one holding jobs (an empty queue: 'waiting'). */
async function firstNonEmptyState() {
  const queue = await get(queuePath());
  return STATES.find((s) => (queue.counts[s] ?? 0) > 0) ?? 'waiting';
}

export async function enter(ctx, args) {
  ctxRef = ctx;
  wire();
  if (args && STATES.includes(args[0])) {
    state = args[0];
    chosen = true;
  } else if (!chosen) {
    state = await firstNonEmptyState();
    offset = 0;
  }
  await refresh();
}

export function leave() {
  disarmClean();
}
