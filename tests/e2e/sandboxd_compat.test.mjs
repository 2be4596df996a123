// What running E2B's own JS SDK test suite against codecanvas-sandboxd found missing (see
// docs/sandboxd.md, "E2B's SDK test suite"), each checked here with the current official SDK
// (e2b@2.51.0, unchanged) against a real sandboxd with real bubblewrap sandboxes: the time
// range of getMetrics ({start, end}, sent as Unix seconds); a boot id of each sandbox's own,
// new at every start (what shows that a resume without memory rebooted it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Sandbox, SandboxError } from 'e2b-2.51';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;

before(async () => {
  sd = await startSandboxd({ args: ['--no-internet'] });
  useSandboxd(sd);
});

after(async () => {
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

/** GET /sandboxes/{id}/metrics with a raw query string (what the SDK cannot send). */
async function rawMetrics(id, query) {
  const res = await fetch(`${sd.url}/sandboxes/${id}/metrics?${query}`, { headers: { 'X-API-KEY': sd.apiKey } });
  return { status: res.status, body: await res.json() };
}

describe('getMetrics time range', () => {
  let sbx;
  before(async () => {
    sbx = await Sandbox.create({ timeoutMs: 120_000 });
  });
  after(async () => {
    await sbx?.kill();
  });

  test('a range around now has the sample, taken inside it; a range in the past or the future has none', async () => {
    const start = new Date(Date.now() - 2000);
    const end = new Date(Date.now() + 2000);
    const metrics = await sbx.getMetrics({ start, end });
    assert.equal(metrics.length, 1);
    const t = metrics[0].timestamp.getTime();
    assert.ok(t >= start.getTime() - 1000 && t <= end.getTime() + 1000, `timestamp ${metrics[0].timestamp.toISOString()}`);
    assert.ok(metrics[0].memTotal > 0 && metrics[0].diskTotal > 0);

    const hour = 3600_000;
    assert.deepEqual(await sbx.getMetrics({ start: new Date(Date.now() - hour), end: new Date(Date.now() - hour / 2) }), []);
    assert.deepEqual(await sbx.getMetrics({ start: new Date(Date.now() + hour / 2), end: new Date(Date.now() + hour) }), []);
    // only start, or only end: the other side is open
    assert.equal((await sbx.getMetrics({ start: new Date(Date.now() - hour) })).length, 1);
    assert.deepEqual(await sbx.getMetrics({ end: new Date(Date.now() - hour) }), []);
  });

  test('malformed bounds and start after end are 400s naming the parameter', async () => {
    const id = sbx.sandboxId;
    const now = Math.floor(Date.now() / 1000);
    for (const [query, msg] of [
      ['start=yesterday', /invalid start 'yesterday': must be a Unix time in seconds/],
      ['end=-5', /invalid end '-5'/],
      [`start=${now}.5`, /invalid start/],
      ['end=', /invalid end ''/],
      ['start=99999999999999999999', /invalid start/],
      [`start=${now + 10}&end=${now}`, /start \(\d+\) must not be after end \(\d+\)/],
    ]) {
      const r = await rawMetrics(id, query);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.code, 400);
      assert.match(r.body.message, msg, query);
    }
    // the SDK raises the 400 as a SandboxError
    await assert.rejects(sbx.getMetrics({ start: new Date(Date.now() + 60_000), end: new Date() }),
      (e) => e instanceof SandboxError && /must not be after end/.test(e.message));
    // and the server keeps serving
    assert.equal((await sbx.getMetrics()).length, 1);
  });
});

describe('boot id', () => {
  const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const bootId = async (sbx, opts) =>
    (await sbx.commands.run('cat /proc/sys/kernel/random/boot_id', opts)).stdout.trim();

  test('each sandbox has its own, not the host\'s; kept by a pause with memory, new after a resume without', async () => {
    const host = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const [a, b] = await Promise.all([0, 1].map(() => Sandbox.create({ timeoutMs: 120_000 })));
    try {
      const idA = await bootId(a);
      assert.match(idA, UUID4);
      assert.notEqual(idA, host);
      assert.notEqual(await bootId(b), idA);
      assert.equal(await bootId(a), idA, 'the same for every command of one boot');
      assert.equal(await bootId(a, { user: 'root' }), idA);
      // read-only, for root inside too
      const w = await a.commands.run('echo x > /proc/sys/kernel/random/boot_id', { user: 'root' }).catch((e) => e);
      assert.notEqual(w.exitCode, 0);
      assert.equal(await bootId(a), idA);

      // a pause that keeps memory is not a reboot
      assert.equal(await a.pause(), true);
      await a.connect();
      assert.equal(await bootId(a), idA);

      // a pause without memory: the files stay, the sandbox starts afresh with a new boot id
      await a.files.write('/home/user/kept.txt', 'kept');
      await a.pause({ keepMemory: false });
      assert.equal(await a.isRunning(), false);
      await a.connect();
      assert.equal(await a.files.read('/home/user/kept.txt'), 'kept');
      const idAfter = await bootId(a);
      assert.match(idAfter, UUID4);
      assert.notEqual(idAfter, idA);
    } finally {
      await Promise.all([a.kill(), b.kill()]);
    }
  });
});
