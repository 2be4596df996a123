// codecanvas-worker's HTTP front is an event loop on a few threads (http_threads) with slow
// work suspended onto a pool: run here with ONE loop thread, so that anything that blocked
// the loop would show.  A sandbox command that runs for long holds up neither the health
// check nor a cached exec nor another project's command; more streaming commands than loop
// threads run at once, each streaming its output while the others run; a hang-up of each
// stream cancels its command.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox } from 'e2b';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

let sd, wk, tok;

before(async () => {
  sd = await startSandboxd({ args: ['--no-internet'] });
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--http-threads', '1'] });
  tok = wk.token('ellen');
});

after(async () => {
  await wk?.stop();
  await sd?.stop();
});

const ok = (r) => {
  assert.equal(r.status, 200, r.text);
  return r.body.result;
};

test('a command that waits holds up neither /healthz, a cached exec, nor another project', async () => {
  ok(await wk.rpc(tok, { op: 'exec', project: 'fast', args: { cmd: 'echo cached' } }));
  ok(await wk.rpc(tok, { op: 'exec', project: 'slow', args: { cmd: 'true' } })); // its sandbox
  // The slow command waits for a file that only this test writes, after the fast requests.
  let slowDone = false;
  const slow = wk.rpc(tok, {
    op: 'exec', project: 'slow',
    args: { cmd: 'while [ ! -f /home/user/go ]; do sleep 0.05; done; echo released', timeoutMs: 60000 },
  }).then((r) => { slowDone = true; return r; });
  // wait until the slow command is running (its record says so)
  for (let i = 0; ; i++) {
    const h = ok(await wk.rpc(tok, { op: 'getHistory', project: 'slow', args: { limit: 1 } }));
    if (h.items[0]?.status === 'running') break;
    assert.ok(i < 500, 'the slow command starts');
    await new Promise((r) => setTimeout(r, 20));
  }
  for (let i = 0; i < 20; i++) {
    const h = await fetch(`${wk.url}/healthz`);
    assert.equal(h.status, 200);
    const c = ok(await wk.rpc(tok, { op: 'exec', project: 'fast', args: { cmd: 'echo cached' } }));
    assert.equal(c.cached, true);
  }
  const other = ok(await wk.rpc(tok, { op: 'exec', project: 'fast', args: { cmd: 'echo other', useCache: false } }));
  assert.equal(other.stdout, 'other\n');
  assert.equal(slowDone, false, 'the slow command is still waiting');
  // Release it: the project's own operations wait behind it, so the file goes in through the
  // sandbox's envd directly (getProject is a read: it does not wait).
  const proj = ok(await wk.rpc(tok, { op: 'getProject', project: 'slow' }));
  const sbx = await Sandbox.connect(proj.sandboxId, { apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url });
  await sbx.files.write('/home/user/go', 'go');
  const r = ok(await slow);
  assert.equal(r.stdout, 'released\n');
});

test('more streaming commands than loop threads run at once; a hang-up cancels each', async () => {
  const N = 6;
  const started = new Set();
  let allStarted;
  const everyoneStarted = new Promise((r) => { allStarted = r; });
  const controllers = Array.from({ length: N }, () => new AbortController());
  const ids = [];
  const streams = controllers.map((ac, i) =>
    wk.rpcStream(tok, { op: 'exec', project: `s${i}`, args: { cmd: 'echo started; exec sleep 600', timeoutMs: 600000 } }, {
      signal: ac.signal,
      onLine: (l) => {
        if (l.event === 'start') ids[i] = l.data.executionId;
        if (l.event === 'stdout' && l.data.includes('started')) {
          started.add(i);
          if (started.size === N) allStarted();
        }
      },
    }).catch((e) => assert.equal(e.name, 'AbortError')));
  // Every one of them is running and has streamed its first line while the others run:
  // with one loop thread, this needs the suspended streams to be resumed line by line.
  await everyoneStarted;
  for (const ac of controllers) ac.abort();
  await Promise.all(streams);
  // each hang-up canceled its command: the record ends (not running) in every project
  for (let i = 0; i < N; i++) {
    for (let k = 0; ; k++) {
      const rec = ok(await wk.rpc(tok, { op: 'getResult', args: { executionId: ids[i] } }));
      if (rec.status !== 'running') {
        assert.notEqual(rec.status, 'succeeded');
        break;
      }
      assert.ok(k < 500, `command of s${i} canceled`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const h = await fetch(`${wk.url}/healthz`);
  assert.equal(h.status, 200);
});
