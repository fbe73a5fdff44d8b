// Schedules: table with actions, and the create / edit form with a live (debounced) cron preview.
import { $, h, fill, show, badge, zonedTime, table, pager, missedSummary } from './dom.js';
import { get, post, patch, del, withQuery } from './api.js';

const STATUS = { 0: 'disabled', 1: 'enabled', 2: 'paused' };
const PAGE = 20;
const PREVIEW_DELAY_MS = 300;
let ctxRef = null;
let offset = 0;
let previewTimer = null;
let previewSeq = 0;
let wired = false;
let editing = null; // the schedule being edited, or null when creating

/** The API's default zone (GET /dashboard/config), so the form and the API agree. */
function defaultZone() {
  return (ctxRef && ctxRef.defaultTimezone) || 'UTC';
}

function actionButton(label, handler, cls = 'secondary small') {
  return h('button', { type: 'button', class: cls, onclick: handler }, label);
}

async function act(fn, okMessage) {
  try {
    await fn();
    if (okMessage) ctxRef.notify(okMessage, 'ok');
  } catch (err) {
    ctxRef.notify(err.message);
  }
  await refresh();
}

function confirmDelete(button, job) {
  if (button.dataset.armed) {
    act(() => del(`/api/admin/scheduled-jobs/${job.id}`), 'Schedule deleted.');
    return;
  }
  button.dataset.armed = '1';
  button.textContent = 'Confirm delete';
  button.classList.add('danger');
  setTimeout(() => {
    delete button.dataset.armed;
    button.textContent = 'Delete';
    button.classList.remove('danger');
  }, 4000);
}

function actions(job) {
  const setStatus = (status, label) => actionButton(label,
    () => act(() => patch(`/api/admin/scheduled-jobs/${job.id}`, { status }), `Schedule ${STATUS[status]}.`));
  return h('div', { class: 'row-actions' },
    job.status !== 1 ? setStatus(1, 'Enable') : null,
    job.status === 1 ? setStatus(2, 'Pause') : null,
    job.status !== 0 ? setStatus(0, 'Disable') : null,
    actionButton('Edit', () => openForm(job)),
    actionButton('Run now', () => act(async () => {
      const run = await post(`/api/admin/scheduled-jobs/${job.id}/run`);
      ctxRef.notify(`Triggered: execution ${run.executionId}`, 'ok');
    })),
    h('button', { type: 'button', class: 'secondary small',
      onclick: (event) => confirmDelete(event.currentTarget, job) }, 'Delete'),
  );
}

/** The latest execution-log row's state; a skipped range says how many ticks it covers. */
function lastRunCell(job) {
  const run = job.lastRun;
  if (!run) return '—';
  if (!run.missed) return badge(run.status);
  return h('div', { title: missedSummary(run.missed) }, badge(run.status),
    h('div', { class: 'muted small missed-text' }, run.missed.ticks === 1 ? '1 tick' : `${run.missed.ticks} ticks`));
}

async function refresh() {
  const page = await get(withQuery('/api/admin/scheduled-jobs', { limit: PAGE, offset }));
  // The list omits next fires and the last run; each row's detail has them.
  const rows = await Promise.all(page.items.map(
    (item) => get(`/api/admin/scheduled-jobs/${item.id}`).catch(() => item)));
  fill($('schedules-table'), table(
    [
      { title: 'Name', cell: (j) => h('div', {},
        h('div', { class: 'strong' }, j.name),
        j.description ? h('div', { class: 'muted small' }, j.description) : null) },
      { title: 'Status', cell: (j) => badge(STATUS[j.status] ?? j.status) },
      { title: 'Handler', cell: (j) => j.handlerName, class: 'mono' },
      { title: 'Cron', cell: (j) => j.cronExpression, class: 'mono' },
      { title: 'Timezone', cell: (j) => j.timezone },
      { title: 'Next fire', cell: (j) => zonedTime(j.nextFires && j.nextFires[0], j.timezone), class: 'next-fire' },
      { title: 'Last run', cell: lastRunCell },
      { title: '', cell: actions, class: 'actions-cell' },
    ],
    rows,
    { empty: 'No schedules yet. Create one with “New schedule”.' },
  ));
  if (page.total > PAGE) {
    const el = h('div', { class: 'pager' });
    pager(el, page, (next) => { offset = next; refresh().catch((e) => ctxRef.notify(e.message)); });
    $('schedules-table').append(el);
  }
}

// -- the create / edit form -----------------------------------------------------------------

/** The form for a new schedule (job null) or for editing `job`, pre-filled. */
function openForm(job) {
  const form = $('schedule-form');
  clearTimeout(previewTimer);
  previewSeq += 1;
  form.reset();
  clearFieldErrors();
  fill($('sf-preview'));
  show($('sf-preview-error'), false);
  editing = job;
  fill($('sf-title'), job ? 'Edit schedule' : 'New schedule');
  fill($('sf-submit'), job ? 'Save' : 'Create');
  if (job) {
    form.elements.name.value = job.name ?? '';
    form.elements.handlerName.value = job.handlerName ?? '';
    form.elements.cronExpression.value = job.cronExpression ?? '';
    form.elements.timezone.value = job.timezone ?? defaultZone();
    form.elements.domain.value = job.domain ?? '';
    form.elements.description.value = job.description ?? '';
    form.elements.payload.value = JSON.stringify(job.payload ?? {}, null, 2);
    preview();
  } else {
    form.elements.timezone.value = defaultZone();
  }
  show(form, true);
  form.scrollIntoView({ block: 'nearest' });
  $('sf-name').focus();
}

function closeForm() {
  clearTimeout(previewTimer);
  previewSeq += 1; // a preview still on its way is dropped
  $('schedule-form').reset();
  fill($('sf-preview'));
  show($('sf-preview-error'), false);
  clearFieldErrors();
  editing = null;
  show($('schedule-form'), false);
}

/** The fields of the form that differ from the schedule being edited. */
function changes(v, payload) {
  const body = {};
  for (const key of ['name', 'handlerName', 'cronExpression', 'timezone', 'domain']) {
    if (v[key] !== (editing[key] ?? '')) body[key] = v[key];
  }
  if (v.description !== (editing.description ?? '')) body.description = v.description || null;
  if (JSON.stringify(payload) !== JSON.stringify(editing.payload ?? {})) body.payload = payload;
  return body;
}

function formValues() {
  const form = $('schedule-form');
  const value = (name) => form.elements[name].value.trim();
  return {
    name: value('name'),
    handlerName: value('handlerName'),
    cronExpression: value('cronExpression'),
    timezone: value('timezone') || defaultZone(),
    domain: value('domain'),
    description: value('description'),
    payload: value('payload'),
  };
}

function clearFieldErrors() {
  for (const input of $('schedule-form').querySelectorAll('.invalid')) input.classList.remove('invalid');
  show($('sf-error'), false);
}

function markField(field) {
  const input = field && $('schedule-form').elements[field.split('.')[0]];
  if (input && input.classList) input.classList.add('invalid');
}

async function preview() {
  const { cronExpression, timezone } = formValues();
  const list = $('sf-preview');
  const error = $('sf-preview-error');
  const cron = $('sf-cron');
  const seq = ++previewSeq;
  if (!cronExpression) {
    fill(list);
    show(error, false);
    return;
  }
  try {
    const answer = await post('/api/admin/cron/preview', { cronExpression, timezone, count: 5 });
    if (seq !== previewSeq) return;
    show(error, false);
    cron.classList.remove('invalid');
    $('sf-tz').classList.remove('invalid');
    // in the zone the schedule will fire in, as the schedules table shows it (UTC on hover)
    fill(list, answer.nextFires.map((t) => h('li', {}, zonedTime(t, answer.timezone))));
  } catch (err) {
    if (seq !== previewSeq) return;
    fill(list);
    fill(error, err.message);
    show(error, true);
    markField(err.field);
  }
}

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, PREVIEW_DELAY_MS);
}

async function submit(event) {
  event.preventDefault();
  clearFieldErrors();
  const v = formValues();
  let payload;
  try {
    payload = v.payload ? JSON.parse(v.payload) : {};
  } catch (err) {
    fill($('sf-error'), 'payload: is not valid JSON');
    show($('sf-error'), true);
    markField('payload');
    return;
  }
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
    fill($('sf-error'), 'payload: must be a JSON object');
    show($('sf-error'), true);
    markField('payload');
    return;
  }
  const job = editing;
  let message;
  try {
    if (job) {
      const body = changes(v, payload);
      if (!Object.keys(body).length) {
        closeForm();
        ctxRef.notify('Nothing changed.', 'ok');
        return;
      }
      await patch(`/api/admin/scheduled-jobs/${job.id}`, body);
      message = 'Schedule saved.';
    } else {
      const body = {
        name: v.name, handlerName: v.handlerName, cronExpression: v.cronExpression,
        timezone: v.timezone, domain: v.domain, payload,
      };
      if (v.description) body.description = v.description;
      await post('/api/admin/scheduled-jobs', body);
      message = 'Schedule created.';
    }
  } catch (err) {
    fill($('sf-error'), err.message);
    show($('sf-error'), true);
    markField(err.field);
    return;
  }
  closeForm();
  ctxRef.notify(message, 'ok');
  await refresh();
}

function wire() {
  if (wired) return;
  wired = true;
  $('schedule-new').addEventListener('click', () => openForm(null));
  $('schedule-cancel').addEventListener('click', closeForm);
  $('sf-cron').addEventListener('input', schedulePreview);
  $('sf-tz').addEventListener('input', schedulePreview);
  $('schedule-form').addEventListener('submit', submit);
}

export async function enter(ctx) {
  ctxRef = ctx;
  wire();
  await refresh();
}

export function leave() {
  clearTimeout(previewTimer);
}
