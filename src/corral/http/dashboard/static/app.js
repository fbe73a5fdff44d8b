// Entry point: session check, login, hash routing between the views.
import { $, show, fill } from './dom.js';
import { ApiError, get, post, setCsrf, whenUnauthorized } from './api.js';
import * as overview from './overview.js';
import * as schedules from './schedules.js';
import * as executions from './executions.js';
import * as jobs from './jobs.js';

const VIEWS = { overview, schedules, executions, jobs };
const ctx = { queue: null, defaultTimezone: null, notify };
let current = null;
let bannerTimer = null;

/** Show a message in the banner ('error' or 'ok'); it fades after a while. */
export function notify(message, kind = 'error') {
  const banner = $('banner');
  banner.className = `banner banner-${kind}`;
  fill(banner, message);
  show(banner, true);
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => show(banner, false), kind === 'error' ? 8000 : 3000);
}

function leaveCurrent() {
  if (current && current.leave) current.leave();
  current = null;
}

function showOnly(id) {
  for (const section of document.querySelectorAll('.view')) show(section, section.id === id);
}

function showLogin() {
  leaveCurrent();
  setCsrf(null);
  show($('nav'), false);
  show($('logout'), false);
  fill($('queue-name'));
  showOnly('view-login');
  $('login-token').focus();
}

async function route() {
  if (!ctx.queue) return;
  const [, name, ...rest] = (location.hash || '#/overview').split('/');
  const view = VIEWS[name] ? name : 'overview';
  leaveCurrent();
  show($('banner'), false);
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.view === view);
  }
  showOnly(`view-${view}`);
  current = VIEWS[view];
  try {
    await current.enter(ctx, rest.map(decodeURIComponent));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notify(err.message);
  }
}

async function start() {
  try {
    const session = await get('/dashboard/session');
    setCsrf(session.csrfToken);
    const config = await get('/dashboard/config');
    ctx.queue = config.queue;
    ctx.defaultTimezone = config.defaultTimezone;
  } catch (err) {
    showLogin();
    return;
  }
  fill($('queue-name'), `queue: ${ctx.queue}`);
  show($('nav'), true);
  show($('logout'), true);
  await route();
}

async function login(event) {
  event.preventDefault();
  const error = $('login-error');
  show(error, false);
  try {
    const session = await post('/dashboard/login', { token: $('login-token').value });
    setCsrf(session.csrfToken);
    $('login-token').value = '';
    await start();
  } catch (err) {
    fill(error, err.status === 401 ? 'That token is not valid.' : err.message);
    show(error, true);
  }
}

async function logout() {
  try {
    await post('/dashboard/logout');
  } catch (err) {
    // the session is gone either way
  }
  ctx.queue = null;
  showLogin();
}

whenUnauthorized(() => {
  ctx.queue = null;
  showLogin();
});
$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);
start();
