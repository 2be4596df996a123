// web/js/files.js: the file tree of /home/user (directories open lazily) and the editor:
// click a file to open it, Save or Ctrl+S writes it.

import { state, on, emit, FILE_ROOT } from './state.js';
import { $, errText, isNetworkError, asList } from './util.js';
import { call } from './conn.js';
import { saveSnapshotSoon } from './snapshot.js';

const el = {
  fileTree: $('file-tree'), filesEmpty: $('files-empty'), filesRefresh: $('files-refresh'),
  fileForm: $('file-form'), filePath: $('file-path'), openBtn: $('open-btn'), saveBtn: $('save-btn'),
  editor: $('editor'), fileStatus: $('file-status'),
};

async function listDir(path, id) {
  const res = await call((c) => c.listFiles(path, id));
  return asList(res, 'entries').slice().sort((a, b) =>
    (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || String(a.name).localeCompare(String(b.name)));
}

export async function loadFiles(id = state.projectId) {
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
    emit('project:changed', state.projectId, ['history']);
  } catch (e) {
    el.fileStatus.textContent = `Could not save ${path}: ${errText(e)}`;
  } finally {
    el.saveBtn.disabled = false;
  }
}

on('reset', () => {
  el.editor.value = '';
  el.filePath.value = 'main.py';
});
on('project:switch', () => {
  el.editor.value = '';
  el.editor.readOnly = false;
  el.filePath.value = state.lastFile ?? 'main.py';
  state.openDirs.clear();
  el.fileTree.textContent = '';
  el.fileStatus.textContent = '';
});
on('render:project', () => { if (!state.projectId) el.fileTree.textContent = ''; });
on('project:load', (id) => {
  const reopen = !state.fileDirty && !el.editor.value && state.lastFile;
  return Promise.all([loadFiles(id), reopen ? openFile(state.lastFile, { quiet: true }) : null]);
});
on('project:changed', (id, aspects) => { if (aspects.includes('files')) loadFiles(id); });
on('snapshot:paint', (s) => {
  const lastFile = s.perProject?.[s.selected]?.lastFile;
  if (lastFile) el.filePath.value = lastFile;
});
// A project setup opens its main file (unless the editor holds unsaved changes).
on('file:open', (path) => { if (!state.fileDirty) openFile(path); });

el.filesRefresh.addEventListener('click', () => loadFiles());
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
