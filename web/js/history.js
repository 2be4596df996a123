// web/js/history.js: the newest execution records of the project (commands, writes, setups,
// dev servers; reads such as the file tree's listDir are left out), the page's own rows for
// runs answered from a cache (they make no worker record), a click shows a record's output;
// "Clear cache" drops the project's cached results.

import { state, on, HISTORY_LIMIT } from './state.js';
import { $, errText, isNetworkError, isAuthError, asList, badge, recordStatus, toMs, fmtDuration, fmtTime } from './util.js';
import { call } from './conn.js';
import { renderOutput, showStatusText } from './output.js';
import { saveSnapshotSoon } from './snapshot.js';

const HISTORY_FETCH = 200;  // records asked for per page (reads are filtered out before showing)
const HISTORY_PAGES = 5;    // pages looked through at most for HISTORY_LIMIT rows to show
// Every operation is a record; the ones that only read (the file tree, opening a file, the
// processes panel) would bury the commands, so the history list leaves them out.
const QUIET_OPS = new Set(['listDir', 'readFile', 'listProcesses', 'getHistory', 'getResult', 'getProject', 'listProjects']);

const el = {
  clearCacheBtn: $('clear-cache-btn'), historyStatus: $('history-status'),
  history: $('history'), historyEmpty: $('history-empty'), historySource: $('history-source'), historyRefresh: $('history-refresh'),
};

async function loadHistory(id = state.projectId) {
  el.history.setAttribute('aria-busy', 'true');
  try {
    let res = await call((c) => c.getExecutionHistory(id, HISTORY_FETCH));
    if (id !== state.projectId) return;
    const stale = !!res?.stale;
    let rows = asList(res, 'items').filter((r) => !QUIET_OPS.has(r.op));
    // a page full of reads (e.g. the processes panel's refreshes): look further back
    for (let page = 1; rows.length < HISTORY_LIMIT && res?.next && page < HISTORY_PAGES; page++) {
      const before = res.next;
      try {
        res = await call((c) => c.getExecutionHistory(id, HISTORY_FETCH, { before }));
      } catch {
        break; // e.g. offline with only the first page cached: show what there is
      }
      if (id !== state.projectId) return;
      rows = rows.concat(asList(res, 'items').filter((r) => !QUIET_OPS.has(r.op)));
    }
    state.history = rows.slice(0, HISTORY_LIMIT);
    // stale: answered from the client's IndexedDB cache because the worker is unreachable
    el.history.dataset.source = stale ? 'cache' : 'worker';
    el.historySource.hidden = !stale;
    renderHistory();
    saveSnapshotSoon();
  } catch (e) {
    if (id === state.projectId && !isNetworkError(e) && !isAuthError(e)) {
      el.historyEmpty.hidden = false;
      el.historyEmpty.textContent = `Could not load history: ${errText(e)}`;
    }
  } finally {
    el.history.setAttribute('aria-busy', 'false');
  }
}

function recordCommand(r) {
  const inp = r.input;
  if (typeof inp === 'string') return inp;
  if (r.op === 'setupProject' && inp && typeof inp === 'object') {
    const n = Array.isArray(inp.files) ? inp.files.length : null;
    return `setup${n !== null ? ` (${n} file${n === 1 ? '' : 's'})` : ''}${inp.install ? `: ${inp.install}` : ''}`;
  }
  if (r.op === 'killProcess' && inp && typeof inp === 'object' && inp.pid) return `kill ${inp.pid}`;
  if (inp && typeof inp === 'object') return inp.cmd ?? inp.command ?? inp.path ?? (inp.port ? `dev server :${inp.port}` : r.op);
  return r.cmd ?? r.command ?? r.op ?? '?';
}

// The worker's records plus this page's cache hits (a cache hit makes no record), newest first.
function historyRows() {
  const rows = state.history.concat(state.cacheHits);
  rows.sort((a, b) => toMs(b.createdAt ?? b.finishedAt) - toMs(a.createdAt ?? a.finishedAt));
  return rows.slice(0, HISTORY_LIMIT);
}

function renderHistory() {
  el.history.textContent = '';
  const rows = historyRows();
  for (const r of rows) {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'hist-item';
    btn.dataset.id = r.id;
    const status = recordStatus(r);
    btn.dataset.status = status;
    if (r.cached) btn.dataset.cached = 'true';
    const top = document.createElement('span');
    top.className = 'hist-top';
    const cmd = document.createElement('code');
    cmd.className = 'hist-cmd';
    cmd.textContent = recordCommand(r);
    top.append(badge(status, `status status-${status}`), cmd);
    const meta = document.createElement('span');
    meta.className = 'hist-meta';
    const parts = [];
    if (r.op && r.op !== 'exec') parts.push(r.op);
    if (typeof r.exitCode === 'number') parts.push(`exit ${r.exitCode}`);
    if (typeof r.duration === 'number') parts.push(fmtDuration(r.duration));
    const t = fmtTime(r.createdAt ?? r.finishedAt);
    if (t) parts.push(t);
    meta.textContent = parts.join(' · ');
    if (r.cached) meta.append(' ', badge('cached', 'cached'));
    if (r.error?.code) meta.append(' ', badge(r.error.code, 'status status-error'));
    btn.append(top, meta);
    btn.addEventListener('click', () => showRecord(r.id));
    li.append(btn);
    el.history.append(li);
  }
  el.historyEmpty.hidden = rows.length > 0 || !state.projectId;
  el.historyEmpty.textContent = 'Nothing run yet.';
}

async function showRecord(execId) {
  if (!execId) return;
  showStatusText('Loading…');
  try {
    const r = await call((c) => c.getExecutionResult(execId));
    const chunks = [];
    if (r.stdout) chunks.push(['stdout', r.stdout]);
    if (r.stderr) chunks.push(['stderr', r.stderr]);
    if (r.error?.message) chunks.push(['stderr', `${r.error.code ?? 'error'}: ${r.error.message}\n`]);
    const { stdout, stderr, ...meta } = r;
    state.output = { cmd: recordCommand(r), chunks, size: 0, result: meta, source: 'history' };
    renderOutput();
    saveSnapshotSoon();
  } catch (e) {
    showStatusText(`Could not load that result: ${errText(e)}`);
  }
}

// Drops the project's cached command results (worker and client), so the next run executes.
async function clearCache() {
  const id = state.projectId;
  if (!id) return;
  el.clearCacheBtn.disabled = true;
  el.historyStatus.textContent = 'Clearing the cache…';
  try {
    const r = await call((c) => c.clearCache(null, id));
    if (id !== state.projectId) return;
    const n = typeof r?.cleared === 'number' ? r.cleared : null;
    el.historyStatus.textContent = n === null ? 'Cache cleared.' : `Cache cleared (${n} result${n === 1 ? '' : 's'}).`;
  } catch (e) {
    el.historyStatus.textContent = `Could not clear the cache: ${errText(e)}`;
  } finally {
    el.clearCacheBtn.disabled = false;
  }
}

on('render:project', renderHistory);
on('history:render', renderHistory);
on('project:switch', () => { el.historyStatus.textContent = ''; });
on('project:load', (id) => loadHistory(id));
on('project:changed', (id, aspects) => { if (aspects.includes('history')) loadHistory(id); });
on('snapshot:paint', () => { el.history.dataset.source = 'saved'; }); // until the client answers

el.historyRefresh.addEventListener('click', () => loadHistory());
el.clearCacheBtn.addEventListener('click', () => clearCache());
