// scripts/run, the README's command that runs the product, supervises its two servers: when
// sandboxd or the worker dies it says which, how, and the end of its log, starts it again on
// the same address, and the page's operations work again; Ctrl-C stops everything.
// Runs the programs of this build (CODECANVAS_BIN_DIR) with a private data dir and port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const src = process.env.CC_SOURCE_DIR;
const binDir = process.env.CC_BIN_DIR;

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Output of scripts/run, with a wait for a line matching a pattern (no sleeps). */
function watch(child) {
  let text = '';
  const waiters = [];
  const feed = (d) => {
    text += d;
    for (const w of [...waiters]) {
      const m = w.re.exec(text.slice(w.from));
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  };
  child.stdout.setEncoding('utf8').on('data', feed);
  child.stderr.setEncoding('utf8').on('data', feed);
  return {
    get text() {
      return text;
    },
    mark: () => text.length,
    until(re, from = 0, ms = 60000) {
      const m = re.exec(text.slice(from));
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const w = { re, from, resolve };
        w.timer = setTimeout(() => reject(new Error(`no ${re} in scripts/run output:\n${text}`)), ms);
        waiters.push(w);
      });
    },
  };
}

async function exec(url, token, cmd) {
  const r = await fetch(`${url}/v1/rpc`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ v: 1, id: 'r', op: 'exec', project: 'sup', args: { cmd, useCache: false } }),
  });
  return { status: r.status, body: await r.json() };
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('scripts/run restarts a dead sandboxd and a dead worker, and Ctrl-C stops both', async () => {
  const data = mkdtempSync(join(tmpdir(), 'cc-run-'));
  const port = await freePort();
  const child = spawn(join(src, 'scripts/run'), [], {
    cwd: src,
    env: { ...process.env, CODECANVAS_BIN_DIR: binDir, CODECANVAS_DATA_DIR: data, CODECANVAS_LISTEN: `127.0.0.1:${port}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = watch(child);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    const [, url, token] = await out.until(/open {2}(http:\/\/127\.0\.0\.1:\d+)\/#token=(\S+)/);
    const sbxPid = Number((await out.until(/run: sandboxd at \S+ \(pid (\d+)/))[1]);
    const wkPid = Number((await out.until(/run: worker at \S+ \(pid (\d+)/))[1]);
    assert.match(out.text, /run: sandboxd: .*egress: /); // the runtime's report, egress included
    let r = await exec(url, token, 'echo one');
    assert.equal(r.body.result?.stdout, 'one\n', JSON.stringify(r.body));

    // sandboxd dies: said, with its log; restarted on the same port; operations work again
    let from = out.mark();
    process.kill(sbxPid, 'SIGKILL');
    await out.until(/run: sandboxd \(pid \d+\) killed by signal KILL after \d+ s; last lines of \S+sandboxd\.log:\nrun: {3}\| /, from);
    const sbxPid2 = Number((await out.until(/run: sandboxd is back \(pid (\d+)\)/, from))[1]);
    assert.notEqual(sbxPid2, sbxPid);
    r = await exec(url, token, 'echo two');
    assert.equal(r.body.result?.stdout, 'two\n', JSON.stringify(r.body));
    assert.equal(r.body.result?.sandboxRecreated, true); // its sandboxes died with it

    // the worker dies: the same, on the same listen address and database
    from = out.mark();
    process.kill(wkPid, 'SIGKILL');
    await out.until(/run: worker \(pid \d+\) killed by signal KILL after \d+ s; last lines of \S+worker\.log:/, from);
    const wkPid2 = Number((await out.until(/run: worker is back \(pid (\d+)\)/, from))[1]);
    r = await exec(url, token, 'echo three');
    assert.equal(r.body.result?.stdout, 'three\n', JSON.stringify(r.body));

    // Ctrl-C: both stop, and nothing is restarted
    child.kill('SIGINT');
    const e = await exited;
    assert.deepEqual(e, { code: 0, signal: null }, out.text);
    assert.match(out.text, /run: stopped\n$/);
    assert.equal(alive(sbxPid2), false);
    assert.equal(alive(wkPid2), false);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
});
