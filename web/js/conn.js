// web/js/conn.js: the connection: the token (fragment, field, sessionStorage), loading the
// wasm client, the pill and the banner, offline detection with automatic retries, and
// call(), through which every panel talks to the client.

import { state, emit, emitAsync } from './state.js';
import { $, errText, isNetworkError, isAuthError, fmtTime } from './util.js';
import { hashToken, readSnapshot } from './snapshot.js';

export const TOKEN_KEY = 'codecanvas.token';

const el = {
  conn: $('conn'), connectForm: $('connect-form'), token: $('token'), connectBtn: $('connect-btn'),
  disconnectBtn: $('disconnect-btn'), banner: $('banner'), bannerText: $('banner-text'), retryBtn: $('retry-btn'),
  app: $('app'),
};

function setPill(kind, text) {
  el.conn.dataset.state = kind;
  el.conn.textContent = text;
  el.app.dataset.online = kind;
}

export function showBanner(kind, text, { retry = false } = {}) {
  el.banner.hidden = false;
  el.banner.dataset.kind = kind;
  el.bannerText.textContent = text;
  el.retryBtn.hidden = !retry;
}

export function hideBanner() {
  el.banner.hidden = true;
  el.bannerText.textContent = '';
}

// The kind of banner on screen ('offline', 'auth', 'error', 'restored'), or null.
export function bannerKind() {
  return el.banner.hidden ? null : el.banner.dataset.kind ?? null;
}

function markOnline() {
  const was = state.online;
  state.online = true;
  state.retryDelay = 1000;
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  setPill('online', 'Connected');
  if (!state.authFailed) hideBanner();
  if (was !== true) emit('online');
}

function markOffline(reason) {
  const wasOffline = state.online === false;
  state.online = false;
  setPill('offline', 'Offline');
  const when = state.snapshot?.savedAt ? ` (saved ${new Date(state.snapshot.savedAt).toLocaleTimeString()})` : '';
  showBanner('offline',
    `Offline: the worker is unreachable${reason ? ` (${reason})` : ''}. Showing cached history and project info${when}. Retrying automatically…`,
    { retry: true });
  scheduleRetry();
  // Going offline: the panels show what the client has cached (marked stale) at once.
  if (!wasOffline) queueMicrotask(() => emit('offline'));
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
    await emitAsync('refresh');
  } catch (e) {
    if (isAuthError(e)) { authFailed(e); return; }
    scheduleRetry();
  }
}

// Runs one client call; classifies failures (offline / wrong token) for the whole page and
// rethrows so the caller can show a local message. Results marked stale mean offline.
export async function call(fn) {
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
      queueMicrotask(() => { if (state.projectId) emit('project:changed', state.projectId, ['info']); });
    }
    if (res && res.stale) { if (state.online !== false) markOffline(); }
    else if (state.online !== true) {
      const wasOffline = state.online === false;
      markOnline();
      if (wasOffline) queueMicrotask(() => emit('refresh')); // back after an outage: reload everything
    }
    return res;
  } catch (e) {
    if (isAuthError(e)) authFailed(e);
    else if (isNetworkError(e)) markOffline();
    throw e;
  }
}

// The hello answer's limits (maxFileBytes, maxFiles, maxBodyBytes, …), when known.
export function serverLimits() {
  return state.client?.server?.limits ?? {};
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
    const client = await CodeCanvas.connect({
      workerUrl: location.origin, token: state.token,
      // when the local cache was last saved (merged with other tabs'): a reload sees it
      onSaved: () => { el.app.dataset.cacheSavedAt = String(Date.now()); },
    });
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

export async function connect(token) {
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
  const saved = await readSnapshot(state.tokenKey);
  if (gen !== state.connGen) return;
  state.snapshot = saved;
  if (saved) emit('snapshot:paint', saved);

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
  await emitAsync('refresh');
  if (!state.authFailed) sessionStorage.setItem(TOKEN_KEY, token);
}

export async function disconnect({ keepBanner = false } = {}) {
  state.connGen++; // a connect still in progress stops at its next step
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  state.running?.abort();
  const c = state.client;
  state.client = null;
  if (c) { try { await c.close(); } catch { /* closing is best effort */ } }
  Object.assign(state, { token: null, tokenKey: null, online: null, projects: [], projectId: null,
    info: null, history: [], cacheHits: [], output: null, lastFile: null, fileDirty: false, projectsLoaded: false,
    snapshot: null });
  state.openDirs.clear();
  el.app.dataset.connected = 'false';
  el.app.dataset.project = '';
  el.connectForm.hidden = false;
  el.connectBtn.disabled = false;
  el.disconnectBtn.hidden = true;
  setPill('idle', 'Not connected');
  if (!keepBanner) hideBanner();
  emit('reset');
}

function authFailed() {
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

el.connectForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = el.token.value.trim();
  if (t) connect(t);
});
el.disconnectBtn.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); disconnect(); el.token.focus(); });
el.retryBtn.addEventListener('click', () => { clearTimeout(state.retryTimer); state.retryTimer = null; state.retryDelay = 1000; probe(); });
window.addEventListener('online', () => { if (state.online === false) probe(); });
window.addEventListener('hashchange', () => {
  const token = takeFragmentToken();
  if (token) connect(token);
});

// Start: token from the fragment, else from this tab's session.
export function boot() {
  const token = takeFragmentToken() ?? sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else el.token.focus();
}
