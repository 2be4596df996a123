// web/js/devserver.js: start a dev server (port and command, default
// `python3 -m http.server <port>`); its preview opens in a new tab without `window.opener`,
// and the link stays on the page.

import { state, on, emit } from './state.js';
import { $, errText } from './util.js';
import { call } from './conn.js';

const el = {
  devForm: $('dev-form'), devPort: $('dev-port'), devCmd: $('dev-cmd'), devBtn: $('dev-btn'),
  devStatus: $('dev-status'), previewLink: $('preview-link'), previewWrap: $('preview-wrap'),
};

let running = null; // {pid, port} of the dev server this page started in this project

function defaultCmd() {
  return `python3 -m http.server ${el.devPort.value || 8000}`;
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
    running = { pid: r.pid, port: r.port ?? port };
    if (win && !win.closed) win.location.href = r.url;
    emit('project:changed', id, ['history', 'info', 'processes']);
  } catch (e) {
    if (win && !win.closed) win.close();
    el.devStatus.textContent = `Could not start the dev server: ${errText(e)}`;
  } finally {
    el.devBtn.disabled = false;
  }
}

on('info:render', (info) => {
  if (info?.port && document.activeElement !== el.devPort) el.devPort.value = info.port;
  el.devCmd.placeholder = defaultCmd();
});
on('project:switch', () => {
  running = null;
  el.previewWrap.hidden = true;
  el.devStatus.textContent = '';
});
// The processes panel stopped the server this panel started.
on('process:stopped', (pid) => {
  if (!running || running.pid !== pid) return;
  running = null;
  el.previewWrap.hidden = true;
  el.devStatus.textContent = `Stopped (pid ${pid}).`;
});
// A project setup offers to start its dev server: fill in the form and start it. This runs
// inside the click that asked for it, so the preview tab may still open.
on('devserver:start', ({ port, cmd }) => {
  el.devPort.value = String(port);
  el.devCmd.value = cmd ?? '';
  el.devCmd.placeholder = defaultCmd();
  startDevServer();
});

el.devPort.addEventListener('input', () => { el.devCmd.placeholder = defaultCmd(); });
el.devForm.addEventListener('submit', (ev) => { ev.preventDefault(); startDevServer(); });
