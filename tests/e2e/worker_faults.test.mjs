// codecanvas-worker under faults: sandboxd dies mid-command, the worker is SIGKILLed mid-exec,
// a sandbox expires, SIGTERM with a command in flight.  Real processes only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Sandbox } from 'e2b';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker, checkDatabase, onPostgres } from '../lib/worker.mjs';

const ok = (r, what = '') => {
  assert.equal(r.status, 200, `${what} ${r.text}`);
  assert.equal(r.body.ok, true, `${what} ${r.text}`);
  return r.body.result;
};

/* Waits until the newest record of the project is running (the command is in the sandbox). */
async function untilRunning(wk, tok, project) {
  for (;;) {
    const h = await wk.rpc(tok, { op: 'getHistory', project, args: { limit: 1 } });
    if (h.status === 200 && h.body.result.items[0]?.status === 'running') return h.body.result.items[0].id;
  }
}

test('sandboxd killed during a command: sandbox_unavailable; the next op succeeds once it is back', async () => {
  let sd = await startSandboxd({ args: ['--no-internet'] });
  const port = sd.port;
  const apiKey = sd.apiKey;
  const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  try {
    const t = wk.token('alice');
    ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo warm' } }));
    const pending = wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'sleep 600' } });
    const id = await untilRunning(wk, t, 'p');
    sd.process.kill('SIGKILL');
    await sd.exited;
    const r = await pending;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.error.code, 'sandbox_unavailable');
    assert.equal(r.body.error.retryable, true);
    const rec = ok(await wk.rpc(t, { op: 'getResult', args: { executionId: id } }));
    assert.equal(rec.status, 'error');
    assert.equal(rec.error.code, 'sandbox_unavailable');
    // While it is down: still sandbox_unavailable, and the worker keeps serving.
    const down = await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo down', useCache: false } });
    assert.equal(down.body.error.code, 'sandbox_unavailable');
    assert.equal((await fetch(`${wk.url}/healthz`)).status, 200);
    // Back on the same port (its old sandboxes are gone): the worker re-creates the sandbox.
    sd = await startSandboxd({ apiKey, args: ['--no-internet', '--listen', `127.0.0.1:${port}`] });
    const back = ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo back' } }));
    assert.equal(back.stdout, 'back\n');
    assert.equal(back.sandboxRecreated, true);
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('worker SIGKILLed during a long exec: on restart the record is error/internal, nothing else lost', async () => {
  const sd = await startSandboxd({ args: ['--no-internet'] });
  let wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  const db = wk.db;
  try {
    const t = wk.token('alice');
    const done = ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo kept' } }));
    ok(await wk.rpc(t, { op: 'updateProject', project: 'p', args: { patch: { name: 'Kept' } } }));
    const pending = wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'sleep 600' } }).catch((e) => e);
    const id = await untilRunning(wk, t, 'p');
    await wk.kill();
    await pending;
    wk = await startWorker({ sandboxd: sd, db, args: ['--rate-limit', '0'] });
    let rec;
    if (onPostgres) {
      // Several workers share the database: the one that starts next (or any other) sweeps the
      // records of a worker whose session ended, once its registration is 2 s stale.
      const deadline = Date.now() + 15000;
      while ((rec = ok(await wk.rpc(t, { op: 'getResult', args: { executionId: id } }))).status !== 'error' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      assert.match(wk.stderr, /1 record\(s\) of a worker that is gone marked error\/internal/);
    } else {
      assert.match(wk.stderr, /1 interrupted record\(s\) marked error\/internal/);
      rec = ok(await wk.rpc(t, { op: 'getResult', args: { executionId: id } }));
    }
    assert.equal(rec.status, 'error');
    assert.equal(rec.error.code, 'internal');
    assert.deepEqual(rec.input, { cmd: 'sleep 600' });
    const kept = ok(await wk.rpc(t, { op: 'getResult', args: { executionId: done.id } }));
    assert.equal(kept.stdout, 'kept\n');
    assert.equal(kept.status, 'success');
    assert.equal(ok(await wk.rpc(t, { op: 'getProject', project: 'p' })).name, 'Kept');
    assert.equal(ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo kept' } })).cached, true);
    const h = ok(await wk.rpc(t, { op: 'getHistory', project: 'p' }));
    assert.deepEqual(h.items.map((i) => i.id), [id, done.id]);
    assert.equal(checkDatabase(db), 'ok');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('an expired sandbox is re-created transparently (sandboxRecreated, generation bumped)', async () => {
  const sd = await startSandboxd({ args: ['--no-internet'] });
  const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  try {
    const t = wk.token('alice');
    ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo one' } }));
    const before = await wk.rpc(t, { op: 'getProject', project: 'p' });
    const old = before.body.result.sandboxId;
    assert.equal(await Sandbox.kill(old, { apiKey: sd.apiKey, apiUrl: sd.url }), true);
    const r = ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo two' } }));
    assert.equal(r.stdout, 'two\n');
    assert.equal(r.sandboxRecreated, true);
    const after = await wk.rpc(t, { op: 'getProject', project: 'p' });
    assert.notEqual(after.body.result.sandboxId, old);
    assert.ok(after.body.generation > before.body.generation);
    assert.equal(ok(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo one' } })).cached, false,
      'the cache made in the old sandbox is stale');
    // Files too: the write goes to the new sandbox after the old one vanished.
    await Sandbox.kill(after.body.result.sandboxId, { apiKey: sd.apiKey, apiUrl: sd.url });
    const w = ok(await wk.rpc(t, { op: 'writeFile', project: 'p', args: { path: 'f.txt', content: 'F' } }));
    assert.equal(w.sandboxRecreated, true);
    assert.equal(ok(await wk.rpc(t, { op: 'readFile', project: 'p', args: { path: 'f.txt' } })).content, 'F');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('SIGTERM with a command in flight: it is canceled and recorded, the process is killed', async () => {
  const sd = await startSandboxd({ args: ['--no-internet'] });
  let wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--shutdown-grace', '300'] });
  const db = wk.db;
  try {
    const t = wk.token('alice');
    const pending = wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'exec sleep 600' } }).catch((e) => e);
    const id = await untilRunning(wk, t, 'p');
    const sandboxId = ok(await wk.rpc(t, { op: 'getProject', project: 'p' })).sandboxId;
    const { code } = await wk.stop({ keep: true });
    assert.equal(code, 0);
    const r = await pending;
    if (!(r instanceof Error)) assert.equal(r.body.error.code, 'sandbox_unavailable');
    assert.match(wk.stderr, /canceling 1 operation/);
    wk = await startWorker({ sandboxd: sd, db, args: ['--rate-limit', '0'] });
    const rec = ok(await wk.rpc(t, { op: 'getResult', args: { executionId: id } }));
    assert.equal(rec.status, 'canceled');
    const sbx = await Sandbox.connect(sandboxId, { apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url });
    const procs = await sbx.commands.list();
    assert.ok(!procs.some((p) => (p.args ?? []).join(' ').includes('sleep 600')), JSON.stringify(procs));
  } finally {
    await wk.stop();
    await sd.stop();
  }
});
