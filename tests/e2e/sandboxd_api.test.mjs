// The E2B API details the current official SDK (e2b@2.51.0, unchanged) relies on, against a
// real codecanvas-sandboxd with real bubblewrap sandboxes: the list filters of
// GET /v2/sandboxes (order, startedAfter, template, beside state, metadata and paging), a
// process stream that breaks off when its sandbox is killed under it (the SDK's TimeoutError,
// as with E2B) while a process killed by the user still ends with its end event, and the
// advertised envd version (0.6.4; closeStdin works; the 0.5.7-0.6.4 features are
// sandboxd_envd.test.mjs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { CommandExitError, Sandbox, SandboxError, TimeoutError } from 'e2b-2.51';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;

before(async () => {
  sd = await startSandboxd({ args: ['--template', 'base', '--template', 'py', '--no-internet'] });
  useSandboxd(sd);
});

after(async () => {
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every page of a listing, in order, as sandbox ids. */
async function listIds(opts) {
  const p = Sandbox.list(opts);
  const pages = [];
  while (p.hasNext) pages.push((await p.nextItems()).map((s) => s.sandboxId));
  return pages;
}

/** GET /v2/sandboxes with a raw query string (what the SDK does not let a caller send). */
async function rawList(query) {
  const res = await fetch(`${sd.url}/v2/sandboxes?${query}`, { headers: { 'X-API-KEY': sd.apiKey } });
  return { status: res.status, body: await res.json(), next: res.headers.get('x-next-token') };
}

describe('GET /v2/sandboxes filters', () => {
  const boxes = [];
  const suite = `list-${process.pid}`;
  let ids;

  before(async () => {
    // three sandboxes started one after the other: a and b from base, c from py
    for (const [tmpl, name] of [['base', 'a'], ['base', 'b'], ['py', 'c']]) {
      boxes.push(await Sandbox.create(tmpl, { metadata: { suite, name }, timeoutMs: 120_000 }));
      await sleep(15); // distinct start times (ms resolution)
    }
    ids = boxes.map((b) => b.sandboxId);
  });

  after(async () => {
    for (const b of boxes) await b.kill().catch(() => {});
  });

  test('order: desc (newest first) by default and when asked, asc when asked', async () => {
    const query = { metadata: { suite } };
    assert.deepEqual(await listIds({ query }), [[ids[2], ids[1], ids[0]]]);
    assert.deepEqual(await listIds({ query, order: 'desc' }), [[ids[2], ids[1], ids[0]]]);
    assert.deepEqual(await listIds({ query, order: 'asc' }), [[ids[0], ids[1], ids[2]]]);
  });

  test('order applies across pages, before paging', async () => {
    const query = { metadata: { suite } };
    assert.deepEqual(await listIds({ query, order: 'asc', limit: 1 }), [[ids[0]], [ids[1]], [ids[2]]]);
    assert.deepEqual(await listIds({ query, order: 'desc', limit: 2 }), [[ids[2], ids[1]], [ids[0]]]);
    assert.deepEqual(await listIds({ query, order: 'asc', limit: 2 }), [[ids[0], ids[1]], [ids[2]]]);
  });

  test('startedAfter: sandboxes started at or after the time', async () => {
    const infoB = await boxes[1].getInfo();
    const query = { metadata: { suite }, startedAfter: infoB.startedAt };
    assert.deepEqual(await listIds({ query, order: 'asc' }), [[ids[1], ids[2]]]);
    const later = new Date(Date.now() + 3_600_000);
    assert.deepEqual(await listIds({ query: { metadata: { suite }, startedAfter: later } }), [[]]);
    // an RFC 3339 time with an offset, sent by hand (the SDK always sends UTC)
    const t = new Date(infoB.startedAt.getTime() + 3_600_000).toISOString().replace('Z', '+01:00');
    const r = await rawList(`startedAfter=${encodeURIComponent(t)}&order=asc&metadata=${encodeURIComponent(`suite=${suite}`)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.map((s) => s.sandboxID), [ids[1], ids[2]]);
  });

  test('template: by template ID, combined with the other filters', async () => {
    assert.deepEqual(await listIds({ query: { metadata: { suite }, template: 'py' } }), [[ids[2]]]);
    assert.deepEqual(await listIds({ query: { metadata: { suite }, template: 'base' }, order: 'asc' }), [[ids[0], ids[1]]]);
    assert.deepEqual(await listIds({ query: { metadata: { suite }, template: 'nope' } }), [[]]);
    const infoB = await boxes[1].getInfo();
    const query = { metadata: { suite }, template: 'base', startedAfter: infoB.startedAt, state: ['running'] };
    assert.deepEqual(await listIds({ query }), [[ids[1]]]);
    assert.deepEqual(await listIds({ query: { ...query, state: ['paused'] } }), [[]]);
  });

  test('invalid values are 400 with a message that names the parameter', async () => {
    await assert.rejects(Sandbox.list({ order: 'sideways' }).nextItems(), (e) => {
      // the SDK turns a control-plane 400 into SandboxError "400: <message>"
      assert.ok(e instanceof SandboxError, String(e));
      assert.match(e.message, /^400: invalid order 'sideways'/);
      return true;
    });
    for (const [q, word] of [
      ['order=ASC', /order/],
      ['startedAfter=yesterday', /startedAfter.*RFC 3339/],
      ['startedAfter=2026-02-30T00:00:00Z', /startedAfter/],
      ['startedAfter=2026-01-02T15:04:05', /startedAfter/], // no offset
      ['startedAfter=2026-01-02T25:04:05Z', /startedAfter/],
      ['nextToken=xyz', /nextToken/],
      ['limit=0', /limit/],
      ['state=sleeping', /state/],
    ]) {
      const r = await rawList(q);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.code, 400, q);
      assert.match(r.body.message, word, q);
    }
  });
});

describe('a sandbox killed during a run', () => {
  /** A sandbox with `sleep 60` running in the foreground (the run's promise) once it printed. */
  async function sleeping(opts = {}) {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, ...opts });
    let started;
    const printed = new Promise((r) => (started = r));
    const run = sbx.commands.run('echo up; sleep 60', { onStdout: (d) => d.includes('up') && started() });
    run.catch(() => {}); // observed below
    await printed;
    return { sbx, run };
  }

  const goneError = (e) => {
    assert.ok(!(e instanceof CommandExitError), `CommandExitError: ${e}`);
    assert.ok(e instanceof TimeoutError, String(e));
    assert.match(e.message, /sandbox was killed or reached its end of life/);
    return true;
  };

  test('Sandbox.kill from outside: the run rejects with TimeoutError, not CommandExitError', async () => {
    const { sbx, run } = await sleeping();
    const t0 = Date.now();
    assert.equal(await Sandbox.kill(sbx.sandboxId), true);
    await assert.rejects(run, goneError);
    assert.ok(Date.now() - t0 < 10_000);
  });

  test('the sandbox reaching its timeout: the same', async () => {
    const { run } = await sleeping({ timeoutMs: 3_000 });
    await assert.rejects(run, goneError);
  });

  test('background handles and connected handles see the same', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    const h = await sbx.commands.run('sleep 60', { background: true });
    const c = await sbx.commands.connect(h.pid);
    await sbx.kill();
    await assert.rejects(h.wait(), goneError);
    await assert.rejects(c.wait(), goneError);
  });

  test("the user's own kill still ends the process with its end event", async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const h = await sbx.commands.run('sleep 60', { background: true });
      assert.equal(await sbx.commands.kill(h.pid), true);
      await assert.rejects(h.wait(), (e) => {
        assert.ok(e instanceof CommandExitError, String(e));
        assert.equal(e.exitCode, -1);
        assert.equal(e.error, 'signal: killed');
        return true;
      });
      // killed from inside the sandbox, by another command
      const h2 = await sbx.commands.run('sleep 60', { background: true });
      await sbx.commands.run(`kill -TERM ${h2.pid}`);
      await assert.rejects(h2.wait(), (e) => e instanceof CommandExitError && e.error === 'signal: terminated');
      assert.equal((await sbx.commands.run('echo alive')).stdout, 'alive\n');
    } finally {
      await sbx.kill();
    }
  });
});

describe('envd version', () => {
  let sbx;
  before(async () => {
    sbx = await Sandbox.create({ timeoutMs: 120_000 });
  });
  after(async () => {
    await sbx?.kill().catch(() => {});
  });

  test('advertises 0.6.4 in create, getInfo and list', async () => {
    assert.equal((await sbx.getInfo()).envdVersion, '0.6.4');
    const listed = (await Sandbox.list().nextItems()).find((s) => s.sandboxId === sbx.sandboxId);
    assert.equal(listed.envdVersion, '0.6.4');
  });

  test('stdin: sendStdin, then closeStdin ends cat with what was sent', async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true });
    await h.sendStdin('hello\n');
    await h.sendStdin('wörld');
    await h.closeStdin();
    const r = await h.wait();
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'hello\nwörld');
    // the same through sandbox.commands, by pid
    const h2 = await sbx.commands.run('wc -c', { background: true, stdin: true });
    await sbx.commands.sendStdin(h2.pid, 'abc');
    await sbx.commands.closeStdin(h2.pid);
    assert.equal((await h2.wait()).stdout.trim(), '3');
  });
});
