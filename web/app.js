// web/app.js: the codecanvas page: a small code canvas on top of the wasm client.
//
// Everything the page does goes through the client's public JS API (codecanvas.js, loaded at
// run time from the URL in <meta name="codecanvas-client">); this file holds only page logic:
// connection state, rendering, forms and keyboard handling. Two caches are involved:
//   * the client's own cache (SQLite in IndexedDB): reads of history, records and project info
//     come back marked `stale: true` when the worker is unreachable;
//   * a small page snapshot (IndexedDB database "codecanvas-page"), keyed by a hash of the
//     token, holding what was last on screen (projects, selected project, its info and history,
//     the last command output). It is painted at start before the client or network answer, so
//     a reload shows the last state at once, and it is the fallback when the worker is down.
// Output is rendered by web/ansi.js into text nodes only; nothing from the network becomes HTML.

import { AnsiRenderer } from './ansi.js';

const $ = (id) => document.getElementById(id);
const el = {
  conn: $('conn'), connectForm: $('connect-form'), token: $('token'), connectBtn: $('connect-btn'),
  disconnectBtn: $('disconnect-btn'), banner: $('banner'), bannerText: $('banner-text'), retryBtn: $('retry-btn'),
  app: $('app'),
  projectList: $('project-list'), projectsEmpty: $('projects-empty'), projectsRefresh: $('projects-refresh'),
  newProjectForm: $('new-project-form'), newProject: $('new-project'),
  fileTree: $('file-tree'), filesEmpty: $('files-empty'), filesRefresh: $('files-refresh'),
  fileForm: $('file-form'), filePath: $('file-path'), openBtn: $('open-btn'), saveBtn: $('save-btn'),
  editor: $('editor'), fileStatus: $('file-status'),
  runForm: $('run-form'), command: $('command'), useCache: $('use-cache'), runBtn: $('run-btn'), stopBtn: $('stop-btn'),
  runStatus: $('run-status'), terminal: $('terminal'),
  clearCacheBtn: $('clear-cache-btn'), historyStatus: $('history-status'),
  history: $('history'), historyEmpty: $('history-empty'), historySource: $('history-source'), historyRefresh: $('history-refresh'),
  devForm: $('dev-form'), devPort: $('dev-port'), devCmd: $('dev-cmd'), devBtn: $('dev-btn'),
  devStatus: $('dev-status'), previewLink: $('preview-link'), previewWrap: $('preview-wrap'),
  settingsForm: $('settings-form'), settingsBtn: $('settings-btn'), setName: $('set-name'), setPort: $('set-port'), setJson: $('set-json'),
  settingsStatus: $('settings-status'), projectMeta: $('project-meta'),
};

const TOKEN_KEY = 'codecanvas.token';
const HISTORY_LIMIT = 50;            // records shown
const HISTORY_FETCH = 200;
const MAX_CACHE_HITS = 20;           // cache-served runs remembered per project (page-side)           // records asked for (reads are filtered out before showing)
// Every operation is a record; the ones that only read (the file tree, opening a file) would
// bury the commands, so the history list leaves them out.
const QUIET_OPS = new Set(['listDir', 'readFile', 'listProcesses', 'getHistory', 'getResult', 'getProject', 'listProjects']);
const MAX_OUTPUT_CHARS = 512 * 1024;  // shown in the terminal; beyond this the page stops appending
const MAX_SAVED_OUTPUT = 64 * 1024;   // kept in the page snapshot
const FILE_ROOT = '/home/user'; // the sandbox user's home, where relative paths point

const state = {
  token: null,
  tokenKey: null,
  client: null,
  online: null,          // null = unknown, true, false
  authFailed: false,
  projects: [],
  projectId: null,
  info: null,
  history: [],
  output: null,          // {cmd, chunks: [[stream, text]], size, result, source}
  running: null,         // AbortController of the running command
  retryTimer: null,
  retryDelay: 1000,
  loadSeq: 0,
  cmdHistory: [],
  cmdIndex: -1,
  openDirs: new Set(),
  fileDirty: false,
  lastFile: null,        // the file in the editor, reopened when the project is shown again
  connGen: 0,            // increases on every disconnect; a stale connect() stops
  projectsLoaded: false, // a project list has been received (from the worker or the cache)
  cacheHits: [],         // this project's runs answered from a cache: no worker record exists
};

const term = new AnsiRenderer(el.terminal);

// ---------------------------------------------------------------------------------------------
// Page snapshot (IndexedDB)

const snap = {
  db: null,
  open() {
    if (this.db) return this.db;
    this.db = new Promise((resolve) => {
      let req;
      try { req = indexedDB.open('codecanvas-page', 1); } catch { resolve(null); return; }
      req.onupgradeneeded = () => req.result.createObjectStore('snapshots');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
    });
    return this.db;
  },
  async get(key) {
    const db = await this.open();
    if (!db) return null;
    return new Promise((resolve) => {
      const r = db.transaction('snapshots').objectStore('snapshots').get(key);
      r.onsuccess = () => resolve(r.result ?? null);
      r.onerror = () => resolve(null);
    });
  },
  async put(key, value) {
    const db = await this.open();
    if (!db) return;
    await new Promise((resolve) => {
      const tx = db.transaction('snapshots', 'readwrite');
      tx.objectStore('snapshots').put(value, key);
      tx.oncomplete = tx.onerror = tx.onabort = () => resolve();
    });
  },
};

let snapshotData = null;   // the snapshot object for the current token
let snapshotTimer = null;

function saveSnapshotSoon() {
  if (!state.tokenKey || state.authFailed) return;
  clearTimeout(snapshotTimer);
  snapshotTimer = setTimeout(saveSnapshot, 50);
}

async function saveSnapshot() {
  if (!state.tokenKey || state.authFailed) return;
  const s = snapshotData ?? { v: 1, perProject: {} };
  s.savedAt = Date.now();
  s.projects = state.projects.map((p) => ({ projectId: p.projectId, name: p.name ?? null }));
  s.selected = state.projectId;
  if (state.projectId) {
    const prev = s.perProject[state.projectId] ?? {};
    s.perProject[state.projectId] = {
      info: state.info ?? prev.info ?? null,
      history: state.history.slice(0, HISTORY_LIMIT),
      cacheHits: state.cacheHits.slice(0, MAX_CACHE_HITS),
      lastFile: state.lastFile ?? prev.lastFile ?? null,
      output: state.output ? trimOutput(state.output) : prev.output ?? null,
    };
  }
  const known = new Set(s.projects.map((p) => p.projectId));
  for (const id of Object.keys(s.perProject)) if (!known.has(id)) delete s.perProject[id];
  snapshotData = s;
  await snap.put(state.tokenKey, s);
}

function trimOutput(o) {
  const chunks = [];
  let size = 0;
  for (let i = o.chunks.length - 1; i >= 0 && size < MAX_SAVED_OUTPUT; i--) {
    const [stream, text] = o.chunks[i];
    const part = text.length + size > MAX_SAVED_OUTPUT ? text.slice(-(MAX_SAVED_OUTPUT - size)) : text;
    chunks.unshift([stream, part]);
    size += part.length;
  }
  return { cmd: o.cmd, chunks, size, result: o.result ?? null, error: o.error ?? null };
}

async function hashToken(token) {
  try {
    const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token));
    return Array.from(new Uint8Array(d).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
  } catch {
    let h = 0x811c9dc5; // FNV-1a where SubtleCrypto is unavailable (non-secure origins)
    for (let i = 0; i < token.length; i++) { h ^= token.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return 'fnv' + h.toString(16);
  }
}

// ---------------------------------------------------------------------------------------------
// Connection state

function setPill(kind, text) {
  el.conn.dataset.state = kind;
  el.conn.textContent = text;
  el.app.dataset.online = kind;
}

function showBanner(kind, text, { retry = false } = {}) {
  el.banner.hidden = false;
  el.banner.dataset.kind = kind;
  el.bannerText.textContent = text;
  el.retryBtn.hidden = !retry;
}

function hideBanner() {
  el.banner.hidden = true;
  el.bannerText.textContent = '';
}

function errText(e) {
  if (!e) return 'unknown error';
  const code = e.code ? ` (${e.code})` : '';
  return `${e.message || String(e)}${code}`;
}

// True when an error means "could not reach the worker" rather than "the worker said no".
function isNetworkError(e) {
  if (!e) return false;
  if (e.name === 'TypeError' || e.name === 'NetworkError') return true;
  const code = String(e.code ?? '');
  const msg = String(e.message ?? '');
  // The client reports a failed fetch as upstream_error "worker unreachable: …".
  if (/worker unreachable/i.test(msg)) return true;
  return ['network', 'offline', 'unreachable'].includes(code) || (!code && /fetch|network/i.test(msg));
}

function isAuthError(e) {
  return e && (e.code === 'unauthorized' || e.code === 'forbidden' && /token/i.test(e.message ?? ''));
}

function markOnline() {
  state.online = true;
  state.retryDelay = 1000;
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  setPill('online', 'Connected');
  if (!state.authFailed) hideBanner();
}

function markOffline(reason) {
  const wasOffline = state.online === false;
  state.online = false;
  // Going offline: show the project info the client has cached (marked stale) at once.
  if (!wasOffline && state.client && state.projectId) queueMicrotask(() => loadInfo());
  setPill('offline', 'Offline');
  const when = snapshotData?.savedAt ? ` (saved ${new Date(snapshotData.savedAt).toLocaleTimeString()})` : '';
  showBanner('offline',
    `Offline: the worker is unreachable${reason ? ` (${reason})` : ''}. Showing cached history and project info${when}. Retrying automatically…`,
    { retry: true });
  scheduleRetry();
}

function scheduleRetry() {
  if (state.retryTimer || !state.token || state.authFailed) return;
  state.retryTimer = setTimeout(async () => {
    state.retryTimer = null;
    state.retryDelay = Math.min(state.retryDelay * 1.5, 5000);
    await probe();
  }, state.retryDelay);
}

// Tries to reach the worker again; on success refreshes everything without a reload.
async function probe() {
  if (!state.token || state.authFailed) return;
  try {
    if (!state.client) {
      await openClient();
      if (!state.client) return;
    }
    const res = await state.client.listProjects();
    if (res && res.stale) { scheduleRetry(); return; }
    markOnline();
    await refreshAll();
  } catch (e) {
    if (isAuthError(e)) { authFailed(e); return; }
    scheduleRetry();
  }
}

// Runs one client call; classifies failures (offline / wrong token) for the whole page and
// rethrows so the caller can show a local message. Results marked stale mean offline.
async function call(fn) {
  if (!state.client) {
    const e = new Error('not connected to the worker');
    e.code = 'offline';
    throw e;
  }
  try {
    const res = await fn(state.client);
    if (res && res.sandboxRestored) {
      // the project's sandbox was lost (expired, deleted, the sandbox server restarted): the
      // worker put the files back from its snapshot before running this operation
      showBanner('restored', `Your files were restored from ${fmtTime(res.restoredFrom)}.`);
      queueMicrotask(() => { if (state.projectId) loadInfo(state.projectId); });
    }
    if (res && res.stale) { if (state.online !== false) markOffline(); }
    else if (state.online !== true) {
      const wasOffline = state.online === false;
      markOnline();
      if (wasOffline) queueMicrotask(() => refreshAll()); // back after an outage: reload everything
    }
    return res;
  } catch (e) {
    if (isAuthError(e)) authFailed(e);
    else if (isNetworkError(e)) markOffline();
    throw e;
  }
}

let clientModule = null;

async function loadClientModule() {
  if (clientModule) return clientModule;
  const meta = document.querySelector('meta[name="codecanvas-client"]');
  const url = new URL(meta?.content || 'codecanvas.js', location.href).href;
  const mod = await import(url);
  clientModule = mod.CodeCanvas ?? mod.default?.CodeCanvas ?? mod.default;
  if (!clientModule || typeof clientModule.connect !== 'function')
    throw new Error(`${url} does not export CodeCanvas.connect`);
  return clientModule;
}

// Creates state.client. Leaves it null (and the page offline) when the worker is unreachable.
async function openClient() {
  const gen = state.connGen;
  const CodeCanvas = await loadClientModule();
  try {
    const client = await CodeCanvas.connect({ workerUrl: location.origin, token: state.token });
    if (gen !== state.connGen) { await client.close(); return; } // disconnected meanwhile
    state.client = client;
    // An unreachable worker is not an error for connect: the client starts offline.
    if (state.client.online === false) markOffline();
  } catch (e) {
    if (gen !== state.connGen) return;
    if (isAuthError(e)) { authFailed(e); return; }
    if (isNetworkError(e)) { markOffline(); return; }
    throw e;
  }
}

async function connect(token) {
  await disconnect({ keepBanner: false });
  const tokenKey = await hashToken(token);
  state.token = token;
  state.tokenKey = tokenKey;
  state.authFailed = false;
  setPill('connecting', 'Connecting…');
  el.connectBtn.disabled = true;
  el.disconnectBtn.hidden = false;
  el.connectForm.hidden = true;
  el.app.dataset.connected = 'true';

  const gen = state.connGen;

  // 1. paint the last state saved for this token, before any network answer
  const saved = await snap.get(state.tokenKey);
  if (gen !== state.connGen) return;
  snapshotData = saved;
  if (snapshotData) paintSnapshot(snapshotData);

  // 2. the client, then fresh data
  try {
    await openClient();
    if (gen !== state.connGen) return;
  } catch (e) {
    if (gen !== state.connGen) return;
    setPill('error', 'Error');
    showBanner('error', `Could not load the codecanvas client: ${errText(e)}`);
    el.connectBtn.disabled = false;
    return;
  }
  el.connectBtn.disabled = false;
  if (state.authFailed || !state.client) return;
  await refreshAll();
  if (!state.authFailed) sessionStorage.setItem(TOKEN_KEY, token);
}

async function disconnect({ keepBanner = false } = {}) {
  state.connGen++; // a connect still in progress stops at its next step
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  state.running?.abort();
  const c = state.client;
  state.client = null;
  if (c) { try { await c.close(); } catch { /* closing is best effort */ } }
  Object.assign(state, { token: null, tokenKey: null, online: null, projects: [], projectId: null,
    info: null, history: [], cacheHits: [], output: null, lastFile: null, fileDirty: false, projectsLoaded: false });
  snapshotData = null;
  el.editor.value = '';
  el.filePath.value = 'main.py';
  state.openDirs.clear();
  el.app.dataset.connected = 'false';
  el.app.dataset.project = '';
  el.connectForm.hidden = false;
  el.connectBtn.disabled = false;
  el.disconnectBtn.hidden = true;
  setPill('idle', 'Not connected');
  if (!keepBanner) hideBanner();
  renderProjects();
  renderProject();
}

function authFailed(e) {
  if (state.authFailed) return;
  state.authFailed = true;
  sessionStorage.removeItem(TOKEN_KEY);
  const msg = 'The worker rejected this token. Check the token that scripts/run printed '
    + '(the part after #token= in its link) and try again.';
  disconnect({ keepBanner: true }).then(() => {
    setPill('error', 'Wrong token');
    showBanner('auth', msg);
    el.token.value = '';
    el.token.focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Loading data

async function refreshAll() {
  const seq = ++state.loadSeq;
  await loadProjects();
  if (seq !== state.loadSeq || !state.client) return;
  if (state.projectId && !state.projects.some((p) => p.projectId === state.projectId)
      && state.online) {
    state.projectId = null;
  }
  if (!state.projectId && state.projects.length) state.projectId = state.projects[0].projectId;
  renderProjects();
  await loadProject();
}

function asList(res, key) {
  if (Array.isArray(res)) return res;
  if (res && Array.isArray(res[key])) return res[key];
  return [];
}

async function loadProjects() {
  el.projectList.setAttribute('aria-busy', 'true');
  try {
    const res = await call((c) => c.listProjects());
    state.projects = asList(res, 'projects');
    state.projectsLoaded = true;
    if (!el.banner.hidden && el.banner.dataset.kind === 'error' && !res?.stale) hideBanner(); // earlier failure is over
    renderProjects();
    saveSnapshotSoon();
  } catch (e) {
    if (!isNetworkError(e) && !isAuthError(e)) showBanner('error', `Could not list projects: ${errText(e)}`);
  } finally {
    el.projectList.setAttribute('aria-busy', 'false');
  }
}

async function loadProject() {
  const id = state.projectId;
  renderProject();
  if (!id) return;
  const reopen = !state.fileDirty && !el.editor.value && state.lastFile;
  await Promise.all([loadInfo(id), loadHistory(id), loadFiles(id),
    reopen ? openFile(state.lastFile, { quiet: true }) : null]);
}

async function loadInfo(id = state.projectId) {
  try {
    const info = await call((c) => c.getProjectInfo(id));
    if (id !== state.projectId) return;
    state.info = info;
    renderInfo();
    saveSnapshotSoon();
  } catch (e) {
    if (id === state.projectId && !isNetworkError(e) && !isAuthError(e)) {
      el.settingsStatus.textContent = `Could not load project info: ${errText(e)}`;
    }
  }
}

async function loadHistory(id = state.projectId) {
  el.history.setAttribute('aria-busy', 'true');
  try {
    const res = await call((c) => c.getExecutionHistory(id, HISTORY_FETCH));
    if (id !== state.projectId) return;
    state.history = asList(res, 'items').filter((r) => !QUIET_OPS.has(r.op)).slice(0, HISTORY_LIMIT);
    // stale: answered from the client's IndexedDB cache because the worker is unreachable
    el.history.dataset.source = res?.stale ? 'cache' : 'worker';
    el.historySource.hidden = !res?.stale;
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

async function listDir(path, id) {
  const res = await call((c) => c.listFiles(path, id));
  return asList(res, 'entries').slice().sort((a, b) =>
    (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || String(a.name).localeCompare(String(b.name)));
}

async function loadFiles(id = state.projectId) {
  el.fileTree.setAttribute('aria-busy', 'true');
  if (!el.fileTree.childElementCount) {
    el.filesEmpty.hidden = false;
    el.filesEmpty.textContent = 'Loading files…';
  }
  try {
    const entries = await listDir(FILE_ROOT, id);
    if (id !== state.projectId) return;
    el.fileTree.textContent = '';
    await renderEntries(el.fileTree, entries, id, 1);
    el.filesEmpty.hidden = entries.length > 0;
    el.filesEmpty.textContent = 'No files yet.';
  } catch (e) {
    if (id !== state.projectId) return;
    if (!el.fileTree.childElementCount) {
      el.filesEmpty.hidden = false;
      el.filesEmpty.textContent = isNetworkError(e) ? 'Files are not available offline.' : `Could not list files: ${errText(e)}`;
    }
  } finally {
    el.fileTree.setAttribute('aria-busy', 'false');
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function paintSnapshot(s) {
  state.projects = s.projects ?? [];
  state.projectsLoaded = true;
  state.projectId = s.selected ?? null;
  const p = state.projectId ? s.perProject?.[state.projectId] : null;
  state.info = p?.info ?? null;
  state.history = p?.history ?? [];
  state.cacheHits = p?.cacheHits ?? [];
  el.history.dataset.source = 'saved'; // the page's snapshot, until the client answers
  state.lastFile = p?.lastFile ?? null;
  if (state.lastFile) el.filePath.value = state.lastFile;
  state.output = p?.output ? { ...p.output, chunks: p.output.chunks.slice(), source: 'saved' } : null;
  if (state.output?.cmd && !el.command.value) {
    el.command.value = state.output.cmd; // Enter runs it again
    state.cmdHistory = [state.output.cmd];
  }
  renderProjects();
  renderProject();
  renderOutput();
}

function renderProjects() {
  el.projectList.textContent = '';
  for (const p of state.projects) {
    const li = document.createElement('li');
    li.className = 'project-item';
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'project-btn';
    btn.dataset.project = p.projectId;
    btn.textContent = p.name && p.name !== p.projectId ? `${p.name}` : p.projectId;
    if (p.name && p.name !== p.projectId) {
      const small = document.createElement('small');
      small.textContent = p.projectId;
      btn.append(' ', small);
    }
    if (p.projectId === state.projectId) btn.setAttribute('aria-current', 'true');
    btn.addEventListener('click', () => selectProject(p.projectId));
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'quiet icon del-btn';
    del.textContent = '✕';
    del.setAttribute('aria-label', `Delete project ${p.projectId}`);
    del.title = 'Delete project';
    del.addEventListener('click', () => askDelete(li, p.projectId));
    li.append(btn, del);
    el.projectList.append(li);
  }
  el.projectsEmpty.hidden = state.projects.length > 0 || el.app.dataset.connected !== 'true';
  el.projectsEmpty.textContent = state.projectsLoaded ? 'No projects yet. Create one below.'
    : state.online === false ? 'No saved projects to show offline.' : 'Loading projects…';
}

function askDelete(li, id) {
  if (li.querySelector('.confirm')) return;
  const box = document.createElement('div');
  box.className = 'confirm';
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', `Confirm deleting ${id}`);
  const text = document.createElement('span');
  text.textContent = `Delete “${id}”, its sandbox and history?`;
  const yes = document.createElement('button');
  yes.type = 'button';
  yes.className = 'danger';
  yes.textContent = 'Delete';
  const no = document.createElement('button');
  no.type = 'button';
  no.className = 'quiet';
  no.textContent = 'Cancel';
  no.addEventListener('click', () => box.remove());
  box.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') box.remove(); });
  yes.addEventListener('click', async () => {
    yes.disabled = no.disabled = true;
    text.textContent = `Deleting ${id}…`;
    try {
      await call((c) => c.deleteProject(id));
      if (state.projectId === id) { state.projectId = null; state.info = null; state.history = []; state.cacheHits = []; state.output = null; }
      await refreshAll();
      renderOutput();
    } catch (e) {
      text.textContent = `Could not delete: ${errText(e)}`;
      yes.disabled = no.disabled = false;
    }
  });
  box.append(text, yes, no);
  li.append(box);
  no.focus();
}

function renderProject() {
  el.app.dataset.project = state.projectId ?? '';
  const p = state.projects.find((x) => x.projectId === state.projectId);
  document.title = state.projectId ? `${p?.name || state.projectId} · codecanvas` : 'codecanvas';
  renderInfo();
  renderHistory();
  if (!state.projectId) {
    el.fileTree.textContent = '';
    term.clear();
    el.runStatus.textContent = '';
  }
}

function renderInfo() {
  const info = state.info;
  if (document.activeElement?.closest?.('#settings-form') == null) {
    el.setName.value = info?.name ?? '';
    el.setPort.value = info?.port ?? '';
    el.setJson.value = info?.settings && Object.keys(info.settings).length
      ? JSON.stringify(info.settings, null, 2) : '';
  }
  if (info?.port && document.activeElement !== el.devPort) el.devPort.value = info.port;
  el.devCmd.placeholder = `python3 -m http.server ${el.devPort.value || 8000}`;
  el.projectMeta.textContent = '';
  if (!info) return;
  const sb = info.sandbox;
  const snap = info.snapshot;
  const rows = [
    ['Project', info.projectId],
    ['Sandbox', info.sandboxId || 'not created yet'],
    ['State', sb ? sb.state + (sb.internet === false ? ` · no internet (${sb.internetReason ?? 'unavailable'})` : '') : ''],
    ['Files kept', snap ? `${fmtTime(snap.takenAt)} · ${fmtSize(snap.bytes)}` +
      (snap.partial ? ` · partial, left out: ${(snap.excluded ?? []).join(', ')}` : '') : ''],
    ['Created', fmtTime(info.createdAt)],
    ['Updated', fmtTime(info.updatedAt)],
  ];
  if (info.stale) rows.push(['Source', 'cached (offline)']);
  for (const [k, v] of rows) {
    if (!v) continue;
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    el.projectMeta.append(dt, dd);
  }
}

function recordCommand(r) {
  const inp = r.input;
  if (typeof inp === 'string') return inp;
  if (inp && typeof inp === 'object') return inp.cmd ?? inp.command ?? inp.path ?? (inp.port ? `dev server :${inp.port}` : r.op);
  return r.cmd ?? r.command ?? r.op ?? '?';
}

function recordStatus(r) {
  if (r.status) return r.status;
  if (typeof r.exitCode === 'number') return r.exitCode === 0 ? 'success' : 'failed';
  return 'unknown';
}

function badge(text, cls) {
  const b = document.createElement('span');
  b.className = `badge ${cls}`;
  b.textContent = text;
  return b;
}

// Milliseconds since the epoch of a record time (number of ms or s, or an ISO string).
function toMs(t) {
  if (typeof t === 'number') return t < 1e12 ? t * 1000 : t;
  const v = Date.parse(t ?? '');
  return Number.isNaN(v) ? 0 : v;
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

async function renderEntries(ul, entries, id, level) {
  for (const ent of entries) {
    const li = document.createElement('li');
    li.setAttribute('role', 'treeitem');
    li.setAttribute('aria-level', String(level));
    const isDir = ent.type === 'dir' || ent.type === 'directory';
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = isDir ? 'tree-dir' : 'tree-file';
    btn.dataset.path = ent.path ?? ent.name;
    btn.textContent = `${isDir ? '▸ ' : ''}${ent.name}`;
    li.append(btn);
    if (isDir) {
      li.setAttribute('aria-expanded', 'false');
      const sub = document.createElement('ul');
      sub.setAttribute('role', 'group');
      li.append(sub);
      const toggle = async () => {
        const open = li.getAttribute('aria-expanded') === 'true';
        if (open) {
          li.setAttribute('aria-expanded', 'false');
          btn.textContent = `▸ ${ent.name}`;
          sub.textContent = '';
          state.openDirs.delete(btn.dataset.path);
          return;
        }
        li.setAttribute('aria-expanded', 'true');
        btn.textContent = `▾ ${ent.name}`;
        state.openDirs.add(btn.dataset.path);
        try {
          const kids = await listDir(btn.dataset.path, id);
          sub.textContent = '';
          await renderEntries(sub, kids, id, level + 1);
        } catch (e) {
          sub.textContent = '';
          const err = document.createElement('li');
          err.className = 'hint';
          err.textContent = `Could not list: ${errText(e)}`;
          sub.append(err);
        }
      };
      btn.addEventListener('click', toggle);
      if (state.openDirs.has(btn.dataset.path)) { state.openDirs.delete(btn.dataset.path); await toggle(); }
    } else {
      btn.addEventListener('click', () => openFile(btn.dataset.path));
    }
    ul.append(li);
  }
}

function renderOutput() {
  term.clear();
  el.runStatus.textContent = '';
  const o = state.output;
  if (!o) return;
  writePrompt(o.cmd, o.source);
  for (const [stream, text] of o.chunks) term.write(text, stream === 'stderr' ? 'stderr' : '');
  if (o.result) showResult(o.result, o.source);
  else if (o.error) el.runStatus.textContent = `Error: ${o.error}`;
}

function writePrompt(cmd, source) {
  const line = document.createElement('span');
  line.className = 'prompt-line';
  line.textContent = `$ ${cmd}${source === 'saved' ? '   (saved output)' : source === 'history' ? '   (from history)' : ''}\n`;
  el.terminal.append(line);
}

function showResult(res, source) {
  el.runStatus.textContent = '';
  const status = recordStatus(res);
  el.runStatus.dataset.status = status;
  el.runStatus.append(badge(status, `status status-${status}`));
  const parts = [];
  if (typeof res.exitCode === 'number') parts.push(`exit ${res.exitCode}`);
  if (typeof res.duration === 'number') parts.push(fmtDuration(res.duration));
  el.runStatus.append(` ${parts.join(' · ')}`);
  if (res.cached) el.runStatus.append(' ', badge('cached', 'cached'));
  if (res.truncated) el.runStatus.append(' ', badge('truncated', 'warn'));
  if (res.sandboxRecreated) el.runStatus.append(' ', badge('new sandbox', 'warn'));
  if (res.sandboxRestored) el.runStatus.append(' ', badge(`files restored from ${fmtTime(res.restoredFrom)}`, 'warn'));
  if (res.stale) el.runStatus.append(' ', badge('offline copy', 'warn'));
  if (source === 'saved') el.runStatus.append(' ', badge('saved', 'muted'));
}

function fmtDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function fmtSize(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function fmtTime(t) {
  if (t === undefined || t === null || t === '') return '';
  const d = new Date(typeof t === 'number' && t < 1e12 ? t * 1000 : t);
  if (Number.isNaN(d.getTime())) return String(t);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

// ---------------------------------------------------------------------------------------------
// Actions

async function selectProject(id) {
  if (id === state.projectId) return;
  state.projectId = id;
  const saved = snapshotData?.perProject?.[id];
  state.info = saved?.info ?? null;
  state.history = saved?.history ?? [];
  state.cacheHits = saved?.cacheHits ?? [];
  state.output = saved?.output ? { ...saved.output, source: 'saved' } : null;
  state.lastFile = saved?.lastFile ?? null;
  state.fileDirty = false;
  el.editor.value = '';
  el.editor.readOnly = false;
  el.filePath.value = state.lastFile ?? 'main.py';
  state.openDirs.clear();
  el.fileTree.textContent = '';
  el.previewWrap.hidden = true;
  el.devStatus.textContent = '';
  el.fileStatus.textContent = '';
  el.historyStatus.textContent = '';
  el.settingsStatus.textContent = '';
  renderProjects();
  renderProject();
  renderOutput();
  saveSnapshotSoon();
  await loadProject();
}

async function createProject(id) {
  try {
    await call((c) => c.updateProjectInfo(id, { name: id }));
    el.newProject.value = '';
    await loadProjects();
    await selectProject(id);
  } catch (e) {
    showBanner('error', `Could not create project ${id}: ${errText(e)}`);
  }
}

// Opens `path` in the editor. quiet: a reopen at start; a failure (e.g. offline) says nothing.
async function openFile(path, { quiet = false } = {}) {
  if (!state.projectId || !path) return;
  el.filePath.value = path;
  if (!quiet) el.fileStatus.textContent = `Opening ${path}…`;
  try {
    const r = await call((c) => c.readFile(path, state.projectId));
    let content = typeof r === 'string' ? r : r?.content ?? '';
    const binary = r && typeof r === 'object' && r.encoding === 'base64';
    el.editor.readOnly = binary;
    if (binary) content = `(binary file, ${r.size ?? '?'} bytes; not editable here)`;
    el.editor.value = content;
    state.fileDirty = false;
    state.lastFile = path;
    saveSnapshotSoon();
    el.fileStatus.textContent = `${path}${binary ? ' (binary, read-only)' : ''}`;
  } catch (e) {
    if (!quiet) el.fileStatus.textContent = `Could not open ${path}: ${errText(e)}`;
  }
}

async function saveFile() {
  const path = el.filePath.value.trim();
  if (!state.projectId || !path || el.editor.readOnly) return;
  el.saveBtn.disabled = true;
  el.fileStatus.textContent = `Saving ${path}…`;
  try {
    await call((c) => c.writeFile(path, el.editor.value, state.projectId));
    state.fileDirty = false;
    el.fileStatus.textContent = `Saved ${path}`;
    state.lastFile = path;
    saveSnapshotSoon();
    loadFiles();
    loadHistory();
  } catch (e) {
    el.fileStatus.textContent = `Could not save ${path}: ${errText(e)}`;
  } finally {
    el.saveBtn.disabled = false;
  }
}

function appendOutput(stream, data) {
  const o = state.output;
  if (!o) return;
  const text = typeof data === 'string' ? data : (o.decoder ??= new TextDecoder()).decode(data, { stream: true });
  if (!text) return;
  if (o.size >= MAX_OUTPUT_CHARS) return;
  let part = text;
  if (o.size + part.length > MAX_OUTPUT_CHARS) part = part.slice(0, MAX_OUTPUT_CHARS - o.size);
  o.size += part.length;
  const last = o.chunks[o.chunks.length - 1];
  if (last && last[0] === stream) last[1] += part; else o.chunks.push([stream, part]);
  term.write(part, stream === 'stderr' ? 'stderr' : '');
  if (o.size >= MAX_OUTPUT_CHARS) term.write('\n[output truncated in the page]\n', 'notice');
  const t = el.terminal;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 80) t.scrollTop = t.scrollHeight;
}

async function runCommand() {
  const cmd = el.command.value.trim();
  const id = state.projectId;
  if (!cmd || !id || state.running) return;
  if (state.cmdHistory[0] !== cmd) state.cmdHistory.unshift(cmd);
  state.cmdHistory.length = Math.min(state.cmdHistory.length, 100);
  state.cmdIndex = -1;
  const ac = new AbortController();
  state.running = ac;
  el.runBtn.disabled = true;
  el.stopBtn.hidden = false;
  el.app.dataset.running = 'true';
  const out = { cmd, chunks: [], size: 0, result: null, source: 'live' };
  state.output = out;
  term.clear();
  writePrompt(cmd, 'live');
  el.runStatus.dataset.status = 'running';
  el.runStatus.textContent = '';
  el.runStatus.append(badge('running', 'status status-running'), ' press Esc or Stop to cancel');
  let streamed = false;
  try {
    const res = await call((c) => c.executeCommand(cmd, id, {
      useCache: el.useCache.checked,
      signal: ac.signal,
      // only into this run's output: the user may have switched projects meanwhile
      onStdout: (d) => { streamed = true; if (state.output === out) appendOutput('stdout', d); },
      onStderr: (d) => { streamed = true; if (state.output === out) appendOutput('stderr', d); },
    }));
    if (state.output !== out) return;
    if (!streamed) {
      if (res.stdout) appendOutput('stdout', res.stdout);
      if (res.stderr) appendOutput('stderr', res.stderr);
    }
    const { stdout, stderr, ...meta } = res;
    out.result = meta;
    showResult(meta, 'live');
    if (meta.cached) {
      state.cacheHits.unshift({ ...meta, op: 'exec', input: { cmd }, status: recordStatus(meta),
        createdAt: Date.now() });
      state.cacheHits.length = Math.min(state.cacheHits.length, MAX_CACHE_HITS);
      renderHistory();
    }
  } catch (e) {
    if (state.output !== out) return;
    const aborted = ac.signal.aborted || e?.name === 'AbortError' || e?.code === 'canceled';
    const msg = aborted ? 'canceled' : errText(e);
    out.error = msg;
    el.runStatus.dataset.status = aborted ? 'canceled' : 'error';
    el.runStatus.textContent = '';
    el.runStatus.append(badge(aborted ? 'canceled' : 'error', `status status-${aborted ? 'canceled' : 'error'}`),
      ` ${aborted ? 'Stopped.' : msg}`);
  } finally {
    if (state.running === ac) state.running = null;
    el.runBtn.disabled = false;
    el.stopBtn.hidden = true;
    el.app.dataset.running = 'false';
    saveSnapshotSoon();
    if (id === state.projectId && state.client) {
      loadHistory(id);
      loadFiles(id);
      loadInfo(id);
    }
  }
}

async function showRecord(execId) {
  if (!execId) return;
  el.runStatus.textContent = 'Loading…';
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
    el.runStatus.textContent = `Could not load that result: ${errText(e)}`;
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

// JSON merge patch (RFC 7386) turning `from` into `to`.
function mergeDiff(from, to) {
  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);
  const patch = {};
  for (const k of Object.keys(from ?? {})) if (!(k in to)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) {
    const old = from?.[k];
    if (isObj(v) && isObj(old)) {
      const sub = mergeDiff(old, v);
      if (Object.keys(sub).length) patch[k] = sub;
    } else if (JSON.stringify(v) !== JSON.stringify(old)) {
      patch[k] = v;
    }
  }
  return patch;
}

async function saveSettings() {
  const id = state.projectId;
  if (!id) return;
  let settings = {};
  const raw = el.setJson.value.trim();
  if (raw) {
    try { settings = JSON.parse(raw); } catch (e) {
      el.settingsStatus.textContent = `Settings must be a JSON object: ${e.message}`;
      el.setJson.setAttribute('aria-invalid', 'true');
      el.setJson.focus();
      return;
    }
    if (!settings || typeof settings !== 'object' || Array.isArray(settings)) {
      el.settingsStatus.textContent = 'Settings must be a JSON object, e.g. {"framework": "vite"}.';
      el.setJson.setAttribute('aria-invalid', 'true');
      el.setJson.focus();
      return;
    }
  }
  el.setJson.removeAttribute('aria-invalid');
  const port = el.setPort.value === '' ? null : Number(el.setPort.value);
  const patch = { name: el.setName.value.trim() || null, port };
  const sp = mergeDiff(state.info?.settings ?? {}, settings);
  if (Object.keys(sp).length) patch.settings = sp;
  el.settingsBtn.disabled = true;
  el.settingsStatus.textContent = 'Saving…';
  try {
    const info = await call((c) => c.updateProjectInfo(id, patch));
    if (id !== state.projectId) return;
    state.info = info && typeof info === 'object' && 'projectId' in info ? info : await call((c) => c.getProjectInfo(id));
    document.activeElement?.blur?.();
    renderInfo();
    el.settingsStatus.textContent = 'Saved.';
    const p = state.projects.find((x) => x.projectId === id);
    if (p) { p.name = state.info.name; renderProjects(); }
    saveSnapshotSoon();
  } catch (e) {
    el.settingsStatus.textContent = `Could not save: ${errText(e)}`;
  } finally {
    el.settingsBtn.disabled = false;
  }
}

async function startDevServer() {
  const id = state.projectId;
  const port = Number(el.devPort.value);
  if (!id || !(port >= 1 && port <= 65535)) return;
  const cmd = el.devCmd.value.trim() || `python3 -m http.server ${port}`;
  // Open the tab now, while the click still counts as a user gesture; point it at the preview
  // once the server is up. The preview is sandbox content: it must not control this page.
  let win = null;
  try { win = window.open('', '_blank'); if (win) win.opener = null; } catch { win = null; }
  el.devBtn.disabled = true;
  el.previewWrap.hidden = true;
  el.devStatus.textContent = `Starting “${cmd}” on port ${port}…`;
  try {
    const r = await call((c) => c.startDevServer(port, id, { cmd }));
    let scheme = '';
    try { scheme = new URL(r?.url).protocol; } catch { /* not a URL */ }
    if (scheme !== 'http:' && scheme !== 'https:')
      throw Object.assign(new Error('the worker returned no usable preview URL'), { code: 'internal' });
    el.previewLink.href = r.url;
    el.previewLink.textContent = `Open preview: ${r.url}`;
    el.previewWrap.hidden = false;
    el.devStatus.textContent = r.started === false
      ? `Started (pid ${r.pid ?? '?'}), not answering yet; the preview may need a reload.`
      : `Running on port ${r.port ?? port}${r.pid ? ` (pid ${r.pid})` : ''}.`;
    if (win && !win.closed) win.location.href = r.url;
    loadHistory(id);
    loadInfo(id);
  } catch (e) {
    if (win && !win.closed) win.close();
    el.devStatus.textContent = `Could not start the dev server: ${errText(e)}`;
  } finally {
    el.devBtn.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

el.connectForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = el.token.value.trim();
  if (t) connect(t);
});
el.disconnectBtn.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); disconnect(); el.token.focus(); });
el.retryBtn.addEventListener('click', () => { clearTimeout(state.retryTimer); state.retryTimer = null; state.retryDelay = 1000; probe(); });
el.projectsRefresh.addEventListener('click', () => refreshAll());
el.filesRefresh.addEventListener('click', () => loadFiles());
el.historyRefresh.addEventListener('click', () => loadHistory());
el.clearCacheBtn.addEventListener('click', () => clearCache());
el.newProjectForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = el.newProject.value.trim();
  if (id && el.newProject.checkValidity()) createProject(id);
});
el.fileForm.addEventListener('submit', (ev) => { ev.preventDefault(); saveFile(); });
el.openBtn.addEventListener('click', () => openFile(el.filePath.value.trim()));
el.filePath.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.altKey)) { ev.preventDefault(); openFile(el.filePath.value.trim()); }
});
el.editor.addEventListener('keydown', (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 's') { ev.preventDefault(); saveFile(); }
});
el.editor.addEventListener('input', () => {
  if (!state.fileDirty) { state.fileDirty = true; el.fileStatus.textContent = `${el.filePath.value} (unsaved, Ctrl+S saves)`; }
});
el.runForm.addEventListener('submit', (ev) => { ev.preventDefault(); runCommand(); });
el.stopBtn.addEventListener('click', () => state.running?.abort());
el.command.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && state.running) { ev.preventDefault(); state.running.abort(); return; }
  if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
    if (!state.cmdHistory.length) return;
    ev.preventDefault();
    state.cmdIndex = Math.max(-1, Math.min(state.cmdHistory.length - 1, state.cmdIndex + (ev.key === 'ArrowUp' ? 1 : -1)));
    el.command.value = state.cmdIndex < 0 ? '' : state.cmdHistory[state.cmdIndex];
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && state.running && document.activeElement !== el.command) state.running.abort();
});
el.devPort.addEventListener('input', () => { el.devCmd.placeholder = `python3 -m http.server ${el.devPort.value || 8000}`; });
el.devForm.addEventListener('submit', (ev) => { ev.preventDefault(); startDevServer(); });
el.settingsForm.addEventListener('submit', (ev) => { ev.preventDefault(); saveSettings(); });
window.addEventListener('online', () => { if (state.online === false) probe(); });

// The token from the link scripts/run printed (#token=…); removed from the address bar at once.
function takeFragmentToken() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const token = frag.get('token');
  if (!token) return null;
  frag.delete('token');
  const rest = frag.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  return token;
}

window.addEventListener('hashchange', () => {
  const token = takeFragmentToken();
  if (token) connect(token);
});

// Start: token from the fragment, else from this tab's session.
(function boot() {
  const token = takeFragmentToken() ?? sessionStorage.getItem(TOKEN_KEY);
  renderProjects();
  if (token) connect(token);
  else el.token.focus();
})();
