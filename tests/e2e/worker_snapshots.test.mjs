// A project's files outlive its sandbox: the worker asks for a pause at the sandbox's timeout
// and resumes it on the next operation; where the sandbox is lost anyway (sandboxd killed,
// the sandbox deleted behind the worker's back) it restores the project's files from its
// own snapshot.  Real worker, real sandboxd, real sandboxes.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

const ok = (r, what = '') => {
  assert.equal(r.status, 200, `${what} ${r.text}`);
  assert.equal(r.body.ok, true, `${what} ${r.text}`);
  return r.body.result;
};

const FAST = ['--rate-limit', '0', '--snapshot-debounce', '100'];

/** Polls getProject (bounded) until pred(info) holds: waits on the worker's state, not a clock. */
async function until(wk, tok, project, pred, what, ms = 30000) {
  const t0 = Date.now();
  for (;;) {
    const info = ok(await wk.rpc(tok, { op: 'getProject', project }));
    if (pred(info)) return info;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Writes the two files of the issue, then waits for a snapshot taken after them. */
async function writeAndSnapshot(wk, tok, project) {
  const t = Date.now();
  ok(await wk.rpc(tok, { op: 'writeFile', project, args: { path: 'src/app.py', content: 'print("hi")\n' } }));
  ok(await wk.rpc(tok, { op: 'writeFile', project, args: { path: 'data/state.txt', content: 'lunch\n' } }));
  return until(wk, tok, project, (i) => i.snapshot?.takenAt >= t && !i.snapshot.pending, 'a snapshot after the writes');
}

async function readBoth(wk, tok, project) {
  const a = ok(await wk.rpc(tok, { op: 'readFile', project, args: { path: 'src/app.py' } }));
  const b = ok(await wk.rpc(tok, { op: 'readFile', project, args: { path: 'data/state.txt' } }));
  assert.equal(a.content, 'print("hi")\n');
  assert.equal(b.content, 'lunch\n');
  return a;
}

test('idle past the sandbox timeout: paused, not killed; the next operation resumes it with files and processes', async () => {
  const sd = await startSandboxd();
  const wk = await startWorker({ sandboxd: sd, args: [...FAST, '--sandbox-timeout', '2'] });
  try {
    const tok = wk.token('alice');
    await writeAndSnapshot(wk, tok, 'p');
    ok(await wk.rpc(tok, { op: 'startDevServer', project: 'p', args: { port: 8123 } }));
    const info = await until(wk, tok, 'p', (i) => i.sandbox?.state === 'paused', 'paused at its timeout');
    const first = await readBoth(wk, tok, 'p');
    assert.equal(first.sandboxRestored, undefined); // resumed, not restored
    const procs = ok(await wk.rpc(tok, { op: 'listProcesses', project: 'p' }));
    assert.ok(JSON.stringify(procs).includes('http.server'), JSON.stringify(procs)); // the dev server came back running
    const after = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.equal(after.sandbox.id, info.sandbox.id); // the same sandbox
    assert.notEqual(after.sandbox.state, 'paused');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('kill -9 of sandboxd and its restart: the files come back from the snapshot, and the result says so', async () => {
  let sd = await startSandboxd();
  const { port, apiKey } = sd;
  const wk = await startWorker({ sandboxd: sd, args: FAST });
  try {
    const tok = wk.token('alice');
    const info = await writeAndSnapshot(wk, tok, 'p');
    sd.process.kill('SIGKILL');
    await sd.exited;
    sd = await startSandboxd({ apiKey, args: ['--listen', `127.0.0.1:${port}`] });
    const first = await readBoth(wk, tok, 'p');
    assert.equal(first.sandboxRestored, true);
    assert.equal(first.restoredFrom, info.snapshot.takenAt);
    const now = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.equal(now.sandbox.state, 'restored');
    // history records it
    const h = ok(await wk.rpc(tok, { op: 'getHistory', project: 'p', args: { limit: 2 } }));
    const rec = h.items.find((r) => r.op === 'readFile' && r.sandboxRestored);
    assert.ok(rec, JSON.stringify(h.items));
    assert.equal(rec.restoredFrom, info.snapshot.takenAt);
    assert.equal(rec.input.path, 'src/app.py'); // the first operation after the loss
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('a sandbox deleted behind the worker\'s back, and a kill -9 of the worker: nothing is lost', async () => {
  const sd = await startSandboxd();
  let wk = await startWorker({ sandboxd: sd, args: FAST });
  try {
    const tok = wk.token('alice');
    const info = await writeAndSnapshot(wk, tok, 'p');
    const del = await fetch(`${sd.url}/sandboxes/${info.sandboxId}`, { method: 'DELETE', headers: { 'X-API-KEY': sd.apiKey } });
    assert.equal(del.status, 204);
    const first = await readBoth(wk, tok, 'p');
    assert.equal(first.sandboxRestored, true);

    // the worker dies and comes back on the same database: files and snapshot are still there
    const dbPath = wk.db;
    await wk.kill();
    wk = await startWorker({ sandboxd: sd, db: dbPath, args: FAST });
    const tok2 = wk.token('alice');
    const again = await readBoth(wk, tok2, 'p');
    assert.equal(again.sandboxRestored, undefined);
    const p = ok(await wk.rpc(tok2, { op: 'getProject', project: 'p' }));
    assert.ok(p.snapshot.takenAt >= info.snapshot.takenAt);
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('changes not in a snapshot yet are shown as pending, and a deleted project has none', async () => {
  const sd = await startSandboxd();
  // quiet for ten minutes before a snapshot: nothing is stored during this test
  const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--snapshot-debounce', '600000'] });
  try {
    const tok = wk.token('alice');
    ok(await wk.rpc(tok, { op: 'updateProject', project: 'p', args: { patch: { name: 'P' } } }));
    const fresh = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.equal(fresh.snapshot, undefined, 'no files touched: nothing to save');
    ok(await wk.rpc(tok, { op: 'writeFile', project: 'p', args: { path: 'a.txt', content: 'a\n' } }));
    const info = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.deepEqual(info.snapshot, { pending: true }, 'changed, no copy stored yet');
    ok(await wk.rpc(tok, { op: 'deleteProject', project: 'p' }));
    ok(await wk.rpc(tok, { op: 'updateProject', project: 'p', args: { patch: { name: 'P' } } }));
    const again = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.equal(again.snapshot, undefined, 'the deleted project\'s pending snapshot was dropped');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('over the size limit: heavy directories are left out and the snapshot says which', async () => {
  const sd = await startSandboxd();
  const wk = await startWorker({ sandboxd: sd, args: [...FAST, '--snapshot-max-bytes', '200000'] });
  try {
    const tok = wk.token('alice');
    const t = Date.now();
    ok(await wk.rpc(tok, { op: 'exec', project: 'big', args: { cmd: 'mkdir -p node_modules/x src && head -c 2000000 /dev/urandom > node_modules/x/blob && echo keep > src/a.txt', useCache: false } }));
    const info = await until(wk, tok, 'big', (i) => i.snapshot?.takenAt >= t, 'a snapshot');
    assert.equal(info.snapshot.partial, true);
    assert.deepEqual(info.snapshot.excluded, ['node_modules']);
    assert.ok(info.snapshot.bytes <= 200000);
    const del = await fetch(`${sd.url}/sandboxes/${info.sandboxId}`, { method: 'DELETE', headers: { 'X-API-KEY': sd.apiKey } });
    assert.equal(del.status, 204);
    const a = ok(await wk.rpc(tok, { op: 'readFile', project: 'big', args: { path: 'src/a.txt' } }));
    assert.equal(a.content, 'keep\n');
    assert.equal(a.sandboxRestored, true);
    const gone = await wk.rpc(tok, { op: 'readFile', project: 'big', args: { path: 'node_modules/x/blob' } });
    assert.equal(gone.body.error.code, 'not_found');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('a deleted project stays deleted: no snapshot, no sandbox, nothing comes back', async () => {
  const sd = await startSandboxd();
  const wk = await startWorker({ sandboxd: sd, args: FAST });
  try {
    const tok = wk.token('alice');
    const info = await writeAndSnapshot(wk, tok, 'p');
    ok(await wk.rpc(tok, { op: 'deleteProject', project: 'p' }));
    const r = await fetch(`${sd.url}/sandboxes/${info.sandboxId}`, { headers: { 'X-API-KEY': sd.apiKey } });
    assert.equal(r.status, 404);
    // the same name again is a new, empty project
    ok(await wk.rpc(tok, { op: 'writeFile', project: 'p', args: { path: 'new.txt', content: 'x' } }));
    const old = await wk.rpc(tok, { op: 'readFile', project: 'p', args: { path: 'src/app.py' } });
    assert.equal(old.body.error.code, 'not_found');
    const p = ok(await wk.rpc(tok, { op: 'getProject', project: 'p' }));
    assert.ok(!p.snapshot?.takenAt || p.snapshot.takenAt > info.snapshot.takenAt, JSON.stringify(p.snapshot));
    assert.equal(p.sandbox.state, 'new');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});

test('a project bigger than one file may be (5 MB over the 4 MiB file limit) is restored whole', async () => {
  const sd = await startSandboxd();
  const wk = await startWorker({ sandboxd: sd, args: FAST });
  try {
    const tok = wk.token('alice');
    const t = Date.now();
    ok(await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: 'head -c 5000000 /dev/urandom > big.bin && sha256sum big.bin > sum', useCache: false } }));
    const info = await until(wk, tok, 'p', (i) => i.snapshot?.takenAt >= t, 'a snapshot');
    assert.ok(info.snapshot.bytes > 4 * 1024 * 1024, JSON.stringify(info.snapshot));
    const del = await fetch(`${sd.url}/sandboxes/${info.sandboxId}`, { method: 'DELETE', headers: { 'X-API-KEY': sd.apiKey } });
    assert.equal(del.status, 204);
    const r = ok(await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: 'sha256sum -c sum && wc -c < big.bin', useCache: false } }));
    assert.equal(r.sandboxRestored, true);
    assert.equal(r.stdout, 'big.bin: OK\n5000000\n');
  } finally {
    await wk.stop();
    await sd.stop();
  }
});
