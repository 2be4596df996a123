// tests/lib/worker.mjs: start a real codecanvas-worker for a test or benchmark.
//
//   const sd = await startSandboxd();
//   const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
//   const tok = wk.token('alice');            // `token create`, returns the bearer token
//   const r = await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: 'echo hi' } });
//   await wk.stop();                          // SIGTERM, waits for exit
//
// The binary is $CC_BIN_DIR/codecanvas-worker (or opts.binDir).  The worker gets an ephemeral
// port, a database in a fresh temporary directory (or opts.db, to restart on the same data)
// and, when a sandboxd is given, E2B_API_URL = E2B_SANDBOX_URL = its URL and its API key.
// With CC_TEST_STORE=postgresql in the environment, a worker without opts.db gets a fresh
// database on a PostgreSQL server this process starts once (tests/lib/postgres.mjs), so the
// same test runs on the PostgreSQL back end; opts.db may also be a postgresql:// URI (two
// workers on one database).  We wait for the ready line on stdout, never sleep.  wk.stderr holds everything the worker
// wrote to stderr (including the JSON-lines access log, which goes there by default).
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READY = /^codecanvas-worker: listening on (http:\/\/127\.0\.0\.1:(\d+))$/m;

let sharedPostgres = null;
/** The PostgreSQL server of this test process (started on first use). */
export async function testPostgres() {
  if (!sharedPostgres) {
    const { startPostgres } = await import('./postgres.mjs');
    sharedPostgres = await startPostgres();
  }
  return sharedPostgres;
}
export const onPostgres = process.env.CC_TEST_STORE === 'postgresql';

const isUri = (db) => /^postgres(ql)?:\/\//.test(db);

/** Every row of the database as text (sqlite3 .dump, or pg_dump of a PostgreSQL URI). */
export function dumpDatabase(db) {
  if (isUri(db)) {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    return execFileSync(join(bin, 'pg_dump'), ['--data-only', '--inserts', db], { encoding: 'utf8', maxBuffer: 1 << 28 });
  }
  return execFileSync('sqlite3', [db, '.dump'], { encoding: 'utf8', maxBuffer: 1 << 28 });
}

/** 'ok' when the database is consistent: SQLite's integrity_check; on PostgreSQL, every table
 *  is read in full and its indexes verified with amcheck (the server's own checker). */
export function checkDatabase(db) {
  if (isUri(db)) {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    const sql =
      'CREATE EXTENSION IF NOT EXISTS amcheck; ' +
      "SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " +
      "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam " +
      "WHERE n.nspname = 'public' AND a.amname = 'btree'; " +
      "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tokens) + (SELECT count(*) FROM projects) + " +
      "(SELECT count(*) FROM cache) + (SELECT count(*) FROM records) >= 0";
    const out = execFileSync(join(bin, 'psql'), ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql], { encoding: 'utf8' });
    return out.trim().split('\n').pop() === 't' ? 'ok' : out;
  }
  return execFileSync('sqlite3', [db, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim();
}

export async function startWorker(opts = {}) {
  const binDir = opts.binDir ?? process.env.CC_BIN_DIR;
  if (!binDir) throw new Error('startWorker: CC_BIN_DIR is not set');
  const bin = join(binDir, 'codecanvas-worker');
  const ownDir = opts.db ? null : mkdtempSync(join(opts.tmpDir ?? tmpdir(), 'cc-worker-'));
  const db = opts.db ?? (onPostgres ? (await testPostgres()).createDatabase() : join(ownDir, 'worker.db'));
  const sd = opts.sandboxd;
  const env = { ...process.env };
  for (const k of ['E2B_API_KEY', 'E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_DOMAIN', 'CODECANVAS_CONFIG'])
    delete env[k];
  if (sd) Object.assign(env, { E2B_API_URL: sd.url, E2B_SANDBOX_URL: sd.url, E2B_API_KEY: sd.apiKey });
  Object.assign(env, opts.env ?? {});
  const args = ['serve', '--listen', `127.0.0.1:${opts.port ?? 0}`, '--db', db];
  args.push(...(opts.args ?? []));
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > (opts.keepStderrBytes ?? 64 << 20)) stderr = stderr.slice(-(32 << 20));
    if (opts.stderr) opts.stderr.write(d);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`worker did not get ready in 30 s; stderr:\n${stderr}`));
    }, opts.readyTimeoutMs ?? 30000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = READY.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], port: Number(m[2]) });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code ?? signal}) before ready; stderr:\n${stderr}`));
    });
  });
  let stopped = false;
  let killedHard = false;
  let badExitReported = false;
  let seq = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const cli = (...a) => execFileSync(bin, [...a, '--db', db], { env, encoding: 'utf8' });
  const wk = {
    url: ready.url,
    port: ready.port,
    db,
    dir: ownDir,
    pid: child.pid,
    process: child,
    exited,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    /** Runs a CLI subcommand against this worker's database; returns its stdout. */
    cli,
    /** Creates a token for `user` (`token create`) and returns it. */
    token(user, label = 'test') {
      return cli('token', 'create', '--user', user, '--label', label).trim();
    },
    /** POST /v1/rpc with `msg` (v and id filled in; a string is sent as is); returns
     *  {status, headers (a Headers), body (parsed JSON or null), text}.  Uses node:http with
     *  a keep-alive agent: several times cheaper per request than fetch (load tests). */
    rpc(token, msg, init = {}) {
      const body = typeof msg === 'string' ? msg : JSON.stringify({ v: 1, id: `t${++seq}`, ...msg });
      const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...(init.headers ?? {}) };
      if (token) headers.Authorization = `Bearer ${token}`;
      return new Promise((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port: ready.port, path: '/v1/rpc', method: 'POST', agent, headers, signal: init.signal },
          (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let parsed = null;
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = null;
              }
              const h = new Headers();
              for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
              resolve({ status: res.statusCode, headers: h, body: parsed, text });
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    },
    /** Streaming RPC: calls onLine(obj) per NDJSON line as it arrives; resolves with all lines. */
    async rpcStream(token, msg, { onLine, signal } = {}) {
      const body = JSON.stringify({ v: 1, id: `t${++seq}`, stream: true, ...msg });
      const res = await fetch(`${ready.url}/v1/rpc`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body,
        signal,
      });
      const lines = [];
      let buf = '';
      const dec = new TextDecoder();
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line) continue;
          const obj = JSON.parse(line);
          lines.push(obj);
          if (onLine) await onLine(obj);
        }
      }
      if (buf.trim()) lines.push(JSON.parse(buf));
      return { status: res.status, headers: res.headers, lines };
    },
    /** SIGTERM, then SIGKILL after 20 s; removes the temporary directory unless keep. */
    async stop({ keep = false } = {}) {
      if (!stopped) {
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      }
      const t = setTimeout(() => child.kill('SIGKILL'), 20000);
      const r = await exited;
      agent.destroy();
      clearTimeout(t);
      if (ownDir && !keep) rmSync(ownDir, { recursive: true, force: true });
      // A clean SIGTERM exit is 0; anything else (a sanitizer report, a leak found by
      // LeakSanitizer at exit, a crash) fails the caller's test, once.
      if (!killedHard && !badExitReported && r.code !== 0 && !opts.allowBadExit) {
        badExitReported = true;
        throw new Error(`worker exited with ${r.code ?? r.signal} after SIGTERM; stderr tail:\n${stderr.slice(-4000)}`);
      }
      return r;
    },
    /** SIGKILL (a crash); the database stays for a restart with startWorker({db}). */
    async kill() {
      stopped = true;
      killedHard = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      const r = await exited;
      agent.destroy();
      return r;
    },
    /** Removes the temporary directory (after kill()). */
    cleanup() {
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
  return wk;
}
