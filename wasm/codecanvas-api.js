// codecanvas-api.js (--extern-post-js): the public JS API of the wasm client.
//
// Appended after emcc's `export default createCodeCanvasModule`, so it adds the named
// exports CodeCanvas and CodeCanvasError to the same ES module.  It is deliberately thin:
// encoding, cache decisions, response parsing and cache updates happen in C
// (shared/cc_client.c); this layer marshals strings, keeps one Promise per request, loads
// and saves the cache image (a SQLite database) in IndexedDB, shares generations between
// tabs, and turns C error objects into CodeCanvasError in exactly one place (_settle()).

/** An error from the worker, the transport or the client, with a protocol `code`. */
export class CodeCanvasError extends Error {
  constructor(info) {
    super(info.message || info.code);
    this.name = 'CodeCanvasError';
    this.code = info.code;
    this.retryable = !!info.retryable;
    if (info.reason) this.reason = info.reason;
    if (info.executionId) this.executionId = info.executionId; // the failed op's record
  }
}

const CC_IDB_NAME = 'codecanvas';
const DEFAULT_MAX_STALE_MS = 3600000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30000;
const STREAM_GRACE_MS = 10000;

// A short stable name for (worker, token): the cache file and the tab channel are per
// credential, so two users of one origin never share cached results.
async function cacheId(workerUrl, token) {
  const text = new TextEncoder().encode(workerUrl + '\n' + (token || ''));
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) {
    const d = new Uint8Array(await subtle.digest('SHA-256', text));
    return Array.from(d.slice(0, 12), (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let h = 0x811c9dc5; // FNV-1a 32 where WebCrypto is missing (non-secure contexts)
  for (const b of text) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return 'f' + h.toString(16);
}

// IndexedDB: one database per cacheName, one object store, one record per cache image
// (key: the cache id, value: the SQLite database bytes).
function idbRequest(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
function idbOpen(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => r.result.createObjectStore('images');
  return idbRequest(r);
}
function idbGet(db, key) {
  return idbRequest(db.transaction('images', 'readonly').objectStore('images').get(key));
}
// Saves this client's cache image in one read-write transaction: when another tab (another
// client instance) saved last, its image is first merged into ours (merge(bytes), sync), so
// the image saved last never drops what the others cached.  `<key>:writer` names the last
// saver.  imageOf() is called after the merge, still inside the transaction.
function idbMergeSave(db, key, writer, merge, imageOf) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction('images', 'readwrite');
    const store = tx.objectStore('images');
    const save = () => {
      store.put(imageOf(), key);
      store.put({ writer, at: Date.now() }, `${key}:writer`);
    };
    const meta = store.get(`${key}:writer`);
    meta.onsuccess = () => {
      if (meta.result && meta.result.writer === writer) return save();
      const other = store.get(key);
      other.onsuccess = () => {
        if (other.result) merge(new Uint8Array(other.result));
        save();
      };
    };
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

export class CodeCanvas {
  /**
   * Loads a module instance, mounts the cache and says hello to the worker.
   * options: {workerUrl, token, maxStaleMs?, fetch?, persist?, cacheName?,
   *           requestTimeoutMs?, broadcast?, onGeneration?, onSaved?, wasmBinary?, locateFile?}
   * onSaved() runs after each save of the local cache to IndexedDB.
   * onGeneration(projectId, generation, source) runs when this client learns that a
   * project changed: source "worker" (a response) or "tab" (another tab/instance).
   * An unreachable worker is not an error: the client starts offline and answers reads
   * from the cache (`client.online === false`).  A rejected token is.
   */
  static async connect(options) {
    const o = options || {};
    if (!o.workerUrl) throw new CodeCanvasError({ code: 'bad_request', message: 'workerUrl is required' });
    const M = await createCodeCanvasModule({
      wasmBinary: o.wasmBinary,
      locateFile: o.locateFile,
      print: () => {},
      printErr: (t) => console.warn('codecanvas:', t),
    });
    const c = new CodeCanvas(M, o);
    await c._open(await cacheId(o.workerUrl, o.token));
    try {
      c.server = await c._call('hello', null, {});
      c.online = true;
    } catch (e) {
      if (e.code !== 'upstream_error' && e.code !== 'timeout') {
        await c.close();
        throw e;
      }
      c.online = false;
    }
    return c;
  }

  constructor(M, o) {
    this._M = M;
    this._seq = 0;
    this._pending = new Map();
    this._persisting = null;
    this._dirty = false;
    this._closed = false;
    this.workerUrl = String(o.workerUrl).replace(/\/+$/, '');
    this.maxStaleMs = o.maxStaleMs ?? DEFAULT_MAX_STALE_MS;
    this.requestTimeoutMs = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this._opts = o;
    M.ccConfig = { url: this.workerUrl, token: o.token, fetch: o.fetch };
    M.ccPending = this._pending;
    M.ccDone = (req, ok, text) => this._settle(req, ok, text);
    M.ccEvent = (req, type, text) => {
      const p = this._pending.get(req);
      if (!p) return;
      if (type === 'stdout' && p.onStdout) p.onStdout(text);
      else if (type === 'stderr' && p.onStderr) p.onStderr(text);
      else if (type === 'start' && p.onStart) p.onStart(JSON.parse(text));
    };
    M.ccGeneration = (project, generation) => {
      if (this._channel) this._channel.postMessage({ project, generation });
      this._schedulePersist();
      if (o.onGeneration) o.onGeneration(project, generation, 'worker');
    };
  }

  async _open(id) {
    const M = this._M, o = this._opts;
    this.persistent = o.persist ?? typeof indexedDB !== 'undefined';
    this.cacheKey = id;
    // this instance's name as a saver of the shared image (idbMergeSave)
    this._writer = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
    let image = null;
    if (this.persistent) {
      try {
        this._idb = await idbOpen(o.cacheName ? String(o.cacheName) : CC_IDB_NAME);
        image = (await idbGet(this._idb, id)) ?? null;
      } catch (e) {
        console.warn('codecanvas: IndexedDB unavailable, the cache is not kept:', e);
        this.persistent = false;
      }
    }
    const bytes = image ? new Uint8Array(image) : new Uint8Array(0);
    const p = M._malloc(bytes.length || 1);
    M.HEAPU8.set(bytes, p);
    this._h = M._cc_wasm_open(p, bytes.length, this.maxStaleMs, 64);
    M._free(p);
    if (!this._h) throw new CodeCanvasError({ code: 'internal', message: 'cannot open the client cache' });
    if (o.broadcast !== false && typeof BroadcastChannel === 'function') {
      this._channel = new BroadcastChannel('codecanvas:' + id);
      if (this._channel.unref) this._channel.unref(); // never keep Node alive
      this._channel.onmessage = (ev) => {
        const d = ev.data || {};
        if (this._closed || typeof d.project !== 'string' || typeof d.generation !== 'number') return;
        const changed = this._withStrings([d.project], (p) => M._cc_wasm_seen_generation(this._h, p, d.generation));
        if (changed !== 1) return;
        this._schedulePersist();
        if (o.onGeneration) o.onGeneration(d.project, d.generation, 'tab');
      };
    }
  }

  // Calls fn with the strings copied into wasm memory (module malloc), frees them after.
  _withStrings(strings, fn) {
    const M = this._M;
    const ptrs = strings.map((s) => {
      if (s == null) return 0;
      const n = M.lengthBytesUTF8(s) + 1;
      const p = M._malloc(n);
      M.stringToUTF8(s, p, n);
      return p;
    });
    try {
      return fn(...ptrs);
    } finally {
      for (const p of ptrs) if (p) M._free(p);
    }
  }

  // The one place that turns outcomes into resolved values or thrown CodeCanvasErrors.
  _settle(req, ok, text) {
    const p = this._pending.get(req);
    if (!p) return;
    this._pending.delete(req);
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      ok = false;
      value = { code: 'internal', message: 'unreadable answer from the client core' };
    }
    if (p.sent) this._schedulePersist();
    if (ok) p.resolve(value);
    else p.reject(new CodeCanvasError(value));
  }

  // Sends one protocol op; resolves with its result object.
  _call(op, project, args, o = {}) {
    if (this._closed) return Promise.reject(new CodeCanvasError({ code: 'bad_request', message: 'client is closed' }));
    const req = ++this._seq;
    const stream = !!o.stream;
    const fetchTimeoutMs = o.fetchTimeoutMs ?? (stream ? 0 : this.requestTimeoutMs);
    return new Promise((resolve, reject) => {
      this._pending.set(req, {
        resolve, reject, signal: o.signal, fetchTimeoutMs,
        onStdout: o.onStdout, onStderr: o.onStderr, onStart: o.onStart,
      });
      const err = this._withStrings([op, project, JSON.stringify(args || {})], (a, b, c) =>
        this._M._cc_wasm_request(this._h, req, a, b, c, stream ? 1 : 0, Date.now()));
      if (err) {
        const text = this._M.UTF8ToString(err);
        this._M._cc_wasm_free(err);
        this._settle(req, false, text);
      }
    });
  }

  // Saves the cache image to IndexedDB soon; saves are serialized and coalesced.
  _schedulePersist() {
    if (!this.persistent || this._closed) return;
    this._dirty = true;
    if (!this._persisting) this._persisting = Promise.resolve().then(() => this._persistLoop());
  }

  async _persistLoop() {
    try {
      while (this._dirty && this._h) {
        this._dirty = false;
        const M = this._M;
        const lenPtr = M._malloc(4);
        const p = M._cc_wasm_image(this._h, lenPtr);
        const n = M.HEAPU32[lenPtr >> 2];
        M._free(lenPtr);
        if (!p) throw new Error('no cache image');
        await idbMergeSave(this._idb, this.cacheKey, this._writer, (bytes) => this._merge(bytes), () => {
          // after a merge the image has changed: take it again, and copy it at once (the
          // pointer is only valid until the next call into the module)
          const lp = M._malloc(4);
          const q = M._cc_wasm_image(this._h, lp);
          const k = M.HEAPU32[lp >> 2];
          M._free(lp);
          return q ? M.HEAPU8.slice(q, q + k) : M.HEAPU8.slice(p, p + n);
        });
        this._opts.onSaved?.();
      }
    } catch (e) {
      console.warn('codecanvas: saving the cache to IndexedDB failed:', e);
    } finally {
      this._persisting = null;
    }
  }

  // Merges a cache image another tab saved into ours (see idbMergeSave).
  _merge(bytes) {
    const M = this._M;
    const p = M._malloc(bytes.length || 1);
    M.HEAPU8.set(bytes, p);
    const failed = M._cc_wasm_merge(this._h, p, bytes.length);
    M._free(p);
    if (failed) console.warn('codecanvas: another tab\'s cache image could not be merged; keeping ours');
  }

  async _persist() {
    this._dirty = true;
    while (this._persisting) await this._persisting;
    if (this._dirty) await this._persistLoop();
  }

  /** Resolves once every cache change so far is saved in IndexedDB. */
  async flush() {
    while (this._persisting) await this._persisting;
  }

  /**
   * Runs a shell command in the project's sandbox.  The third argument is `useCache`
   * (boolean) or options {useCache, readOnly, cwd, env, timeoutMs, stdin, onStdout,
   * onStderr, signal}.  Resolves to {id, stdout, stderr, exitCode, duration, cached,
   * status, ...}; a non-zero exit is a result, not an error.
   */
  async executeCommand(command, projectId, useCacheOrOptions) {
    const o = typeof useCacheOrOptions === 'boolean' ? { useCache: useCacheOrOptions } : useCacheOrOptions || {};
    const args = { cmd: command };
    for (const k of ['cwd', 'env', 'timeoutMs', 'useCache', 'readOnly', 'stdin'])
      if (o[k] !== undefined) args[k] = o[k];
    const stream = !!(o.onStdout || o.onStderr || o.stream);
    const started = performance.now();
    const r = await this._call('exec', projectId, args, {
      stream, signal: o.signal, onStdout: o.onStdout, onStderr: o.onStderr,
      fetchTimeoutMs: o.timeoutMs ? o.timeoutMs + STREAM_GRACE_MS : stream ? 0 : undefined,
    });
    if (r.cached && r.local) {
      r.duration = performance.now() - started; // what the caller waited, not the original run
      delete r.local;
    }
    return r;
  }

  /** Writes a file (string as UTF-8, Uint8Array as bytes). Resolves to {path, size}. */
  writeFile(path, content, projectId, options = {}) {
    const args = { path };
    if (content instanceof Uint8Array) {
      args.content = bytesToBase64(content);
      args.encoding = 'base64';
    } else {
      args.content = String(content);
    }
    return this._call('writeFile', projectId, args, options);
  }

  /** Reads a file: a string (UTF-8), or a Uint8Array with {binary: true}. */
  async readFile(path, projectId, options = {}) {
    const r = await this._call('readFile', projectId,
      { path, encoding: options.binary ? 'base64' : 'utf8' }, options);
    return options.binary ? base64ToBytes(r.content) : r.content;
  }

  /** Lists a directory: [{name, path, type, size, mtime}]. */
  async listFiles(path, projectId, options = {}) {
    const args = { path: path || '/home/user' };
    if (options.depth !== undefined) args.depth = options.depth;
    return (await this._call('listDir', projectId, args, options)).entries;
  }

  /**
   * Writes files ([{path, content}] or {path: content}) and optionally runs
   * options.install (streamed through onStdout/onStderr).  Resolves to {ok, files, install?}.
   */
  setupProject(files, projectId, options = {}) {
    const list = Array.isArray(files) ? files : Object.entries(files || {}).map(([path, content]) => ({ path, content }));
    const args = {
      files: list.map((f) => (f.content instanceof Uint8Array
        ? { path: f.path, content: bytesToBase64(f.content), encoding: 'base64' }
        : { path: f.path, content: String(f.content), ...(f.encoding ? { encoding: f.encoding } : {}) })),
    };
    if (options.install) args.install = options.install;
    const stream = !!(options.onStdout || options.onStderr);
    return this._call('setupProject', projectId, args, { ...options, stream, fetchTimeoutMs: stream || options.install ? 0 : undefined });
  }

  /** Starts a dev server in the background. Resolves to {started, url, port, pid}. */
  startDevServer(port, projectId, options = {}) {
    const args = { port };
    if (options.cmd) args.cmd = options.cmd;
    if (options.cwd) args.cwd = options.cwd;
    return this._call('startDevServer', projectId, args, options);
  }

  /** Kills a process of the project's sandbox. Resolves to {killed}. */
  killProcess(pid, projectId, options = {}) {
    return this._call('killProcess', projectId, { pid }, options);
  }

  /** Processes running in the project's sandbox. */
  async listProcesses(projectId, options = {}) {
    return (await this._call('listProcesses', projectId, {}, options)).processes;
  }

  /** Newest-first execution records: an Array of ExecutionRecords (the seed's shape:
   * `history.length`, `history.map(...)`, `history[0].id`) carrying `next` (the cursor for
   * `{before: next}`, when there are older ones) and `stale` (answered from the local cache)
   * as properties; `items` is the array itself (the earlier page shape). */
  async getExecutionHistory(projectId, limit = 50, options = {}) {
    const args = { limit };
    if (options.before) args.before = options.before;
    const page = await this._call('getHistory', projectId, args, options);
    const list = Array.isArray(page?.items) ? page.items : [];
    Object.defineProperty(list, 'items', { value: list, enumerable: false });
    if (page?.next) list.next = page.next;
    if (page?.stale) list.stale = true;
    return list;
  }

  /** One execution record {…result, op, input, status, error?, createdAt, finishedAt}. */
  getExecutionResult(executionId, options = {}) {
    return this._call('getResult', null, { executionId }, options);
  }

  /** ProjectInfo {projectId, name?, port?, sandboxId?, …, stale?}. */
  getProjectInfo(projectId, options = {}) {
    return this._call('getProject', projectId, {}, options);
  }

  /** Applies a JSON merge patch (RFC 7386); resolves to the new ProjectInfo.  Keys the
   * worker owns (projectId, sandboxId, createdAt, updatedAt, generation) are not applied;
   * the result lists them in `ignored`. */
  updateProjectInfo(projectId, patch, options = {}) {
    return this._call('updateProject', projectId, { patch }, options);
  }

  /** Drops cached results of `command` (or of the whole project when null). {cleared} */
  clearCache(command, projectId, options = {}) {
    return this._call('clearCache', projectId, command == null ? {} : { cmd: command }, options);
  }

  /** The caller's projects: [ProjectInfo] (with .stale when answered offline). */
  async listProjects(options = {}) {
    const r = await this._call('listProjects', null, {}, options);
    if (r.stale) r.projects.stale = true;
    return r.projects;
  }

  /**
   * An interactive terminal: a login shell on a PTY in the project's sandbox, relayed by the
   * worker over a WebSocket on its port (GET /v1/terminal), authenticated with this client's
   * token.  options: {cols = 80, rows = 24, onData(bytes: Uint8Array), onReady({pid,
   * reattached, sandboxRestored?}), onExit({exitCode, status}), onError({code, message}),
   * onClose({code, reason, willReconnect}), reconnect = true, WebSocket}.  Returns
   * {write(data: string | Uint8Array), resize(cols, rows), close(), kill(), pid, ready}.
   * After a network blip it reconnects to the same shell (by its pid) with a growing delay;
   * output produced while it was away is not replayed.  close() leaves the shell running
   * for a later openTerminal(..., {pid}); kill() ends it.
   */
  openTerminal(projectId, options = {}) {
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new CodeCanvasError({ code: 'bad_request', message: 'no WebSocket in this environment' });
    let cols = options.cols ?? 80, rows = options.rows ?? 24;
    const token = this._opts.token;
    const base = this.workerUrl.replace(/^http/, 'ws');
    const term = { pid: options.pid ?? 0, closed: false };
    let ws = null, delay = 250, ended = false, resolveReady;
    term.ready = new Promise((r) => (resolveReady = r));
    const connect = () => {
      const q = new URLSearchParams({ project: projectId, cols: String(cols), rows: String(rows) });
      if (term.pid) q.set('pid', String(term.pid));
      ws = new WS(`${base}/v1/terminal?${q}`, ['codecanvas.terminal.v1', `bearer.${token}`]);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (e) => {
        if (typeof e.data !== 'string') {
          options.onData?.(new Uint8Array(e.data));
          return;
        }
        const m = JSON.parse(e.data);
        if (m.type === 'ready') {
          term.pid = m.pid;
          delay = 250;
          resolveReady(m);
          options.onReady?.(m);
        } else if (m.type === 'exit') {
          ended = true;
          options.onExit?.(m);
        } else if (m.type === 'error') {
          ended = true;
          options.onError?.(new CodeCanvasError({ code: m.code, message: m.message }));
        }
      };
      ws.onclose = (e) => {
        const again = !term.closed && !ended && options.reconnect !== false && e.code !== 1008;
        options.onClose?.({ code: e.code, reason: e.reason, willReconnect: again });
        if (again) {
          setTimeout(() => { if (!term.closed) connect(); }, delay);
          delay = Math.min(delay * 2, 10000);
        }
      };
    };
    connect();
    const enc = new TextEncoder();
    term.write = (data) => {
      if (ws?.readyState === 1) ws.send(typeof data === 'string' ? enc.encode(data) : data);
    };
    term.resize = (c, r) => {
      cols = c;
      rows = r;
      if (ws?.readyState === 1) ws.send(JSON.stringify({ type: 'resize', cols: c, rows: r }));
    };
    term.kill = () => {
      if (ws?.readyState === 1) ws.send(JSON.stringify({ type: 'kill' }));
    };
    term.close = () => {
      term.closed = true;
      ws?.close(1000, 'closed');
    };
    return term;
  }

  /** Deletes a project, its sandbox and its data. Resolves to {deleted}. */
  deleteProject(projectId, options = {}) {
    return this._call('deleteProject', projectId, {}, options);
  }

  /** Cancels requests in flight, saves the cache and releases the module. */
  async close() {
    if (this._closed) return;
    if (this._channel) this._channel.close();
    if (this._h) {
      this._M.ccClosed = true;
      for (const p of this._pending.values()) if (p.abort) p.abort();
      if (this.persistent) await this._persist(); // the last save, before the handle goes
      this._M._cc_wasm_close(this._h); // in-flight requests settle as "canceled"
      this._h = 0;
    }
    if (this._idb) this._idb.close();
    this._closed = true;
  }
}

function bytesToBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
