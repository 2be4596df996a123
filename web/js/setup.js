// web/js/setup.js: bringing a project in. Drop files or a folder anywhere on the page (or
// pick them with "Add files…" / "Add folder…"), or apply a template (web/js/templates.js).
// Everything goes through setupProject: files as text (UTF-8) or, when they are not valid
// UTF-8 or hold a NUL, as bytes (the client sends those as base64), in batches under the
// worker's request limits; a template's install command runs with the last batch and its
// output streams into the output area. A template with a dev server then offers to start it.

import { state, on, emit, FILE_ROOT } from './state.js';
import { $, errText, isAbort, asList, fmtSize, confirmInline } from './util.js';
import { call, serverLimits } from './conn.js';
import { startOutput, appendTo, showResult, showRunning, showFailure } from './output.js';
import { saveSnapshotSoon } from './snapshot.js';
import { TEMPLATES } from './templates.js';

// Directories not uploaded: the package managers' caches and VCS data are large and rebuilt
// inside the sandbox.
const SKIP_DIRS = new Set(['.git', 'node_modules', '.venv', '__pycache__', '.DS_Store']);
const MAX_UPLOAD_FILES = 5000;
const MAX_UPLOAD_BYTES = 128 << 20;

const el = {
  app: $('app'), panel: $('setup-panel'), templateForm: $('template-form'), template: $('template'),
  templateBtn: $('template-btn'), files: $('upload-files'), folder: $('upload-folder'),
  status: $('setup-status'), cancel: $('setup-cancel'), offer: $('setup-offer'), offerText: $('setup-offer-text'),
  offerBtn: $('setup-dev-btn'), overlay: $('drop-overlay'), overlayText: $('drop-overlay-text'),
};

let busy = null;        // AbortController of the setup in progress
let confirming = false; // it is waiting for the overwrite question

function setStatus(text, kind = '') {
  el.status.textContent = text;
  el.status.dataset.kind = kind;
}

function setBusy(ac) {
  busy = ac;
  state.settingUp = !!ac;
  el.templateBtn.disabled = el.files.disabled = el.folder.disabled = !!ac;
  el.panel.setAttribute('aria-busy', ac ? 'true' : 'false');
}

// ---------------------------------------------------------------------------------------------
// Reading what was dropped or picked

// A file's content for setupProject: a string when it is UTF-8 text, else its bytes.
async function readContent(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.includes(0)) return bytes;
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return bytes;
  }
}

// The entries of a drop, taken synchronously (the DataTransfer is emptied once the drop
// event is over): FileSystemEntry objects where the browser has them (they can be folders),
// else plain files.
function dropRoots(dt) {
  const roots = [];
  for (const item of dt?.items ?? []) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) { roots.push({ entry }); continue; }
    const file = item.getAsFile?.();
    if (file) roots.push({ file, path: file.name });
  }
  if (!roots.length) for (const file of dt?.files ?? []) roots.push({ file, path: file.name });
  return roots;
}

function entryFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

function readDir(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

// Walks a FileSystemEntry: files into `out` as {path, file}; skipped directories into `skipped`.
async function walk(entry, out, skipped) {
  const path = String(entry.fullPath || entry.name).replace(/^\/+/, '');
  if (entry.isFile) {
    out.push({ path, file: await entryFile(entry) });
  } else if (entry.isDirectory) {
    if (SKIP_DIRS.has(entry.name)) { skipped.push(`${path}/`); return; }
    const reader = entry.createReader();
    for (;;) {
      const batch = await readDir(reader); // at most 100 entries per call in Chromium
      if (!batch.length) break;
      for (const e of batch) await walk(e, out, skipped);
      if (out.length > MAX_UPLOAD_FILES) return;
    }
  }
}

// Files picked with an <input type=file> (webkitRelativePath holds the folder for a folder).
function pickedFiles(input, skipped) {
  const out = [];
  for (const file of input.files ?? []) {
    const path = file.webkitRelativePath || file.name;
    const parts = path.split('/');
    const skip = parts.slice(0, -1).findIndex((p) => SKIP_DIRS.has(p));
    if (skip >= 0) {
      const dir = `${parts.slice(0, skip + 1).join('/')}/`;
      if (!skipped.includes(dir)) skipped.push(dir);
      continue;
    }
    out.push({ path, file });
  }
  return out;
}

function describe(list) {
  const tops = [...new Set(list.map((f) => f.path.split('/')[0]))];
  if (tops.length === 1 && list.length > 1) return `folder ${tops[0]}`;
  return list.length === 1 ? list[0].path : `${list.length} files`;
}

// Reads the picked or dropped files and writes them into the project.
async function addFiles(list, skipped) {
  if (!state.projectId) { setStatus('Select or create a project first.', 'error'); return; }
  if (!list.length) {
    setStatus(skipped.length ? `Nothing to add (left out: ${skipped.join(', ')}).` : 'Nothing to add: no files.', 'error');
    return;
  }
  if (list.length > MAX_UPLOAD_FILES) {
    setStatus(`Too many files (more than ${MAX_UPLOAD_FILES}); add a smaller folder.`, 'error');
    return;
  }
  const total = list.reduce((n, f) => n + f.file.size, 0);
  if (total > MAX_UPLOAD_BYTES) {
    setStatus(`Too large (${fmtSize(total)}; at most ${fmtSize(MAX_UPLOAD_BYTES)} at once).`, 'error');
    return;
  }
  const maxFile = serverLimits().maxFileBytes ?? 1 << 20;
  const tooBig = list.filter((f) => f.file.size > maxFile).map((f) => f.path);
  const files = [];
  setStatus(`Reading ${list.length} file${list.length === 1 ? '' : 's'}…`);
  try {
    for (const f of list) {
      if (f.file.size > maxFile) continue;
      files.push({ path: f.path, content: await readContent(f.file) });
    }
  } catch (e) {
    setStatus(`Could not read the files: ${errText(e)}`, 'error');
    return;
  }
  const notes = [];
  if (skipped.length) notes.push(`left out ${skipped.join(', ')}`);
  if (tooBig.length) notes.push(`too large (over ${fmtSize(maxFile)}): ${tooBig.join(', ')}`);
  await runSetup({ label: describe(list), files, notes });
}

// ---------------------------------------------------------------------------------------------
// setupProject

// Splits files into requests under the worker's body and file-count limits.
function batches(files) {
  const limits = serverLimits();
  const budget = Math.max(64 << 10, Math.floor((limits.maxBodyBytes ?? 1 << 20) * 0.8) - 4096);
  const maxFiles = limits.maxFiles ?? 1000;
  const enc = new TextEncoder();
  const out = [[]];
  let size = 0;
  for (const f of files) {
    const est = 64 + enc.encode(JSON.stringify(f.path)).length + (typeof f.content === 'string'
      ? enc.encode(JSON.stringify(f.content)).length : Math.ceil(f.content.length / 3) * 4);
    let cur = out[out.length - 1];
    if (cur.length && (size + est > budget || cur.length >= maxFiles)) { cur = []; out.push(cur); size = 0; }
    cur.push(f);
    size += est;
  }
  return out;
}

// Asks before overwriting: the top-level names the files would write that exist already.
async function confirmOverwrite(files, id, signal) {
  const tops = new Set(files.map((f) => f.path.split('/')[0]));
  if (!tops.size) return true;
  let existing = [];
  try { existing = asList(await call((c) => c.listFiles(FILE_ROOT, id)), 'entries'); } catch { return true; }
  const clash = existing.map((e) => e.name).filter((n) => tops.has(n));
  if (!clash.length) return true;
  const names = clash.length > 3 ? `${clash.slice(0, 3).join(', ')} and ${clash.length - 3} more` : clash.join(', ');
  return confirmInline(el.panel, {
    label: 'Confirm overwriting files', danger: true, yes: 'Overwrite', signal,
    text: `${names} exist${clash.length === 1 ? 's' : ''} already; files with the same paths are replaced.`,
  });
}

async function runSetup({ label, files, install = null, open = null, run = null, dev = null, notes = [] }) {
  const id = state.projectId;
  if (!id || busy) return;
  el.offer.hidden = true;
  const ac = new AbortController();
  setBusy(ac);
  let out = null;
  try {
    confirming = true;
    const yes = await confirmOverwrite(files, id, ac.signal).finally(() => { confirming = false; });
    if (!yes) { if (!ac.signal.aborted) setStatus('Nothing was changed.'); return; }
    if (id !== state.projectId) return;
    const parts = batches(files);
    const n = files.length;
    if (install) {
      el.cancel.hidden = false;
      out = startOutput(install, 'setup');
      showRunning(`setting up ${label}; Cancel in the setup panel stops it`);
    }
    setStatus(n ? `Writing ${n} file${n === 1 ? '' : 's'} (${label})…` : `Setting up ${label}…`);
    let res = null;
    let streamed = false;
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const opts = { signal: ac.signal };
      if (last && install) {
        setStatus(`Installing: ${install}`);
        Object.assign(opts, {
          install,
          onStdout: (d) => { streamed = true; appendTo(out, 'stdout', d); },
          onStderr: (d) => { streamed = true; appendTo(out, 'stderr', d); },
        });
      } else if (parts.length > 1) {
        setStatus(`Writing files (part ${i + 1} of ${parts.length})…`);
      }
      res = await call((c) => c.setupProject(parts[i], id, opts));
    }
    const inst = res?.install;
    if (out && inst && state.output === out) {
      if (!streamed) {
        if (inst.stdout) appendTo(out, 'stdout', inst.stdout);
        if (inst.stderr) appendTo(out, 'stderr', inst.stderr);
      }
      const { stdout, stderr, ...meta } = inst;
      out.result = meta;
      showResult(meta, 'live');
    }
    const ok = !install || inst?.status === 'success' || inst?.exitCode === 0;
    const wrote = n ? `Wrote ${n} file${n === 1 ? '' : 's'} (${label})` : `Applied ${label}: no files to write`;
    const tail = notes.length ? `; ${notes.join('; ')}` : '';
    if (!install) setStatus(`${wrote}${tail}.`, 'done');
    else if (ok) setStatus(`${wrote}; installed${tail}.`, 'done');
    else setStatus(`${wrote}; the install failed (exit ${inst?.exitCode ?? '?'}): see the output${tail}.`, 'error');
    if (id !== state.projectId) return;
    if (open) emit('file:open', open);
    if (run) emit('command:suggest', run);
    if (dev && ok) {
      el.offer.dataset.port = String(dev.port);
      el.offer.dataset.cmd = dev.cmd;
      el.offerText.textContent = `Start its dev server (${dev.cmd}, port ${dev.port})?`;
      el.offerBtn.setAttribute('aria-label', `Start the dev server: ${dev.cmd} on port ${dev.port}`);
      el.offer.hidden = false;
    }
  } catch (e) {
    const aborted = isAbort(e, ac.signal);
    setStatus(aborted ? 'Setup canceled.' : `Could not set up ${label}: ${errText(e)}`, 'error');
    if (out && state.output === out) showFailure(out, aborted ? 'canceled' : 'error', aborted ? 'canceled' : errText(e));
  } finally {
    setBusy(null);
    el.cancel.hidden = true;
    saveSnapshotSoon();
    if (id === state.projectId && state.client) emit('project:changed', id, ['files', 'history', 'info', 'processes']);
  }
}

function applyTemplate(key) {
  const t = TEMPLATES[key];
  if (!t) return;
  return runSetup({ label: `template ${t.label}`, files: t.files, install: t.install, open: t.open, run: t.run, dev: t.dev });
}

// ---------------------------------------------------------------------------------------------
// Drag and drop anywhere on the page

let dragDepth = 0;

function carriesFiles(ev) {
  return Array.from(ev.dataTransfer?.types ?? []).includes('Files');
}

function canDrop() {
  return el.app.dataset.connected === 'true' && !!state.projectId && !busy;
}

function showOverlay() {
  el.overlayText.textContent = canDrop()
    ? `Drop files or a folder to add them to ${state.projectId}`
    : busy ? 'A setup is running; wait for it to finish.' : 'Connect and select a project first.';
  el.overlay.dataset.allowed = String(canDrop());
  el.overlay.hidden = false;
}

function hideOverlay() {
  dragDepth = 0;
  el.overlay.hidden = true;
}

// Every drag of files is handled here, so that a file dropped beside the target never makes
// the browser navigate away from the page to show it.
document.addEventListener('dragenter', (ev) => {
  if (!carriesFiles(ev)) return;
  ev.preventDefault();
  dragDepth++;
  showOverlay();
});
document.addEventListener('dragover', (ev) => {
  if (!carriesFiles(ev)) return;
  ev.preventDefault();
  ev.dataTransfer.dropEffect = canDrop() ? 'copy' : 'none';
});
document.addEventListener('dragleave', (ev) => {
  if (!carriesFiles(ev)) return;
  if (--dragDepth <= 0) hideOverlay();
});
document.addEventListener('drop', async (ev) => {
  if (!carriesFiles(ev)) return;
  ev.preventDefault();
  hideOverlay();
  if (!canDrop()) { if (state.projectId) setStatus('A setup is running; drop again when it is done.', 'error'); return; }
  const roots = dropRoots(ev.dataTransfer);
  const list = [];
  const skipped = [];
  setStatus('Reading the dropped files…');
  try {
    for (const r of roots) {
      if (r.entry) await walk(r.entry, list, skipped);
      else list.push({ path: r.path, file: r.file });
    }
  } catch (e) {
    setStatus(`Could not read the dropped files: ${errText(e)}`, 'error');
    return;
  }
  await addFiles(list, skipped);
});
window.addEventListener('blur', hideOverlay);

// ---------------------------------------------------------------------------------------------
// Controls

el.templateForm.addEventListener('submit', (ev) => { ev.preventDefault(); applyTemplate(el.template.value); });
for (const input of [el.files, el.folder]) {
  input.addEventListener('change', async () => {
    const skipped = [];
    const list = pickedFiles(input, skipped);
    input.value = ''; // the same folder can be picked again
    await addFiles(list, skipped);
  });
}
el.cancel.addEventListener('click', () => busy?.abort());
el.offerBtn.addEventListener('click', () => {
  el.offer.hidden = true;
  emit('devserver:start', { port: Number(el.offer.dataset.port), cmd: el.offer.dataset.cmd });
});

// Another project: a setup still asking about overwriting stops; one already writing goes on
// (its output stays with it) and the controls come back when it ends.
function clear({ all = false } = {}) {
  if (all || confirming) busy?.abort();
  el.offer.hidden = true;
  setStatus('');
}
on('reset', () => clear({ all: true }));
on('project:switch', () => clear());
