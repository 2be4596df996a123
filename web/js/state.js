// web/js/state.js: the page's shared state and the little event hub the panels talk through.
//
// Every panel module (web/js/*.js) owns its own elements and functions; what they share is
// `state` (the data on screen) and these events, so that a panel never reaches into another
// panel's DOM. emit() calls every handler in registration order; emitAsync() awaits them.
//   'reset'                     disconnected: forget everything of the token
//   'snapshot:paint' (s)        the saved snapshot of the token, before any network answer
//   'refresh'                   reload everything (after connect, after an outage; awaited)
//   'project:switch' (id)       another project was selected: clear per-project controls
//   'render:project'            repaint the selected project from `state`
//   'project:load' (id)         fetch the project's data (awaited)
//   'project:changed' (id, aspects)
//                               something changed in the project (a run, a save, a setup, a
//                               dev server, a Stop); aspects ⊆ files, history, info, processes
//   'projects:changed'          the project list changed (a rename)
//   'online' / 'offline'        the worker became reachable / unreachable
//   'history:render'            the page's own history rows changed (a cache hit)
//   'info:render' (info)        the project info was repainted (the dev server takes its port)
//   'devserver:start' ({port, cmd}), 'file:open' (path), 'command:suggest' (cmd)
//                               what a template asks of the dev server, editor, command box
//   'process:stopped' (pid)     the processes panel stopped a process

export const state = {
  token: null,
  tokenKey: null,
  client: null,
  online: null,          // null = unknown, true, false
  authFailed: false,
  projects: [],
  projectId: null,
  info: null,
  history: [],
  output: null,          // {cmd, chunks: [[stream, text]], size, result, source}
  running: null,         // AbortController of the running command
  settingUp: false,      // a project setup (setupProject) is in progress
  retryTimer: null,
  retryDelay: 1000,
  loadSeq: 0,
  cmdHistory: [],
  cmdIndex: -1,
  openDirs: new Set(),
  fileDirty: false,
  lastFile: null,        // the file in the editor, reopened when the project is shown again
  connGen: 0,            // increases on every disconnect; a stale connect() stops
  projectsLoaded: false, // a project list has been received (from the worker or the cache)
  cacheHits: [],         // this project's runs answered from a cache: no worker record exists
  snapshot: null,        // the page snapshot object of the current token (web/js/snapshot.js)
};

export const HISTORY_LIMIT = 50;      // records shown
export const MAX_CACHE_HITS = 20;     // cache-served runs remembered per project (page-side)
export const FILE_ROOT = '/home/user'; // the sandbox user's home, where relative paths point

const handlers = new Map();

export function on(name, fn) {
  if (!handlers.has(name)) handlers.set(name, []);
  handlers.get(name).push(fn);
}

// Calls every handler; a handler that throws does not stop the others.
export function emit(name, ...args) {
  for (const fn of handlers.get(name) ?? []) {
    try {
      const r = fn(...args);
      if (r && typeof r.catch === 'function') r.catch((e) => reportError(e));
    } catch (e) { reportError(e); }
  }
}

// Calls every handler and waits for all of them.
export async function emitAsync(name, ...args) {
  await Promise.all((handlers.get(name) ?? []).map(async (fn) => fn(...args)));
}
