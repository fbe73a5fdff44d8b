// DOM helpers. Every string is set with textContent or setAttribute: never parsed as HTML.

/**
 * h('td', {class: 'x', onclick: fn}, 'text', child) -> element.
 * Children: strings/numbers become text nodes; null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'style' || key.toLowerCase().startsWith('on') || key === 'srcdoc') {
      throw new Error(`attribute ${key} is not allowed`);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function $(id) {
  return document.getElementById(id);
}

/** Replace an element's children (no HTML parsing). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function show(el, visible) {
  el.hidden = !visible;
}

/** A badge for a job / execution / schedule state. */
export function badge(state) {
  const text = String(state ?? '—');
  return h('span', { class: `badge state-${text.replace(/[^a-z-]/gi, '')}` }, text);
}

export function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

const pad = (n) => String(n).padStart(2, '0');

/** An instant as 'YYYY-MM-DD HH:MM:SS' on the UTC clock; null when it is not a date. */
function utcClock(value) {
  const d = new Date(value);
  if (!value || Number.isNaN(d.getTime())) return null;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** '2026-12-01 18:00:00 UTC', for a title: the same instant on every viewer's screen. */
export function fmtUtc(value) {
  const clock = utcClock(value);
  return clock ? `${clock} UTC` : '';
}

const zoneFormats = new Map();

/** An Intl formatter for an IANA zone, or null when the browser does not know the zone. */
function zoneFormat(zone) {
  if (!zoneFormats.has(zone)) {
    let format = null;
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit',
      });
    } catch (err) {
      format = null; // an unknown zone: the caller shows UTC instead
    }
    zoneFormats.set(zone, format);
  }
  return zoneFormats.get(zone);
}

/**
 * An instant on the clock of IANA `zone`: ['2026-12-02 02:00:00', 'Asia/Shanghai'];
 * [value, ''] when it is not a date, and the UTC clock for a zone the browser does not know.
 */
function zonedParts(value, zone) {
  const utc = utcClock(value);
  if (!utc) return [String(value), ''];
  const format = zone ? zoneFormat(zone) : null;
  if (!format) return [utc, 'UTC'];
  const part = Object.fromEntries(format.formatToParts(new Date(value)).map((p) => [p.type, p.value]));
  return [`${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}`, zone];
}

/** A schedule's time: in the schedule's zone, labelled with the zone's name; UTC on hover. */
export function zonedTime(value, zone) {
  if (!value) return '—';
  const [clock, label] = zonedParts(value, zone);
  return h('span', { class: 'zoned', title: fmtUtc(value) || null },
    h('span', { class: 'time' }, clock), label ? ' ' : null,
    label ? h('span', { class: 'zone' }, label) : null);
}

/** A time in the browser's zone (as fmtTime), on one line, UTC on hover. */
export function localTime(value) {
  if (!value) return '—';
  return h('span', { class: 'time', title: fmtUtc(value) || null }, fmtTime(value));
}

/** The text of a 'missed' execution row: '29 ticks missed from X to Y' (local times). */
export function missedSummary(missed) {
  if (!missed) return '';
  if (missed.ticks === 1 && missed.first === missed.last) {
    return `1 tick missed: ${fmtTime(missed.first)}`;
  }
  const ticks = missed.ticks === 1 ? '1 tick' : `${missed.ticks} ticks`;
  return `${ticks} missed from ${fmtTime(missed.first)} to ${fmtTime(missed.last)}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function fmtJson(value) {
  if (value === null || value === undefined) return '—';
  return JSON.stringify(value, null, 2);
}

/** A table from column specs [{title, cell: row => Node|string}]. */
export function table(columns, rows, { empty = 'Nothing here yet.', onRowClick } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  const head = h('tr', {}, columns.map((c) => h('th', {}, c.title)));
  const body = rows.map((row) => {
    const tr = h('tr', {}, columns.map((c) => h('td', { class: c.class }, c.cell(row))));
    if (onRowClick) {
      tr.classList.add('clickable');
      tr.addEventListener('click', (event) => {
        if (event.target.closest('button')) return;
        onRowClick(row);
      });
    }
    return tr;
  });
  return h('table', { class: 'data' }, h('thead', {}, head), h('tbody', {}, body));
}

/** "Showing a-b of n" with previous / next buttons. */
export function pager(el, { total, limit, offset }, go) {
  const first = total ? offset + 1 : 0;
  const last = Math.min(offset + limit, total);
  fill(
    el,
    h('span', { class: 'muted' }, `${first}–${last} of ${total}`),
    h('button', { type: 'button', class: 'secondary', disabled: offset <= 0,
      onclick: () => go(Math.max(0, offset - limit)) }, 'Previous'),
    h('button', { type: 'button', class: 'secondary', disabled: offset + limit >= total,
      onclick: () => go(offset + limit) }, 'Next'),
  );
}

/** A definition list from [label, value] pairs; values that are objects are shown as JSON. */
export function details(pairs) {
  return h('dl', { class: 'details' }, pairs.flatMap(([label, value]) => [
    h('dt', {}, label),
    h('dd', {}, value instanceof Node ? value : String(value ?? '—')),
  ]));
}

export function pre(value) {
  return h('pre', { class: 'json' }, typeof value === 'string' ? value : fmtJson(value));
}

/**
 * A failure's tracebacks (one string, or a list oldest first): the latest in full with `id`,
 * earlier attempts folded under it. Text only: a traceback may quote the job's data.
 */
export function tracebacks(traces, id) {
  const list = (Array.isArray(traces) ? traces : [traces])
    .filter((t) => typeof t === 'string' && t.trim() !== '');
  if (!list.length) return '—';
  const earlier = list.slice(0, -1);
  return h('div', { class: 'tracebacks' },
    h('pre', { class: 'stacktrace', id }, list[list.length - 1]),
    earlier.length
      ? h('details', { class: 'attempts' },
        h('summary', {}, `${earlier.length} earlier failed ${earlier.length === 1 ? 'attempt' : 'attempts'}, oldest first`),
        earlier.map((t) => h('pre', { class: 'stacktrace' }, t)))
      : null);
}
