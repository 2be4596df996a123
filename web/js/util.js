// web/js/util.js: small helpers shared by the panels: DOM lookup, error classification,
// formatting of times, sizes and durations, status badges.

export const $ = (id) => document.getElementById(id);

export function errText(e) {
  if (!e) return 'unknown error';
  const code = e.code ? ` (${e.code})` : '';
  return `${e.message || String(e)}${code}`;
}

// True when an error means "could not reach the worker" rather than "the worker said no".
export function isNetworkError(e) {
  if (!e) return false;
  if (e.name === 'TypeError' || e.name === 'NetworkError') return true;
  const code = String(e.code ?? '');
  const msg = String(e.message ?? '');
  // The client reports a failed fetch as upstream_error "worker unreachable: …".
  if (/worker unreachable/i.test(msg)) return true;
  return ['network', 'offline', 'unreachable'].includes(code) || (!code && /fetch|network/i.test(msg));
}

export function isAuthError(e) {
  return e && (e.code === 'unauthorized' || e.code === 'forbidden' && /token/i.test(e.message ?? ''));
}

export function isAbort(e, signal) {
  return signal?.aborted || e?.name === 'AbortError' || e?.code === 'canceled';
}

export function asList(res, key) {
  if (Array.isArray(res)) return res;
  if (res && Array.isArray(res[key])) return res[key];
  return [];
}

export function badge(text, cls) {
  const b = document.createElement('span');
  b.className = `badge ${cls}`;
  b.textContent = text;
  return b;
}

export function recordStatus(r) {
  if (r.status) return r.status;
  if (typeof r.exitCode === 'number') return r.exitCode === 0 ? 'success' : 'failed';
  return 'unknown';
}

// Milliseconds since the epoch of a record time (number of ms or s, or an ISO string).
export function toMs(t) {
  if (typeof t === 'number') return t < 1e12 ? t * 1000 : t;
  const v = Date.parse(t ?? '');
  return Number.isNaN(v) ? 0 : v;
}

export function fmtDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function fmtSize(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function fmtTime(t) {
  if (t === undefined || t === null || t === '') return '';
  const d = new Date(typeof t === 'number' && t < 1e12 ? t * 1000 : t);
  if (Number.isNaN(d.getTime())) return String(t);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

// An inline "are you sure" group appended to `parent`: resolves true (yes) or false (no/Esc).
// An abort of `signal` answers false.
export function confirmInline(parent, { label, text, yes = 'Yes', no = 'Cancel', danger = false, signal = null }) {
  parent.querySelector(':scope > .confirm')?.remove();
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const box = document.createElement('div');
    box.className = 'confirm';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', label);
    const msg = document.createElement('span');
    msg.textContent = text;
    const y = document.createElement('button');
    y.type = 'button';
    y.className = danger ? 'danger' : '';
    y.textContent = yes;
    const n = document.createElement('button');
    n.type = 'button';
    n.className = 'quiet';
    n.textContent = no;
    let settled = false;
    const done = (v) => { if (settled) return; settled = true; box.remove(); resolve(v); };
    y.addEventListener('click', () => done(true));
    n.addEventListener('click', () => done(false));
    box.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') done(false); });
    signal?.addEventListener('abort', () => done(false), { once: true });
    box.append(msg, y, n);
    parent.append(box);
    n.focus();
  });
}
