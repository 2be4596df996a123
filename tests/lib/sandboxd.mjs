// tests/lib/sandboxd.mjs: start a real codecanvas-sandboxd for a test or benchmark.
//
//   const sd = await startSandboxd({ args: ['--max-sandboxes', '8'] });
//   // sd.url = 'http://127.0.0.1:<port>', sd.port, sd.apiKey, sd.stateDir, sd.pid
//   await sd.stop();   // SIGTERM, waits for exit, removes the state dir
//
// The binary is $CC_BIN_DIR/codecanvas-sandboxd (or opts.binDir).  The server gets an
// ephemeral port, a fresh temporary state dir and a freshly generated API key (passed in
// CODECANVAS_SANDBOXD_API_KEYS).  We wait for its ready line on stdout, never sleep.
// sd.env() gives the environment the official E2B SDK needs to talk to it.
// opts.wrap = [cmd, ...args] runs `cmd ...args <sandboxd> <its args>` instead (e.g. unshare,
// to stage another host's /dev in a private mount namespace).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READY = /^codecanvas-sandboxd: listening on (https?:\/\/127\.0\.0\.1:(\d+))$/m;

export async function startSandboxd(opts = {}) {
  const binDir = opts.binDir ?? process.env.CC_BIN_DIR;
  if (!binDir) throw new Error('startSandboxd: CC_BIN_DIR is not set');
  // opts.stateDir: reuse a state dir (a restart); it is then left in place by stop()
  const stateDir = opts.stateDir ?? mkdtempSync(join(opts.tmpDir ?? tmpdir(), 'cc-sandboxd-'));
  const apiKey = opts.apiKey ?? `e2b_${randomBytes(20).toString('hex')}`;
  const args = ['--listen', '127.0.0.1:0', '--state-dir', stateDir, ...(opts.args ?? [])];
  const bin = join(binDir, 'codecanvas-sandboxd');
  const [cmd, ...argv] = opts.wrap ? [...opts.wrap, bin, ...args] : [bin, ...args];
  const child = spawn(cmd, argv, {
    env: { ...process.env, CODECANVAS_SANDBOXD_API_KEYS: apiKey, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
    if (opts.stderr) opts.stderr.write(d);
    else if (process.env.CC_SANDBOXD_STDERR) process.stderr.write(d); // debugging aid
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sandboxd did not get ready in 30 s; stderr:\n${stderr}`));
    }, opts.readyTimeoutMs ?? 30000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = READY.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], port: Number(m[2]) });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sandboxd exited (${code ?? signal}) before ready; stderr:\n${stderr}`));
    });
  });
  child.stdout.resume();
  let stopped = false;
  return {
    url: ready.url,
    port: ready.port,
    apiKey,
    stateDir,
    pid: child.pid,
    process: child,
    exited,
    get stderr() {
      return stderr;
    },
    /** Environment for the official SDK (E2B_API_URL/E2B_SANDBOX_URL/E2B_API_KEY). */
    env() {
      return { E2B_API_URL: ready.url, E2B_SANDBOX_URL: ready.url, E2B_API_KEY: apiKey };
    },
    /** Stops the server (SIGTERM, then SIGKILL after 15 s) and removes its state dir (and
     * the mounts it keeps there for paused sandboxes). */
    async stop() {
      if (stopped) return exited;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15000);
      const r = await exited;
      clearTimeout(t);
      if (!opts.stateDir) {
        // disks sandboxd keeps mounted for sandboxes left paused (a writable system) go first
        const sys = join(stateDir, 'sys');
        if (existsSync(sys)) spawnSync('umount', ['--recursive', '--lazy', sys]);
        rmSync(stateDir, { recursive: true, force: true });
      }
      return r;
    },
  };
}
