// web/js/run.js: the command box: Enter runs the command, its stdout and stderr stream into
// the output area as they arrive; Esc or Stop cancels it (the request is aborted, which
// cancels the command); ↑/↓ recall earlier commands; "use cache" switches the result cache off.

import { state, on, emit, MAX_CACHE_HITS } from './state.js';
import { $, errText, isAbort, recordStatus } from './util.js';
import { call } from './conn.js';
import { startOutput, appendTo, showResult, showRunning, showFailure } from './output.js';
import { saveSnapshotSoon } from './snapshot.js';

const el = {
  app: $('app'), runForm: $('run-form'), command: $('command'), useCache: $('use-cache'),
  runBtn: $('run-btn'), stopBtn: $('stop-btn'),
};

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
  const out = startOutput(cmd, 'live');
  showRunning('press Esc or Stop to cancel');
  let streamed = false;
  try {
    const res = await call((c) => c.executeCommand(cmd, id, {
      useCache: el.useCache.checked,
      signal: ac.signal,
      // only into this run's output: the user may have switched projects meanwhile
      onStdout: (d) => { streamed = true; appendTo(out, 'stdout', d); },
      onStderr: (d) => { streamed = true; appendTo(out, 'stderr', d); },
    }));
    if (state.output !== out) return;
    if (!streamed) {
      if (res.stdout) appendTo(out, 'stdout', res.stdout);
      if (res.stderr) appendTo(out, 'stderr', res.stderr);
    }
    const { stdout, stderr, ...meta } = res;
    out.result = meta;
    showResult(meta, 'live');
    if (meta.cached) {
      // a cache hit makes no worker record: the history shows the page's own row for it
      state.cacheHits.unshift({ ...meta, op: 'exec', input: { cmd }, status: recordStatus(meta),
        createdAt: Date.now() });
      state.cacheHits.length = Math.min(state.cacheHits.length, MAX_CACHE_HITS);
      emit('history:render');
    }
  } catch (e) {
    if (state.output !== out) return;
    const aborted = isAbort(e, ac.signal);
    showFailure(out, aborted ? 'canceled' : 'error', aborted ? 'canceled' : errText(e));
  } finally {
    if (state.running === ac) state.running = null;
    el.runBtn.disabled = false;
    el.stopBtn.hidden = true;
    el.app.dataset.running = 'false';
    saveSnapshotSoon();
    if (id === state.projectId && state.client) emit('project:changed', id, ['history', 'files', 'info', 'processes']);
  }
}

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

// A reload: the last command is back in the box (Enter runs it again).
on('snapshot:paint', (s) => {
  const cmd = s.perProject?.[s.selected]?.output?.cmd;
  if (cmd && !el.command.value) {
    el.command.value = cmd;
    state.cmdHistory = [cmd];
  }
});

// A project setup suggests how to run what it wrote (unless the box already holds something).
on('command:suggest', (cmd) => {
  if (!el.command.value.trim()) el.command.value = cmd;
});
