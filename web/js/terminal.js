// web/js/terminal.js: the interactive terminal panel (#shell-panel): a login shell on a PTY in
// the project's sandbox, through the client's openTerminal() (a WebSocket to the worker),
// shown with xterm.js (web/vendor/, installed from npm by scripts/setup).
//
// One terminal at a time, for the selected project. Its size follows the panel (the fit
// addon, on every resize of the window or the panel); a network blip reconnects to the same
// shell (the client does that, by the shell's pid); "Close" leaves the shell running and the
// next "Open terminal" of that project reattaches to it; "End shell" ends it. The panel's
// data-state says where it is: closed, connecting, connected, reconnecting, ended.

import { Terminal } from '../vendor/xterm.mjs';
import { FitAddon } from '../vendor/addon-fit.mjs';
import { state, on, emit } from './state.js';
import { $ } from './util.js';

const el = {
  panel: $('shell-panel'), box: $('shell'), status: $('shell-status'),
  open: $('shell-open'), kill: $('shell-kill'), close: $('shell-close'),
};

let xterm = null, fit = null, session = null, sessionProject = null;
const pids = new Map(); // project -> the pid of its shell, still running after a Close

function setState(s, text) {
  el.panel.dataset.state = s;
  if (text !== undefined) el.status.textContent = text;
  const live = s === 'connecting' || s === 'connected' || s === 'reconnecting';
  el.open.hidden = live;
  el.kill.hidden = !live;
  el.close.hidden = !live;
}

function ensureXterm() {
  if (xterm) return;
  xterm = new Terminal({
    cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
    theme: { background: '#14171f' },
  });
  fit = new FitAddon();
  xterm.loadAddon(fit);
  xterm.open(el.box);
  xterm.onData((d) => session?.write(d));
  xterm.onResize(({ cols, rows }) => {
    el.panel.dataset.cols = cols;
    el.panel.dataset.rows = rows;
    session?.resize(cols, rows);
  });
  new ResizeObserver(() => { if (el.panel.dataset.state !== 'closed') fit.fit(); }).observe(el.box);
}

function open() {
  const project = state.projectId;
  if (!project || !state.client) return;
  setState('connecting', 'Connecting…');
  ensureXterm();
  fit.fit();
  xterm.reset();
  const pid = pids.get(project);
  const dec = new TextDecoder();
  sessionProject = project;
  const t = state.client.openTerminal(project, {
    cols: xterm.cols,
    rows: xterm.rows,
    pid,
    onData: (bytes) => xterm.write(dec.decode(bytes, { stream: true })),
    onReady: (r) => {
      pids.set(project, r.pid);
      setState('connected', `Connected: shell ${r.pid}${r.reattached ? ' (reattached)' : ''}`);
      if (r.reattached) xterm.write('\x1b[2m(reattached; output from while you were away is not shown)\x1b[0m\r\n');
      xterm.focus();
      if (r.sandboxRestored) emit('project:changed', project, ['info', 'files']);
    },
    onExit: (e) => {
      pids.delete(project);
      setState('ended', `The shell ended (${e.status || `exit ${e.exitCode}`}). Open a new one to continue.`);
      emit('project:changed', project, ['files', 'processes']);
    },
    onError: (e) => {
      pids.delete(project);
      setState('ended', `The terminal could not run: ${e.message}`);
    },
    onClose: (c) => {
      if (c.willReconnect) setState('reconnecting', 'Connection lost; reconnecting to the same shell…');
    },
  });
  session = t;
}

function close() {
  session?.close(); // the shell keeps running: the next Open reattaches
  session = null;
  setState('closed', sessionProject && pids.has(sessionProject)
    ? 'Closed; the shell is still running, Open terminal reattaches to it.'
    : 'Closed.');
}

el.open.addEventListener('click', open);
el.close.addEventListener('click', close);
el.kill.addEventListener('click', () => session?.kill());
on('project:switch', () => { if (session) close(); });
on('reset', () => { if (session) close(); pids.clear(); });
