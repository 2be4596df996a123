// `codecanvas-worker migrate --from FILE --to URI`: a SQLite deployment that did real work (two
// users, tokens, one revoked, cached execs, files, metadata, history, a snapshot, a command cut
// short by a crash) is copied into a fresh PostgreSQL database, and a worker started on that
// database serves all of it: the same tokens, projects, history, cache and files.  A database
// that already holds data is refused and left as it was.  Real worker, sandboxd and PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startPostgres } from '../lib/postgres.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker, dumpDatabase, checkDatabase } from '../lib/worker.mjs';

const BIN = join(process.env.CC_BIN_DIR ?? '', 'codecanvas-worker');
const FAST = ['--rate-limit', '0', '--snapshot-debounce', '100'];

const ok = (r, what = '') => {
  assert.equal(r.status, 200, `${what} ${r.text}`);
  assert.equal(r.body.ok, true, `${what} ${r.text}`);
  return r.body.result;
};

/** Runs `codecanvas-worker migrate ARGS`; returns {code, stdout, stderr}. */
function migrate(...args) {
  const r = spawnSync(BIN, ['migrate', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** sha256 of the SQLite file and of its WAL: what "opened read-only" must keep.  A missing
 *  WAL and an empty one are the same (any reader of a WAL database may create an empty one). */
function fingerprint(db) {
  const hash = (f) => (existsSync(f) && statSync(f).size ? createHash('sha256').update(readFileSync(f)).digest('hex') : 'none');
  return { db: hash(db), wal: hash(`${db}-wal`) };
}

/** pg_dump's rows, without the random \\restrict key it prints on each run. */
const dump = (uri) => dumpDatabase(uri).replace(/^\\(un)?restrict .*$/gm, '');

/** A URI with a password the server ignores (trust authentication): it must never be printed. */
const withPassword = (uri) => uri.replace('postgresql://postgres@', 'postgresql://postgres:sekrit-pw@');

/** Polls getProject (bounded) until pred(info) holds. */
async function until(wk, tok, project, pred, what, ms = 30000) {
  const t0 = Date.now();
  for (;;) {
    const info = ok(await wk.rpc(tok, { op: 'getProject', project }));
    if (pred(info)) return info;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function untilRunning(wk, tok, project) {
  for (;;) {
    // (the exec creates the project: until it has, getHistory may answer not_found)
    const r = await wk.rpc(tok, { op: 'getHistory', project, args: { limit: 1 } });
    const h = r.status === 404 && r.body?.error?.code === 'not_found' ? { items: [] } : ok(r);
    if (h.items[0]?.status === 'running') return h.items[0].id;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** getProject without what is live rather than stored (the sandbox's state as this worker sees it). */
const stored = (info) => {
  const { sandbox, ...rest } = info;
  return rest;
};

test('a SQLite deployment moved to PostgreSQL: tokens, projects, history, cache and files all carry over', async (t) => {
  const sd = await startSandboxd();
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'cc-migrate-'));
  const db = join(dir, 'worker.db');
  let wk = await startWorker({ sandboxd: sd, db, args: FAST });
  let wk2 = null;
  try {
    // ---- real work on SQLite
    const alice = wk.token('alice', 'laptop');
    const old = wk.token('alice', 'old');
    const bob = wk.token('bob', 'ci');
    const listed = JSON.parse(wk.cli('token', 'list', '--user', 'alice'));
    const oldId = listed.find((t) => t.label === 'old').id;
    wk.cli('token', 'revoke', '--user', 'alice', '--id', String(oldId));
    assert.equal((await wk.rpc(old, { op: 'hello' })).status, 401);

    ok(await wk.rpc(alice, { op: 'writeFile', project: 'p', args: { path: 'src/app.py', content: 'print("hi")\n' } }));
    ok(await wk.rpc(alice, { op: 'writeFile', project: 'p', args: { path: 'data/state.txt', content: 'lunch\n' } }));
    ok(await wk.rpc(alice, { op: 'updateProject', project: 'p', args: { patch: { name: 'Demo', port: 5173, settings: { theme: 'dark' }, note: 'tab\there' } } }));
    const first = ok(await wk.rpc(alice, { op: 'exec', project: 'p', args: { cmd: 'cat src/app.py; echo $RANDOM-$RANDOM' } }));
    assert.equal(first.cached, false);
    assert.equal(ok(await wk.rpc(alice, { op: 'exec', project: 'p', args: { cmd: 'cat src/app.py; echo $RANDOM-$RANDOM' } })).cached, true);
    ok(await wk.rpc(alice, { op: 'exec', project: 'p', args: { cmd: 'ls src', readOnly: true } }));
    ok(await wk.rpc(bob, { op: 'exec', project: 'q', args: { cmd: 'echo bob' } }));
    // every change of p is in its stored snapshot (the last op marked it pending before it answered)
    const infoP = await until(wk, alice, 'p', (i) => i.snapshot?.takenAt && !i.snapshot.pending, 'a snapshot of p');
    const histP = ok(await wk.rpc(alice, { op: 'getHistory', project: 'p', args: { limit: 100 } }));
    const histQ = ok(await wk.rpc(bob, { op: 'getHistory', project: 'q' }));
    assert.ok(histP.items.length >= 4, JSON.stringify(histP.items.map((i) => i.op)));
    const tokensAlice = JSON.parse(wk.cli('token', 'list', '--user', 'alice'));
    const tokensBob = JSON.parse(wk.cli('token', 'list', '--user', 'bob'));
    // ... and a command cut short by a crash of the worker: still `running` in the file
    const pending = wk.rpc(alice, { op: 'exec', project: 'long', args: { cmd: 'sleep 600' } }).catch((e) => e);
    const cut = await untilRunning(wk, alice, 'long');
    await wk.kill();
    await pending;

    // ---- the copy
    const records = Number(execFileSync('sqlite3', ['-readonly', db, 'SELECT count(*) FROM records'], { encoding: 'utf8' }));
    const maxSeq = Number(execFileSync('sqlite3', ['-readonly', db, 'SELECT max(seq) FROM records'], { encoding: 'utf8' }));
    const cacheRows = Number(execFileSync('sqlite3', ['-readonly', db, 'SELECT count(*) FROM cache'], { encoding: 'utf8' }));
    const before = fingerprint(db);
    const name = 'migrated';
    const uri = pg.createDatabase(name);
    const m = migrate('--from', db, '--to', withPassword(uri));
    assert.equal(m.code, 0, m.stderr);
    t.diagnostic(m.stdout.trim());
    assert.match(
      m.stdout,
      new RegExp(
        `^codecanvas-worker: migrated ${db} to postgresql://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${pg.port}/${name}: ` +
          `2 users, 3 tokens \\(1 revoked\\), 3 projects, ${cacheRows} cache entries, ` +
          `${records} records \\(1 interrupted, now error/internal\\), ([1-9]\\d*) snapshots \\(\\d+ bytes\\) in `,
      ),
    );
    assert.ok(!`${m.stdout}${m.stderr}`.includes('sekrit-pw'), 'the password is never printed');
    assert.deepEqual(fingerprint(db), before, 'the SQLite file is only read');
    assert.equal(pg.sql('SELECT count(*) FROM workers', name).trim(), '0', 'migrate leaves no worker registered');
    assert.equal(checkDatabase(uri), 'ok');

    // ---- a worker on PostgreSQL serves all of it
    wk2 = await startWorker({ sandboxd: sd, db: uri, args: FAST });
    const bad = await wk2.rpc(old, { op: 'hello' });
    assert.equal(bad.status, 401, 'the revoked token stays revoked');
    assert.equal(bad.body.error.code, 'unauthorized');
    assert.deepEqual(JSON.parse(wk2.cli('token', 'list', '--user', 'alice')), tokensAlice);
    assert.deepEqual(JSON.parse(wk2.cli('token', 'list', '--user', 'bob')), tokensBob);

    const infoP2 = ok(await wk2.rpc(alice, { op: 'getProject', project: 'p' }));
    assert.deepEqual(stored(infoP2), stored(infoP), 'metadata, generation, sandbox id, times and snapshot');
    assert.equal(infoP2.generation, infoP.generation);
    assert.equal(infoP2.name, 'Demo');
    assert.deepEqual(ok(await wk2.rpc(alice, { op: 'getHistory', project: 'p', args: { limit: 100 } })), histP);
    assert.deepEqual(ok(await wk2.rpc(bob, { op: 'getHistory', project: 'q' })), histQ);
    assert.equal((await wk2.rpc(bob, { op: 'getProject', project: 'p' })).body.error.code, 'not_found', 'still one owner\'s');
    const cutRec = ok(await wk2.rpc(alice, { op: 'getResult', args: { executionId: cut } }));
    assert.equal(cutRec.status, 'error');
    assert.equal(cutRec.error.code, 'internal');
    assert.deepEqual(cutRec.input, { cmd: 'sleep 600' });

    // the repeated exec is a cache hit: same output, nothing run
    const again = ok(await wk2.rpc(alice, { op: 'exec', project: 'p', args: { cmd: 'cat src/app.py; echo $RANDOM-$RANDOM' } }));
    assert.equal(again.cached, true);
    assert.equal(again.stdout, first.stdout);

    // the sandbox deleted behind the worker's back: the files come back from the migrated snapshot
    const del = await fetch(`${sd.url}/sandboxes/${infoP.sandboxId}`, { method: 'DELETE', headers: { 'X-API-KEY': sd.apiKey } });
    assert.equal(del.status, 204);
    const read = ok(await wk2.rpc(alice, { op: 'readFile', project: 'p', args: { path: 'src/app.py' } }));
    assert.equal(read.content, 'print("hi")\n');
    assert.equal(read.sandboxRestored, true);
    assert.equal(read.restoredFrom, infoP.snapshot.takenAt);
    assert.equal(ok(await wk2.rpc(alice, { op: 'readFile', project: 'p', args: { path: 'data/state.txt' } })).content, 'lunch\n');

    // new rows get new ids: records after the copied seq, a new token and a new project
    const carol = wk2.token('carol', 'new');
    assert.deepEqual(JSON.parse(wk2.cli('token', 'list', '--user', 'carol')).map((t) => t.id), [4]);
    ok(await wk2.rpc(carol, { op: 'exec', project: 'fresh', args: { cmd: 'echo fresh' } }));
    assert.equal(pg.sql("SELECT id FROM projects WHERE project = 'fresh'", name).trim(), '4');
    const h2 = ok(await wk2.rpc(alice, { op: 'getHistory', project: 'p', args: { limit: 100 } }));
    const fresh = h2.items.length - histP.items.length;
    assert.ok(fresh >= 2, 'readFile x2 recorded');
    assert.deepEqual(h2.items.slice(fresh).map((i) => i.id), histP.items.map((i) => i.id), 'old history kept, in order');
    const newSeqs = pg.sql(`SELECT count(*) FROM records WHERE seq > ${maxSeq}`, name).trim();
    assert.equal(Number(newSeqs), fresh + 1, 'every new record (p: readFiles, fresh: exec) after the copied seqs');
    assert.equal(checkDatabase(uri), 'ok');
  } finally {
    if (wk2) await wk2.stop();
    if (wk.process.exitCode === null && wk.process.signalCode === null) await wk.stop();
    await sd.stop();
    pg.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a database that already holds data is refused, and neither it nor the file changes', async () => {
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'cc-migrate-'));
  const db = join(dir, 'worker.db');
  try {
    const cli = (...a) => execFileSync(BIN, a, { encoding: 'utf8' });
    cli('token', 'create', '--user', 'alice', '--db', db);
    const before = fingerprint(db);

    // a target with a user of its own
    const uri = pg.createDatabase('busy');
    cli('token', 'create', '--user', 'zed', '--db', uri);
    const before2 = dump(uri);
    const m = migrate('--from', db, '--to', withPassword(uri));
    assert.equal(m.code, 1, m.stdout);
    assert.match(m.stderr, /refused: postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/busy already holds 1 user\(s\), 0 project\(s\)/);
    assert.match(m.stderr, /nothing was written/);
    assert.ok(!m.stderr.includes('sekrit-pw'));
    assert.equal(m.stdout, '');
    assert.equal(dump(uri), before2, 'the target is as it was');
    assert.deepEqual(fingerprint(db), before);

    // a target that was migrated into once: a second run is refused the same way
    const fresh = pg.createDatabase('once');
    assert.equal(migrate('--from', db, '--to', fresh).code, 0);
    const dump2 = dump(fresh);
    const twice = migrate('--from', db, '--to', fresh);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already holds 1 user\(s\)/);
    assert.equal(dump(fresh), dump2);

    // what is not a deployment, or not a PostgreSQL URI, is a clear error too
    assert.equal(migrate('--from', join(dir, 'nope.db'), '--to', fresh).code, 1);
    const notUri = migrate('--from', db, '--to', join(dir, 'other.db'));
    assert.equal(notUri.code, 1);
    assert.match(notUri.stderr, /--to must be a postgresql:\/\//);
    assert.equal(migrate('--from', db).code, 2);
  } finally {
    pg.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
