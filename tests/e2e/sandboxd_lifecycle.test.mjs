// A sandbox's life after create, driven by today's official SDK (npm e2b 2.51.0, unchanged)
// against a real codecanvas-sandboxd: pause and resume with and without memory, the state
// filter of list, lifecycle.onTimeout 'pause' and autoResume, paused sandboxes surviving a
// kill -9 or a SIGTERM of sandboxd (and resumed or deleted ones not coming back), and metrics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Sandbox } from 'e2b-2.51';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;
let stateDir;
let apiKey;

async function start() {
  sd = await startSandboxd({ stateDir, apiKey });
  apiKey = sd.apiKey;
  useSandboxd(sd);
}

before(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'cc-life-'));
  await start();
});

after(async () => {
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
  rmSync(stateDir, { recursive: true, force: true });
});

async function listIds(state) {
  const out = [];
  const p = Sandbox.list({ query: { state } });
  while (p.hasNext) out.push(...(await p.nextItems()));
  return out.map((s) => s.sandboxId);
}

async function raw(id) {
  const r = await fetch(`${sd.url}/sandboxes/${id}`, { headers: { 'X-API-KEY': apiKey } });
  return r.json();
}

/** Polls getInfo (bounded) until the sandbox reaches `state`: external state, no fixed sleep. */
async function waitState(id, state, ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    const info = await Sandbox.getInfo(id);
    if (info.state === state) return info;
    if (Date.now() - t0 > ms) throw new Error(`${id} still ${info.state} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('pause and resume', () => {
  test('pause keeps memory: listed as paused; connect brings back its file and its running sleep', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await sbx.files.write('/home/user/state.txt', 'kept\n');
      const bg = await sbx.commands.run('sleep 600', { background: true });
      assert.equal(await sbx.pause(), true);
      assert.equal(await sbx.pause(), false); // already paused (409)
      assert.ok((await listIds('paused')).includes(sbx.sandboxId));
      assert.ok(!(await listIds('running')).includes(sbx.sandboxId));
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
      // traffic to a paused sandbox without autoResume is refused, and it stays paused
      await assert.rejects(sbx.commands.run('true'));
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');

      const back = await Sandbox.connect(sbx.sandboxId);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'running');
      assert.equal(await back.files.read('/home/user/state.txt'), 'kept\n');
      const procs = await back.commands.list();
      assert.ok(procs.some((p) => p.pid === bg.pid && p.cmd.includes('bash')), JSON.stringify(procs));
      assert.equal((await back.commands.run('echo alive')).stdout, 'alive\n');
      assert.equal((await raw(sbx.sandboxId)).coldResumed, undefined);
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('pause without memory keeps the files only: resume starts it afresh and says so', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await sbx.files.write('/home/user/src/app.py', 'print("hi")\n');
      await sbx.commands.run('sleep 600', { background: true });
      assert.equal(await sbx.pause({ keepMemory: false }), true);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
      const back = await Sandbox.connect(sbx.sandboxId);
      assert.equal(await back.files.read('/home/user/src/app.py'), 'print("hi")\n');
      assert.equal((await back.commands.run('python3 src/app.py')).stdout, 'hi\n');
      const procs = await back.commands.list();
      assert.ok(!procs.some((p) => (p.args ?? []).join(' ').includes('sleep 600')), JSON.stringify(procs));
      assert.equal((await raw(sbx.sandboxId)).coldResumed, true);
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('deleting a paused sandbox leaves nothing: not listed, connect is NotFound', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    assert.equal(await sbx.pause(), true);
    assert.equal(await Sandbox.kill(sbx.sandboxId), true);
    assert.ok(!(await listIds('paused,running')).includes(sbx.sandboxId));
    await assert.rejects(Sandbox.connect(sbx.sandboxId), /not found/i);
  });
});

describe('lifecycle', () => {
  test("onTimeout 'pause': the timeout pauses instead of killing, and connect resumes it", async () => {
    const sbx = await Sandbox.create({ timeoutMs: 2_000, lifecycle: { onTimeout: 'pause' } });
    try {
      await sbx.files.write('/home/user/data/state.txt', 'before lunch\n');
      const info = await Sandbox.getInfo(sbx.sandboxId);
      assert.deepEqual(info.lifecycle, { onTimeout: 'pause', autoResume: false });
      await waitState(sbx.sandboxId, 'paused');
      const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 });
      assert.equal(await back.files.read('/home/user/data/state.txt'), 'before lunch\n');
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('autoResume: a command sent to the paused sandbox resumes it', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, lifecycle: { onTimeout: 'pause', autoResume: true } });
    try {
      await sbx.files.write('/home/user/n.txt', '42');
      assert.equal(await sbx.pause(), true);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
      assert.equal((await sbx.commands.run('cat n.txt')).stdout, '42');
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'running');
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('what the SDK offers and a local server does not is a clear 501, not a 404 or 405', async () => {
    // egress rules are enforced (sandboxd_egress, sandboxd_domains); request transforms are not
    await assert.rejects(
      Sandbox.create({ network: { rules: { 'example.com': [{ transform: { headers: { a: 'b' } } }] } } }),
      /501.*network\.rules/s,
    );
    const sbx = await Sandbox.create();
    try {
      await assert.rejects(sbx.createSnapshot(), /snapshots/);
      for (const [method, path] of [['GET', '/snapshots'], ['GET', '/volumes'], ['GET', '/templates'], ['POST', `/sandboxes/${sbx.sandboxId}/fork`]]) {
        const r = await fetch(`${sd.url}${path}`, { method, headers: { 'X-API-KEY': apiKey } });
        assert.equal(r.status, 501, path);
        assert.match((await r.json()).message, /not supported by codecanvas-sandboxd/);
      }
    } finally {
      await sbx.kill();
    }
  });
});

describe('metrics', () => {
  test('getMetrics: CPU use moves when a command burns CPU; memory and disk are the sandbox\'s', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const [m0] = await sbx.getMetrics();
      assert.ok(m0, 'one sample');
      assert.equal(m0.cpuCount, 1);
      assert.equal(m0.memTotal, 512 * 1024 * 1024);
      assert.ok(m0.memUsed > 0 && m0.memUsed < m0.memTotal);
      assert.ok(m0.diskTotal > 0 && m0.diskUsed < m0.diskTotal);
      assert.ok(m0.timestamp instanceof Date && !Number.isNaN(m0.timestamp.getTime()));
      // a second of busy loop, then a sample: the CPU used since the previous sample shows it
      await sbx.commands.run('end=$((SECONDS+1)); while [ $SECONDS -le $end ]; do :; done');
      const [m1] = await sbx.getMetrics();
      assert.ok(m1.cpuUsedPct > 30, `cpuUsedPct ${m1.cpuUsedPct}`);
      await sbx.commands.run('head -c 8000000 /dev/urandom > big.bin');
      const [m2] = await sbx.getMetrics();
      assert.ok(m2.diskUsed >= m0.diskUsed + 7_000_000, `diskUsed ${m0.diskUsed} -> ${m2.diskUsed}`);
      assert.ok(m2.cpuUsedPct < m1.cpuUsedPct + 100);
    } finally {
      await sbx.kill();
    }
  });
});

describe('a sandboxd restart', () => {
  test('kill -9 sandboxd while a sandbox is paused: after the restart it is listed and resumes with its files', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, metadata: { who: 'lunch' } });
    await sbx.files.write('/home/user/src/app.py', 'print(1)\n');
    await sbx.commands.run('sleep 600', { background: true });
    assert.equal(await sbx.pause(), true);
    sd.process.kill('SIGKILL');
    await sd.exited;
    await start();
    assert.match(sd.stderr, /1 paused sandbox kept in .*files only/);
    const paused = await listIds('paused');
    assert.deepEqual(paused, [sbx.sandboxId]);
    const info = await Sandbox.getInfo(sbx.sandboxId);
    assert.deepEqual(info.metadata, { who: 'lunch' });
    const back = await Sandbox.connect(sbx.sandboxId);
    try {
      assert.equal(await back.files.read('/home/user/src/app.py'), 'print(1)\n');
      assert.equal((await raw(sbx.sandboxId)).coldResumed, true); // its processes did not survive
      const procs = await back.commands.list();
      assert.ok(!procs.some((p) => (p.args ?? []).join(' ').includes('sleep 600')));
    } finally {
      await back.kill();
    }
  });
});

describe('retiring paused files is crash-safe', () => {
  const pausedDir = (id) => join(stateDir, 'paused', id);
  const retired = () => (existsSync(join(stateDir, 'retired')) ? readdirSync(join(stateDir, 'retired')) : []);

  test('resume and delete retire a paused sandbox at once: after kill -9 and a restart only the one still paused is back', async () => {
    const [resumed, kept, deleted] = await Promise.all([0, 1, 2].map(() => Sandbox.create({ timeoutMs: 120_000 })));
    await kept.files.write('/home/user/kept.txt', 'still paused\n');
    for (const s of [resumed, kept, deleted]) assert.equal(await s.pause(), true);
    for (const s of [resumed, kept, deleted]) assert.ok(existsSync(pausedDir(s.sandboxId)));

    // once connect and kill have answered, the paused files are out of paused/ (the janitor
    // deletes them later, off the request path)
    const back = await Sandbox.connect(resumed.sandboxId);
    assert.equal(existsSync(pausedDir(resumed.sandboxId)), false);
    assert.equal((await back.commands.run('echo running')).stdout, 'running\n');
    assert.equal(await Sandbox.kill(deleted.sandboxId), true);
    assert.equal(existsSync(pausedDir(deleted.sandboxId)), false);
    assert.ok(existsSync(pausedDir(kept.sandboxId)));
    // what a run killed between the rename and the janitor's pass leaves: a whole sandbox dir
    // (descriptor and archive) under retired/; a restart must neither list it nor keep it
    cpSync(pausedDir(kept.sandboxId), join(stateDir, 'retired', `${kept.sandboxId}.1.1`), { recursive: true });

    sd.process.kill('SIGKILL');
    await sd.exited;
    await start();
    assert.match(sd.stderr, /1 paused sandbox kept in .*files only/);
    assert.deepEqual(await listIds('paused'), [kept.sandboxId]);
    assert.deepEqual(await listIds('running'), []); // a running sandbox does not survive a restart
    await assert.rejects(Sandbox.getInfo(resumed.sandboxId), /not found/i);
    await assert.rejects(Sandbox.getInfo(deleted.sandboxId), /not found/i);
    const t0 = Date.now();
    while (retired().length && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(retired(), []); // the janitor's first pass emptied it
    const k = await Sandbox.connect(kept.sandboxId);
    try {
      assert.equal(await k.files.read('/home/user/kept.txt'), 'still paused\n');
    } finally {
      await k.kill();
    }
    assert.deepEqual(await listIds('paused,running'), []);
  });

  test('a stopped sandboxd (SIGTERM) keeps its paused sandboxes: listed after the restart, with their files', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    await sbx.files.write('/home/user/notes.md', '# kept\n');
    const running = await Sandbox.create({ timeoutMs: 120_000 });
    assert.equal(await sbx.pause(), true);
    assert.deepEqual(await sd.stop(), { code: 0, signal: null });
    assert.ok(existsSync(pausedDir(sbx.sandboxId)));
    await start();
    assert.match(sd.stderr, /1 paused sandbox kept in .*files only/);
    assert.deepEqual(await listIds('paused'), [sbx.sandboxId]);
    await assert.rejects(Sandbox.getInfo(running.sandboxId), /not found/i);
    const back = await Sandbox.connect(sbx.sandboxId);
    try {
      assert.equal(await back.files.read('/home/user/notes.md'), '# kept\n');
    } finally {
      await back.kill();
    }
  });
});

describe('warm pool', () => {
  test('--warm-pool: a create hands out a started sandbox that is fully its own (id, envs, token), and the pool refills', async () => {
    const pd = await startSandboxd({ args: ['--warm-pool', '2'] });
    const saved = sd.env();
    Object.assign(process.env, pd.env());
    try {
      const made = [];
      for (let i = 0; i < 3; i++) {
        const sbx = await Sandbox.create({ envs: { ROUND: String(i) }, metadata: { round: String(i) } });
        made.push(sbx);
        const r = await sbx.commands.run('echo $ROUND $E2B_SANDBOX_ID $(cat /run/e2b/.E2B_SANDBOX_ID)');
        assert.equal(r.stdout, `${i} ${sbx.sandboxId} ${sbx.sandboxId}\n`);
        const info = await Sandbox.getInfo(sbx.sandboxId);
        assert.deepEqual(info.metadata, { round: String(i) });
      }
      assert.equal(new Set(made.map((s) => s.sandboxId)).size, 3);
      // only what was created is listed; the pool's sandboxes are not
      const listed = [];
      const p = Sandbox.list();
      while (p.hasNext) listed.push(...(await p.nextItems()));
      assert.deepEqual(listed.map((s) => s.sandboxId).sort(), made.map((s) => s.sandboxId).sort());
      // one sandbox's token does not open another's envd
      const r = await fetch(`${pd.url}/envs`, { headers: { 'E2b-Sandbox-Id': made[0].sandboxId, 'X-Access-Token': made[1].envdAccessToken } });
      assert.equal(r.status, 401);
      for (const s of made) await s.kill();
    } finally {
      Object.assign(process.env, saved);
      const r = await pd.stop();
      assert.deepEqual(r, { code: 0, signal: null }, pd.stderr);
    }
  });
});
