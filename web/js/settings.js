// web/js/settings.js: the project's info and settings: name, port and free-form settings (a
// JSON object, saved as a JSON merge patch, so removed keys are removed), and the project's
// facts (sandbox, its state, the worker's copy of the files, times; "cached (offline)" when
// answered from the client's cache).

import { state, on, emit } from './state.js';
import { $, errText, isNetworkError, isAuthError, fmtTime, fmtSize } from './util.js';
import { call } from './conn.js';
import { saveSnapshotSoon } from './snapshot.js';

const el = {
  settingsForm: $('settings-form'), settingsBtn: $('settings-btn'), setName: $('set-name'), setPort: $('set-port'), setJson: $('set-json'),
  settingsStatus: $('settings-status'), projectMeta: $('project-meta'),
};

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

function renderInfo() {
  const info = state.info;
  if (document.activeElement?.closest?.('#settings-form') == null) {
    el.setName.value = info?.name ?? '';
    el.setPort.value = info?.port ?? '';
    el.setJson.value = info?.settings && Object.keys(info.settings).length
      ? JSON.stringify(info.settings, null, 2) : '';
  }
  emit('info:render', info); // the dev server panel takes the project's port
  el.projectMeta.textContent = '';
  if (!info) return;
  const sb = info.sandbox;
  const snap = info.snapshot;
  const rows = [
    ['Project', info.projectId],
    ['Sandbox', info.sandboxId || 'not created yet'],
    ['State', sb ? sb.state + (sb.internet === false ? ` · no internet (${sb.internetReason ?? 'unavailable'})` : '') : ''],
    ['Files kept', snap ? (snap.takenAt ? `${fmtTime(snap.takenAt)} · ${fmtSize(snap.bytes)}` : 'not yet') +
      (snap.partial ? ` · partial, left out: ${(snap.excluded ?? []).join(', ')}` : '') +
      (snap.pending ? ' · saving newer changes' : '') : ''],
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
    if (p) { p.name = state.info.name; emit('projects:changed'); }
    saveSnapshotSoon();
  } catch (e) {
    el.settingsStatus.textContent = `Could not save: ${errText(e)}`;
  } finally {
    el.settingsBtn.disabled = false;
  }
}

on('render:project', renderInfo);
on('project:switch', () => { el.settingsStatus.textContent = ''; });
on('project:load', (id) => loadInfo(id));
on('project:changed', (id, aspects) => { if (aspects.includes('info')) loadInfo(id); });
// Going offline: show the project info the client has cached (marked stale) at once.
on('offline', () => { if (state.client && state.projectId) loadInfo(); });

el.settingsForm.addEventListener('submit', (ev) => { ev.preventDefault(); saveSettings(); });
