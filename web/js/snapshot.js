// web/js/snapshot.js: the page snapshot: what was last on screen (projects, the selected
// project, its info, history, page-side cache hits, the file in the editor and the last
// command output), in IndexedDB database "codecanvas-page", keyed by a hash of the token.
// It is painted at start before the client or the network answer, so a reload shows the last
// state at once, and it is the fallback when the worker is down.

import { state, HISTORY_LIMIT, MAX_CACHE_HITS } from './state.js';
import { savedOutput } from './output.js';

const db = {
  handle: null,
  open() {
    if (this.handle) return this.handle;
    this.handle = new Promise((resolve) => {
      let req;
      try { req = indexedDB.open('codecanvas-page', 1); } catch { resolve(null); return; }
      req.onupgradeneeded = () => req.result.createObjectStore('snapshots');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
    });
    return this.handle;
  },
  async get(key) {
    const d = await this.open();
    if (!d) return null;
    return new Promise((resolve) => {
      const r = d.transaction('snapshots').objectStore('snapshots').get(key);
      r.onsuccess = () => resolve(r.result ?? null);
      r.onerror = () => resolve(null);
    });
  },
  async put(key, value) {
    const d = await this.open();
    if (!d) return;
    await new Promise((resolve) => {
      const tx = d.transaction('snapshots', 'readwrite');
      tx.objectStore('snapshots').put(value, key);
      tx.oncomplete = tx.onerror = tx.onabort = () => resolve();
    });
  },
};

export function readSnapshot(tokenKey) {
  return db.get(tokenKey);
}

let timer = null;

export function saveSnapshotSoon() {
  if (!state.tokenKey || state.authFailed) return;
  clearTimeout(timer);
  timer = setTimeout(saveSnapshot, 50);
}

async function saveSnapshot() {
  if (!state.tokenKey || state.authFailed) return;
  const s = state.snapshot ?? { v: 1, perProject: {} };
  s.savedAt = Date.now();
  s.projects = state.projects.map((p) => ({ projectId: p.projectId, name: p.name ?? null }));
  s.selected = state.projectId;
  if (state.projectId) {
    const prev = s.perProject[state.projectId] ?? {};
    s.perProject[state.projectId] = {
      info: state.info ?? prev.info ?? null,
      history: state.history.slice(0, HISTORY_LIMIT),
      cacheHits: state.cacheHits.slice(0, MAX_CACHE_HITS),
      lastFile: state.lastFile ?? prev.lastFile ?? null,
      output: state.output ? savedOutput(state.output) : prev.output ?? null,
    };
  }
  const known = new Set(s.projects.map((p) => p.projectId));
  for (const id of Object.keys(s.perProject)) if (!known.has(id)) delete s.perProject[id];
  state.snapshot = s;
  await db.put(state.tokenKey, s);
}

export async function hashToken(token) {
  try {
    const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token));
    return Array.from(new Uint8Array(d).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
  } catch {
    let h = 0x811c9dc5; // FNV-1a where SubtleCrypto is unavailable (non-secure origins)
    for (let i = 0; i < token.length; i++) { h ^= token.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return 'fnv' + h.toString(16);
  }
}
