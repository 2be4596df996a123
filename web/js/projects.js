// web/js/projects.js: the project list: list, create, select, delete (with an inline
// confirmation); loading a project asks every panel for its data ('project:load').

import { state, on, emit, emitAsync } from './state.js';
import { $, errText, isNetworkError, isAuthError, asList } from './util.js';
import { call, showBanner, hideBanner, bannerKind } from './conn.js';
import { renderOutput } from './output.js';
import { saveSnapshotSoon } from './snapshot.js';

const el = {
  app: $('app'), projectList: $('project-list'), projectsEmpty: $('projects-empty'), projectsRefresh: $('projects-refresh'),
  newProjectForm: $('new-project-form'), newProject: $('new-project'),
};

export async function refreshAll() {
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

async function loadProjects() {
  el.projectList.setAttribute('aria-busy', 'true');
  try {
    const res = await call((c) => c.listProjects());
    state.projects = asList(res, 'projects');
    state.projectsLoaded = true;
    if (bannerKind() === 'error' && !res?.stale) hideBanner(); // an earlier failure is over
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
  await emitAsync('project:load', id);
}

export function renderProjects() {
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

// The selected project's page-wide bits; the panels repaint on 'render:project'.
export function renderProject() {
  el.app.dataset.project = state.projectId ?? '';
  const p = state.projects.find((x) => x.projectId === state.projectId);
  document.title = state.projectId ? `${p?.name || state.projectId} · codecanvas` : 'codecanvas';
  emit('render:project');
}

async function selectProject(id) {
  if (id === state.projectId) return;
  state.projectId = id;
  const saved = state.snapshot?.perProject?.[id];
  state.info = saved?.info ?? null;
  state.history = saved?.history ?? [];
  state.cacheHits = saved?.cacheHits ?? [];
  state.output = saved?.output ? { ...saved.output, source: 'saved' } : null;
  state.lastFile = saved?.lastFile ?? null;
  state.fileDirty = false;
  emit('project:switch', id);
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

// The last state saved for this token, painted before any network answer.
on('snapshot:paint', (s) => {
  state.projects = s.projects ?? [];
  state.projectsLoaded = true;
  state.projectId = s.selected ?? null;
  const p = state.projectId ? s.perProject?.[state.projectId] : null;
  state.info = p?.info ?? null;
  state.history = p?.history ?? [];
  state.cacheHits = p?.cacheHits ?? [];
  state.lastFile = p?.lastFile ?? null;
  state.output = p?.output ? { ...p.output, chunks: p.output.chunks.slice(), source: 'saved' } : null;
  renderProjects();
  renderProject();
  renderOutput();
});
on('refresh', refreshAll);
on('reset', () => { renderProjects(); renderProject(); });
on('projects:changed', renderProjects);

el.projectsRefresh.addEventListener('click', () => refreshAll());
el.newProjectForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = el.newProject.value.trim();
  if (id && el.newProject.checkValidity()) createProject(id);
});
