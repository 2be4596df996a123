// web/js/output.js: the output area (#terminal) and its status line (#run-status): what the
// last command, a history entry or a project setup printed, with ANSI colours (web/ansi.js
// renders into text nodes only; nothing from the network becomes HTML).
//
// The output on screen is `state.output` = {cmd, chunks: [[stream, text]], size, result,
// error, source}; source is 'live', 'setup', 'history' or 'saved' (the page snapshot). A
// producer starts one with startOutput() and writes to it with appendTo(out, …): once another
// output has replaced it, its late chunks are dropped. (An interactive terminal panel, when
// there is one, is a module of its own beside this one.)

import { AnsiRenderer } from '../ansi.js';
import { state, on } from './state.js';
import { $, badge, recordStatus, fmtDuration, fmtTime } from './util.js';

const MAX_OUTPUT_CHARS = 512 * 1024;  // shown; beyond this the page stops appending
const MAX_SAVED_OUTPUT = 64 * 1024;   // kept in the page snapshot

const el = { terminal: $('terminal'), status: $('run-status') };
const term = new AnsiRenderer(el.terminal);

const SUFFIX = { saved: '   (saved output)', history: '   (from history)', setup: '   (project setup)' };

function writePrompt(cmd, source) {
  const line = document.createElement('span');
  line.className = 'prompt-line';
  line.textContent = `$ ${cmd}${SUFFIX[source] ?? ''}\n`;
  el.terminal.append(line);
}

// Replaces what is on screen with a new, empty output for `cmd`, and returns it.
export function startOutput(cmd, source = 'live') {
  const out = { cmd, chunks: [], size: 0, result: null, source };
  state.output = out;
  term.clear();
  writePrompt(cmd, source);
  return out;
}

// Appends a chunk (string or bytes) of `stream` to `out`, if it is still the one on screen.
export function appendTo(out, stream, data) {
  if (!out || state.output !== out) return;
  const text = typeof data === 'string' ? data : (out.decoder ??= new TextDecoder()).decode(data, { stream: true });
  if (!text) return;
  if (out.size >= MAX_OUTPUT_CHARS) return;
  let part = text;
  if (out.size + part.length > MAX_OUTPUT_CHARS) part = part.slice(0, MAX_OUTPUT_CHARS - out.size);
  out.size += part.length;
  const last = out.chunks[out.chunks.length - 1];
  if (last && last[0] === stream) last[1] += part; else out.chunks.push([stream, part]);
  term.write(part, stream === 'stderr' ? 'stderr' : '');
  if (out.size >= MAX_OUTPUT_CHARS) term.write('\n[output truncated in the page]\n', 'notice');
  const t = el.terminal;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 80) t.scrollTop = t.scrollHeight;
}

// Shows `state.output` from scratch (after a project switch, a snapshot paint, a history click).
export function renderOutput() {
  term.clear();
  el.status.textContent = '';
  const o = state.output;
  if (!o) return;
  writePrompt(o.cmd, o.source);
  for (const [stream, text] of o.chunks) term.write(text, stream === 'stderr' ? 'stderr' : '');
  if (o.result) showResult(o.result, o.source);
  else if (o.error) el.status.textContent = `Error: ${o.error}`;
}

// The status line of a finished run: status, exit code, duration and markers.
export function showResult(res, source) {
  el.status.textContent = '';
  const status = recordStatus(res);
  el.status.dataset.status = status;
  el.status.append(badge(status, `status status-${status}`));
  const parts = [];
  if (typeof res.exitCode === 'number') parts.push(`exit ${res.exitCode}`);
  if (typeof res.duration === 'number') parts.push(fmtDuration(res.duration));
  el.status.append(` ${parts.join(' · ')}`);
  if (res.cached) el.status.append(' ', badge('cached', 'cached'));
  if (res.truncated) el.status.append(' ', badge('truncated', 'warn'));
  if (res.sandboxRecreated) el.status.append(' ', badge('new sandbox', 'warn'));
  if (res.sandboxRestored) el.status.append(' ', badge(`files restored from ${fmtTime(res.restoredFrom)}`, 'warn'));
  if (res.stale) el.status.append(' ', badge('offline copy', 'warn'));
  if (source === 'saved') el.status.append(' ', badge('saved', 'muted'));
}

// The status line while something runs: a "running" badge and a hint.
export function showRunning(hint) {
  el.status.dataset.status = 'running';
  el.status.textContent = '';
  el.status.append(badge('running', 'status status-running'), ` ${hint}`);
}

// The status line of a run that did not finish: 'canceled' or 'error' with a message.
export function showFailure(out, kind, msg) {
  if (out) out.error = msg;
  el.status.dataset.status = kind;
  el.status.textContent = '';
  el.status.append(badge(kind, `status status-${kind}`), ` ${kind === 'canceled' ? 'Stopped.' : msg}`);
}

export function showStatusText(text) {
  el.status.textContent = text;
}

// What the page snapshot keeps of an output: the last MAX_SAVED_OUTPUT characters.
export function savedOutput(o) {
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

on('render:project', () => {
  if (!state.projectId) {
    term.clear();
    el.status.textContent = '';
  }
});
