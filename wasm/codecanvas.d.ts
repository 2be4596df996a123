// TypeScript declarations of the codecanvas wasm client (build/web/codecanvas.js).

/** Protocol error codes (DESIGN §4) plus "canceled" for an aborted call. */
export type ErrorCode =
  | 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'too_large'
  | 'rate_limited' | 'timeout' | 'sandbox_unavailable' | 'upstream_error'
  | 'conflict' | 'internal' | 'canceled';

export class CodeCanvasError extends Error {
  readonly name: 'CodeCanvasError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** Why a request was rejected (e.g. "bad_path", "too_deep"), when known. */
  readonly reason?: string;
  /** The record of the failed operation (read it with getExecutionResult), when it has one. */
  readonly executionId?: string;
}

export type RecordStatus = 'pending' | 'running' | 'success' | 'failed' | 'error' | 'timeout' | 'canceled';

export interface ExecutionResult {
  id: string;
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Milliseconds; for a local cache hit, the time the call took. */
  duration: number;
  cached: boolean;
  status: RecordStatus;
  truncated?: boolean;
  sandboxRecreated?: boolean;
  /** The project's sandbox had been lost; this operation's new one got the files back. */
  sandboxRestored?: boolean;
  /** When sandboxRestored: the time of the snapshot the files came from (ms). */
  restoredFrom?: number;
}

export interface ExecutionRecord extends ExecutionResult {
  op: string;
  input: unknown;
  error?: { code: ErrorCode; message: string };
  createdAt: string | number;
  finishedAt?: string | number;
  /** True when answered from the local cache because the worker was unreachable. */
  stale?: boolean;
}

export interface ProjectInfo {
  projectId: string;
  name?: string;
  port?: number;
  sandboxId?: string;
  /** The client's own value when it stored one (e.g. Date.now()), else the newest record. */
  lastExecution?: unknown;
  /** The newest execution record {id, op, status, createdAt}. */
  lastRecord?: { id: string; op: string; status: RecordStatus; createdAt: number };
  createdAt: string | number;
  updatedAt: string | number;
  settings?: Record<string, unknown>;
  /** getProjectInfo: the project's sandbox now. */
  sandbox?: { id: string; state: 'running' | 'paused' | 'restored' | 'new'; internet?: boolean; internetReason?: string };
  /** getProjectInfo: the worker's copy of the project's files (takenAt absent: none yet);
   *  pending: files changed since and the next copy is not stored yet. */
  snapshot?: { takenAt?: number; bytes?: number; partial?: boolean; excluded?: string[]; pending: boolean };
  /** updateProjectInfo: keys of the patch the worker owns and did not apply. */
  ignored?: string[];
  stale?: boolean;
  [key: string]: unknown;
}

export interface TerminalOptions {
  cols?: number;
  rows?: number;
  /** Reattach to a shell still running after an earlier close(). */
  pid?: number;
  onData?(bytes: Uint8Array): void;
  onReady?(info: { pid: number; reattached: boolean; sandboxRestored?: boolean }): void;
  /** The shell ended (exitCode -1 when it was killed). */
  onExit?(info: { exitCode: number; status: string }): void;
  onError?(error: CodeCanvasError): void;
  onClose?(info: { code: number; reason: string; willReconnect: boolean }): void;
  /** Reconnect to the same shell after a network blip (default true). */
  reconnect?: boolean;
  /** A WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: unknown;
}

export interface Terminal {
  /** The shell's pid once ready. */
  readonly pid: number;
  readonly ready: Promise<{ pid: number; reattached: boolean }>;
  /** Keys typed into the terminal. */
  write(data: string | Uint8Array): void;
  resize(cols: number, rows: number): void;
  /** Ends the shell. */
  kill(): void;
  /** Closes the connection; the shell keeps running (reattach with {pid}). */
  close(): void;
}

/** getExecutionHistory: newest first, with the page's cursor and staleness on the array. */
export type HistoryPage = ExecutionRecord[] & {
  /** Pass as `before` to get the next (older) page; absent on the last page. */
  next?: string;
  /** Answered from the local cache because the worker was unreachable. */
  stale?: boolean;
  /** The array itself (the earlier `{items}` shape). */
  readonly items: ExecutionRecord[];
};

export interface FileEntry { name: string; path: string; type: string; size: number; mtime: string | number }

export interface CallOptions {
  /** Cancels the request; for exec it also kills the command on the worker. */
  signal?: AbortSignal;
}

export interface ExecOptions extends CallOptions {
  useCache?: boolean;
  readOnly?: boolean;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  stdin?: string;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

export interface ConnectOptions {
  workerUrl: string;
  token: string;
  /** Local exec-cache hits are served while younger than this (default 3600000 = 1 h; 0 = never). */
  maxStaleMs?: number;
  /** Persist the cache in IndexedDB (default: when indexedDB exists). */
  persist?: boolean;
  /** IndexedDB database name of the cache; default "codecanvas". */
  cacheName?: string;
  /** Share generation changes with other tabs via BroadcastChannel (default true). */
  broadcast?: boolean;
  /** Deadline of a non-streaming request in ms (default 30000; 0 = none). */
  requestTimeoutMs?: number;
  /** Called when this client learns that a project changed (from a response or another tab). */
  onGeneration?: (projectId: string, generation: number, source: 'worker' | 'tab') => void;
  /** Runs after each save of the local cache to IndexedDB (merged with other tabs'). */
  onSaved?: () => void;
  /** fetch implementation (default globalThis.fetch). */
  fetch?: typeof fetch;
  wasmBinary?: ArrayBuffer | Uint8Array;
  locateFile?: (path: string, prefix: string) => string;
}

export class CodeCanvas {
  static connect(options: ConnectOptions): Promise<CodeCanvas>;
  readonly workerUrl: string;
  /** The worker's hello answer ({server, version, protocol, limits, user}) when online. */
  readonly server?: Record<string, unknown>;
  /** False when the worker was unreachable at connect. */
  readonly online: boolean;
  readonly persistent: boolean;

  executeCommand(command: string, projectId: string, useCacheOrOptions?: boolean | ExecOptions): Promise<ExecutionResult>;
  writeFile(path: string, content: string | Uint8Array, projectId: string, options?: CallOptions): Promise<{ path: string; size: number }>;
  readFile(path: string, projectId: string, options?: CallOptions & { binary?: false }): Promise<string>;
  readFile(path: string, projectId: string, options: CallOptions & { binary: true }): Promise<Uint8Array>;
  listFiles(path: string, projectId: string, options?: CallOptions & { depth?: number }): Promise<FileEntry[]>;
  setupProject(files: Array<{ path: string; content: string | Uint8Array }> | Record<string, string>, projectId: string,
    options?: CallOptions & { install?: string; onStdout?: (t: string) => void; onStderr?: (t: string) => void }):
    Promise<{ ok: boolean; files: number; install?: ExecutionResult }>;
  startDevServer(port: number, projectId: string, options?: CallOptions & { cmd?: string; cwd?: string }):
    Promise<{ started: boolean; url: string; port: number; pid: number }>;
  killProcess(pid: number, projectId: string, options?: CallOptions): Promise<{ killed: boolean }>;
  listProcesses(projectId: string, options?: CallOptions): Promise<unknown[]>;
  getExecutionHistory(projectId: string, limit?: number, options?: CallOptions & { before?: string }): Promise<HistoryPage>;
  getExecutionResult(executionId: string, options?: CallOptions): Promise<ExecutionRecord>;
  getProjectInfo(projectId: string, options?: CallOptions): Promise<ProjectInfo>;
  updateProjectInfo(projectId: string, patch: Record<string, unknown>, options?: CallOptions): Promise<ProjectInfo>;
  clearCache(command: string | null, projectId: string, options?: CallOptions): Promise<{ cleared: number }>;
  listProjects(options?: CallOptions): Promise<ProjectInfo[] & { stale?: boolean }>;
  deleteProject(projectId: string, options?: CallOptions): Promise<{ deleted: boolean }>;
  /** An interactive terminal: a shell on a PTY in the project's sandbox, over a WebSocket. */
  openTerminal(projectId: string, options?: TerminalOptions): Terminal;
  /** Resolves once all cache changes so far are saved in IndexedDB. */
  flush(): Promise<void>;
  /** Cancels requests in flight, saves the cache, releases the module. */
  close(): Promise<void>;
}

/** The raw Emscripten module factory (low level; use CodeCanvas.connect). */
declare function createCodeCanvasModule(overrides?: Record<string, unknown>): Promise<unknown>;
export default createCodeCanvasModule;
