// web/js/processes.js: the processes of the project's sandbox (listProcesses), each with a
// Stop button (killProcess). The panel is a <details>; while it is open (and the tab is
// visible and the worker reachable) it refreshes every 2 s, slowing down to 15 s while nothing
// changes, and at once after a run, a setup or a dev server start.
//
// Every listProcesses is a record in the worker (the history list leaves them out), and it
// waits in the project's queue behind a running command, so the panel does not poll while
// the command box (or a project setup) runs something: it refreshes when that ends.

import { state, on, emit } from './state.js';
import { $, errText, isNetworkError, asList } from './util.js';
import { call } from './conn.js';

const POLL_MS = 2000;
const POLL_MAX_MS = 15000;
const OPEN_KEY = 'codecanvas.processes.open';

const el = {
  panel: $('processes-panel'), list: $('process-list'), empty: $('processes-empty'),
  status: $('processes-status'), count: $('processes-count'), refresh: $('processes-refresh'),
};

let timer = null;
let inflight = false;
let again = false;
let delay = POLL_MS;
let lastSig = null;

function active() {
  return el.panel.open && !!state.client && !!state.projectId && state.online !== false
    && document.visibilityState !== 'hidden';
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (active()) timer = setTimeout(() => refresh({ auto: true }), delay);
}

function stopPolling() {
  clearTimeout(timer);
  timer = null;
}

// Lists the processes now. auto: a timer's refresh (skipped while a command runs).
async function refresh({ auto = false } = {}) {
  stopPolling();
  const id = state.projectId;
  if (!el.panel.open || !id || !state.client) return;
  if (inflight) { again = true; return; }
  if (auto && (state.running || state.settingUp)) { schedule(); return; }
  inflight = true;
  el.list.setAttribute('aria-busy', 'true');
  try {
    const res = await call((c) => c.listProcesses(id));
    if (id !== state.projectId) return;
    const procs = asList(res, 'processes');
    const sig = JSON.stringify(procs);
    delay = auto && sig === lastSig ? Math.min(Math.round(delay * 1.5), POLL_MAX_MS) : POLL_MS;
    lastSig = sig;
    render(procs);
    if (el.status.dataset.kind === 'error') setStatus('');
  } catch (e) {
    if (id !== state.projectId) return;
    setStatus(isNetworkError(e) ? 'Processes are not available offline.' : `Could not list processes: ${errText(e)}`, 'error');
  } finally {
    inflight = false;
    el.list.setAttribute('aria-busy', 'false');
    if (again) { again = false; refresh(); } else schedule();
  }
}

function setStatus(text, kind = '') {
  el.status.textContent = text;
  el.status.dataset.kind = kind;
}

function render(procs) {
  el.list.textContent = '';
  for (const p of procs) {
    const li = document.createElement('li');
    li.className = 'proc-item';
    li.dataset.pid = String(p.pid);
    const cmd = document.createElement('code');
    cmd.className = 'proc-cmd';
    cmd.textContent = p.cmd || '(unknown command)';
    cmd.title = p.cmd || '';
    const meta = document.createElement('span');
    meta.className = 'proc-meta';
    meta.textContent = [`pid ${p.pid}`, p.tag, p.cwd && p.cwd !== '/home/user' ? p.cwd : null].filter(Boolean).join(' · ');
    const stop = document.createElement('button');
    stop.type = 'button';
    stop.className = 'danger small';
    stop.textContent = 'Stop';
    stop.setAttribute('aria-label', `Stop process ${p.pid}: ${p.cmd || 'unknown command'}`);
    stop.addEventListener('click', () => stopProcess(p, stop));
    const text = document.createElement('span');
    text.className = 'proc-text';
    text.append(cmd, meta);
    li.append(text, stop);
    el.list.append(li);
  }
  el.count.textContent = String(procs.length);
  el.count.hidden = false;
  el.empty.hidden = procs.length > 0;
}

async function stopProcess(p, btn) {
  const id = state.projectId;
  btn.disabled = true;
  setStatus(`Stopping ${p.pid}…`);
  try {
    const r = await call((c) => c.killProcess(p.pid, id));
    if (id !== state.projectId) return;
    setStatus(r?.killed ? `Stopped ${p.pid} (${p.cmd}).` : `${p.pid} had already ended.`, r?.killed ? 'stopped' : '');
    emit('process:stopped', p.pid);
    emit('project:changed', id, ['history', 'processes']);
  } catch (e) {
    if (id !== state.projectId) return;
    setStatus(`Could not stop ${p.pid}: ${errText(e)}`, 'error');
    btn.disabled = false;
  }
}

function clear() {
  stopPolling();
  lastSig = null;
  delay = POLL_MS;
  el.list.textContent = '';
  el.count.hidden = true;
  el.empty.hidden = true;
  setStatus('');
}

try { el.panel.open = localStorage.getItem(OPEN_KEY) === 'true'; } catch { /* storage unavailable */ }
el.panel.addEventListener('toggle', () => {
  try { localStorage.setItem(OPEN_KEY, String(el.panel.open)); } catch { /* storage unavailable */ }
  if (el.panel.open) { delay = POLL_MS; refresh(); } else { stopPolling(); el.count.hidden = true; }
});
el.refresh.addEventListener('click', () => { delay = POLL_MS; refresh(); });
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh(); else stopPolling();
});

on('reset', clear);
on('project:switch', clear);
on('project:load', () => { refresh(); }); // not awaited: it may wait behind a running command
on('project:changed', (id, aspects) => {
  if (aspects.includes('processes') && id === state.projectId) { delay = POLL_MS; refresh(); }
});
on('offline', stopPolling);
on('online', () => refresh());
