// Several codecanvas-workers on one PostgreSQL database act as one service (issue 13): a real
// PostgreSQL server of the test's own (tests/lib/postgres.mjs), one real sandboxd, two (or three)
// real workers on the same database URI, HTTP on 127.0.0.1.  Files, generations and the cache
// cross workers; a project's operations run one at a time in arrival order across workers while
// different projects run in parallel; a revoked token is refused by every worker at once; a
// worker that dies releases its projects and its interrupted records are swept by the others;
// PostgreSQL stopped and started again: fast upstream_error, /healthz says so, then recovery.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres } from '../lib/postgres.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

const ok = (r, what = '') => {
  assert.equal(r.status, 200, `${what} ${r.text}`);
  assert.equal(r.body.ok, true, `${what} ${r.text}`);
  return r.body.result;
};

/* Waits until the newest record of the project is running (its command is in the sandbox). */
async function untilRunning(wk, tok, project) {
  for (;;) {
    const h = await wk.rpc(tok, { op: 'getHistory', project, args: { limit: 1 } });
    if (h.status === 200 && h.body.result.items[0]?.status === 'running') return h.body.result.items[0].id;
  }
}

let pg, sd, db, w1, w2, tok;
const ARGS = ['--rate-limit', '0'];

before(async () => {
  pg = await startPostgres();
  sd = await startSandboxd({ args: ['--no-internet'] });
  db = pg.createDatabase();
  [w1, w2] = await Promise.all([startWorker({ sandboxd: sd, db, args: ARGS }), startWorker({ sandboxd: sd, db, args: ARGS })]);
  tok = w1.token('alice');
});

after(async () => {
  await w1?.stop();
  await w2?.stop();
  await sd?.stop();
  pg?.destroy();
});

test('workers starting at once on an empty database all come up (the schema is made once)', async () => {
  const fresh = pg.createDatabase();
  const ws = await Promise.all([0, 1, 2].map(() => startWorker({ sandboxd: sd, db: fresh, args: ARGS })));
  try {
    assert.equal(pg.sql('SELECT count(*) FROM cc_schema', fresh.split('/').pop()).trim(), '1');
    const t = ws[0].token('zed');
    for (const w of ws) assert.equal(ok(await w.rpc(t, { op: 'hello' })).user, 'zed');
  } finally {
    await Promise.all(ws.map((w) => w.stop()));
  }
});

test('a file written through worker 1 is read through worker 2 (one sandbox per project)', async () => {
  ok(await w1.rpc(tok, { op: 'writeFile', project: 'files', args: { path: 'a.txt', content: 'from one' } }));
  const r = ok(await w2.rpc(tok, { op: 'readFile', project: 'files', args: { path: 'a.txt' } }));
  assert.equal(r.content, 'from one');
  const p1 = ok(await w1.rpc(tok, { op: 'getProject', project: 'files' }));
  const p2 = ok(await w2.rpc(tok, { op: 'getProject', project: 'files' }));
  assert.equal(p1.sandboxId, p2.sandboxId);
  assert.equal(p1.generation, p2.generation);
});

test('a write through worker 2 invalidates an exec cached through worker 1; generations agree', async () => {
  ok(await w1.rpc(tok, { op: 'writeFile', project: 'cache', args: { path: 'v.txt', content: 'one' } }));
  const first = ok(await w1.rpc(tok, { op: 'exec', project: 'cache', args: { cmd: 'cat v.txt' } }));
  assert.equal(first.stdout, 'one');
  const hit = ok(await w1.rpc(tok, { op: 'exec', project: 'cache', args: { cmd: 'cat v.txt' } }));
  assert.equal(hit.cached, true);
  // the other worker serves the same cache entry: it lives in the database
  const hit2 = ok(await w2.rpc(tok, { op: 'exec', project: 'cache', args: { cmd: 'cat v.txt' } }));
  assert.equal(hit2.cached, true);
  const g0 = (await w1.rpc(tok, { op: 'getProject', project: 'cache' })).body.generation;
  const wr = await w2.rpc(tok, { op: 'writeFile', project: 'cache', args: { path: 'v.txt', content: 'two' } });
  ok(wr);
  assert.ok(wr.body.generation > g0, 'the write moved the generation');
  const again = ok(await w1.rpc(tok, { op: 'exec', project: 'cache', args: { cmd: 'cat v.txt' } }));
  assert.notEqual(again.cached, true);
  assert.equal(again.stdout, 'two');
  const g1 = (await w1.rpc(tok, { op: 'getProject', project: 'cache' })).body.generation;
  const g2 = (await w2.rpc(tok, { op: 'getProject', project: 'cache' })).body.generation;
  assert.equal(g1, g2, 'both workers answer the database generation (the client cache rule)');
});

test('one project runs one operation at a time in arrival order across workers; others run in parallel', async () => {
  ok(await w1.rpc(tok, { op: 'exec', project: 'order', args: { cmd: 'true' } }));
  ok(await w1.rpc(tok, { op: 'exec', project: 'other', args: { cmd: 'true' } }));
  // A long operation through worker 1 ...
  const slow = w1.rpc(tok, { op: 'exec', project: 'order', args: { cmd: 'sleep 2; echo first >> log.txt', useCache: false } });
  await untilRunning(w1, tok, 'order');
  // ... then one through worker 2, arriving later: it must wait for the first to finish.
  const t0 = performance.now();
  const second = w2.rpc(tok, { op: 'exec', project: 'order', args: { cmd: 'echo second >> log.txt; cat log.txt', useCache: false } });
  // Meanwhile another project, through worker 2, is not held up.
  const other = ok(await w2.rpc(tok, { op: 'exec', project: 'other', args: { cmd: 'echo free', useCache: false } }));
  const otherMs = performance.now() - t0;
  assert.equal(other.stdout, 'free\n');
  const [a, b] = await Promise.all([slow, second]);
  ok(a);
  assert.equal(ok(b).stdout, 'first\nsecond\n', 'the later operation ran after the earlier one');
  const secondMs = performance.now() - t0;
  assert.ok(otherMs < secondMs, `the other project (${otherMs} ms) finished before the queued one (${secondMs} ms)`);
});

test('a token revoked with the CLI is refused by every worker from the next request on', async () => {
  const t = w1.token('bob', 'to-revoke');
  // Both workers remember the token (their memo), and a cached result of bob's.
  for (const w of [w1, w2]) for (let i = 0; i < 3; i++) assert.equal((await w.rpc(t, { op: 'hello' })).status, 200);
  const id = JSON.parse(w2.cli('token', 'list', '--user', 'bob')).find((x) => x.label === 'to-revoke').id;
  w2.cli('token', 'revoke', '--user', 'bob', '--id', String(id));
  // The revocation committed before these requests began: the change feed retires what the
  // workers remembered before they answer (issue 13 allows 1 s; it takes none).
  for (const w of [w1, w2]) {
    const r = await w.rpc(t, { op: 'hello' });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.body.error.code, 'unauthorized');
  }
});

test('a cached result remembered by worker 1 is not served after a write through worker 2', async () => {
  ok(await w1.rpc(tok, { op: 'writeFile', project: 'memo', args: { path: 'm.txt', content: 'v1' } }));
  ok(await w1.rpc(tok, { op: 'exec', project: 'memo', args: { cmd: 'cat m.txt' } }));
  for (let i = 0; i < 5; i++) assert.equal(ok(await w1.rpc(tok, { op: 'exec', project: 'memo', args: { cmd: 'cat m.txt' } })).cached, true);
  for (let round = 0; round < 20; round++) {
    ok(await w2.rpc(tok, { op: 'writeFile', project: 'memo', args: { path: 'm.txt', content: `v${round + 2}` } }));
    const r = ok(await w1.rpc(tok, { op: 'exec', project: 'memo', args: { cmd: 'cat m.txt' } }));
    assert.equal(r.stdout, `v${round + 2}`, `round ${round}: worker 1 must not serve what it remembered`);
    assert.equal(ok(await w1.rpc(tok, { op: 'exec', project: 'memo', args: { cmd: 'cat m.txt' } })).cached, true);
  }
});

test('a worker killed mid-operation: its project is free at once, its record is swept by the others', async () => {
  const w3 = await startWorker({ sandboxd: sd, db, args: ARGS });
  ok(await w3.rpc(tok, { op: 'exec', project: 'crash', args: { cmd: 'true' } }));
  const pending = w3.rpc(tok, { op: 'exec', project: 'crash', args: { cmd: 'sleep 600', useCache: false } }).catch((e) => e);
  const id = await untilRunning(w3, tok, 'crash');
  await w3.kill();
  await pending;
  // The dead worker's advisory lock went with its session: worker 2 runs on the project now.
  const next = ok(await w2.rpc(tok, { op: 'exec', project: 'crash', args: { cmd: 'echo after', useCache: false } }));
  assert.equal(next.stdout, 'after\n');
  // Its interrupted record is marked error/internal by a sweep of the live workers.
  const deadline = Date.now() + 15000;
  let rec;
  while ((rec = ok(await w2.rpc(tok, { op: 'getResult', args: { executionId: id } }))).status !== 'error' && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  assert.equal(rec.status, 'error');
  assert.equal(rec.error.code, 'internal');
  assert.match(w1.stderr + w2.stderr, /record\(s\) of a worker that is gone marked error\/internal/);
});

test('PostgreSQL stopped: fast upstream_error and /healthz 503; started again: the workers recover by themselves', async () => {
  const before = ok(await w1.rpc(tok, { op: 'exec', project: 'pgdown', args: { cmd: 'echo kept' } }));
  pg.stop();
  try {
    const t0 = performance.now();
    const r = await w1.rpc(tok, { op: 'getProject', project: 'pgdown' });
    const ms = performance.now() - t0;
    assert.equal(r.status, 502, r.text);
    assert.equal(r.body.error.code, 'upstream_error');
    assert.equal(r.body.error.retryable, true);
    assert.match(r.body.error.message, /database/);
    // where the database is stays with the operator: no host or port in what users see
    assert.ok(!r.text.includes(String(pg.port)) && !r.text.includes('127.0.0.1'), r.text);
    assert.ok(ms < 2000, `failed in ${ms} ms`);
    // the worker that just met the outage says so at once (the others at their next check)
    const hb = await fetch(`${w1.url}/healthz`);
    assert.equal(hb.status, 503);
    const body = await hb.json();
    assert.equal(body.status, 'database_unreachable');
    assert.equal(body.store, 'postgresql');
    assert.ok(!JSON.stringify(body).includes(String(pg.port)), 'no database address in /healthz');
    assert.match(w1.stderr, /database unreachable: .*PostgreSQL unreachable/, 'the reason is in the log');
  } finally {
    pg.start();
  }
  // Back: the first request after the restart already works (dead connections are retried).
  const again = ok(await w1.rpc(tok, { op: 'getResult', args: { executionId: before.id } }));
  assert.equal(again.stdout, 'kept\n', 'what was acknowledged before the outage is there');
  ok(await w2.rpc(tok, { op: 'exec', project: 'pgdown', args: { cmd: 'echo back', useCache: false } }));
  let hb = await fetch(`${w2.url}/healthz`);
  for (let i = 0; i < 50 && hb.status !== 200; i++) {
    await new Promise((res) => setTimeout(res, 100));
    hb = await fetch(`${w2.url}/healthz`);
  }
  assert.equal(hb.status, 200);
  // sandboxes still belong to their projects: the E2B side was untouched
  const info = ok(await w2.rpc(tok, { op: 'getProject', project: 'pgdown' }));
  const res = await fetch(`${sd.url}/sandboxes`, { headers: { 'X-API-KEY': sd.apiKey } });
  assert.ok((await res.json()).some((s) => s.sandboxID === info.sandboxId));
});

test('PostgreSQL crashes (SIGKILL) under writes: every acknowledged write survives its recovery', async () => {
  // Writes through both workers; the server is killed while some are in flight.
  const acked = [];
  let stop = false;
  const writer = async (w, name) => {
    for (let i = 0; !stop && i < 400; i++) {
      const r = await w.rpc(tok, { op: 'updateProject', project: 'crashdb', args: { patch: { [`${name}${i}`]: i } } });
      if (r.status === 200) acked.push(`${name}${i}`);
      else assert.equal(r.body.error.code, 'upstream_error', r.text); // never anything else
    }
  };
  ok(await w1.rpc(tok, { op: 'updateProject', project: 'crashdb', args: { patch: { first: 0 } } }));
  const running = Promise.all([writer(w1, 'a'), writer(w2, 'b')]);
  while (acked.length < 20) await new Promise((r) => setTimeout(r, 5));
  pg.kill();
  const ackedBefore = acked.length;
  try {
    // while it is down: failures are upstream_error (checked in the writers)
    const r = await w1.rpc(tok, { op: 'getProject', project: 'crashdb' });
    assert.equal(r.body.error.code, 'upstream_error', r.text);
  } finally {
    stop = true;
    await running;
    pg.start(); // crash recovery from the WAL
  }
  const info = ok(await w2.rpc(tok, { op: 'getProject', project: 'crashdb' }));
  const missing = acked.filter((k) => info[k] === undefined);
  assert.deepEqual(missing, [], `acknowledged before the crash but lost: ${missing.join(',')}`);
  assert.ok(ackedBefore >= 20);
});
