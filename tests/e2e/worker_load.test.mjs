// Load (bounded, self-stopping, 127.0.0.1 only): 200 concurrent clients x 50 requests each
// against one worker (cached exec, hello, getProject, getHistory, and a few real execs),
// with zero errors, and the worker's resident memory bounded across two rounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

test('200 concurrent clients x 50 requests: zero errors, bounded memory', async () => {
  const sd = await startSandboxd({ args: ['--no-internet'] });
  const wk = await startWorker({
    sandboxd: sd,
    args: ['--rate-limit', '0', '--access-log', ''],
    // a small ASan quarantine, so that the worker's RSS reflects live memory (the default
    // 256 MiB of freed blocks held back filled up during round 2, close to the bound below)
    env: { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=16` },
  });
  try {
    const tokens = Array.from({ length: 4 }, (_, i) => wk.token(`load${i}`));
    // Warm: one real exec per user/project so that the load is mostly cache hits.
    for (let u = 0; u < tokens.length; u++) {
      const r = await wk.rpc(tokens[u], { op: 'exec', project: `lp${u}`, args: { cmd: 'echo warm' } });
      assert.equal(r.status, 200, r.text);
    }
    const CLIENTS = 200;
    const PER = 50;
    async function round(tag) {
      const errors = [];
      let count = 0;
      const client = async (c) => {
        const tok = tokens[c % tokens.length];
        const project = `lp${c % tokens.length}`;
        for (let i = 0; i < PER; i++) {
          const kind = i % 5;
          const msg =
            kind === 0 ? { op: 'hello' }
            : kind === 1 ? { op: 'getProject', project }
            : kind === 2 && i === 2 && c % 50 === 0 ? { op: 'exec', project: `real${c}-${tag}`, args: { cmd: `echo ${c}` } }
            : kind === 3 ? { op: 'getHistory', project, args: { limit: 5 } }
            : { op: 'exec', project, args: { cmd: 'echo warm' } };
          const r = await wk.rpc(tok, msg);
          count++;
          if (r.status !== 200 || !r.body?.ok) errors.push(`${msg.op}: ${r.status} ${r.text.slice(0, 200)}`);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
      return { errors, count };
    }
    let t0 = Date.now();
    const r1 = await round('a');
    console.log(`round 1: ${Date.now() - t0} ms`);
    assert.deepEqual(r1.errors.slice(0, 5), []);
    assert.equal(r1.count, CLIENTS * PER);
    const rss1 = rssKb(wk.pid);
    const r2 = await round('b');
    assert.deepEqual(r2.errors.slice(0, 5), []);
    const rss2 = rssKb(wk.pid);
    // Bounded: the second round of the same load does not grow memory materially (ASan build
    // included), and the total stays far below what an unbounded buffer would reach.
    assert.ok(rss2 < rss1 * 1.5 + 64 * 1024, `RSS grew from ${rss1} kB to ${rss2} kB`);
    console.log(`worker RSS after round 1: ${rss1} kB, after round 2: ${rss2} kB`);
    assert.ok(rss2 < 1536 * 1024, `RSS ${rss2} kB above 1.5 GiB`);
    const m = await (await fetch(`${wk.url}/metrics`)).text();
    const hits = Number(/codecanvas_cache_hits_total (\d+)/.exec(m)[1]);
    assert.ok(hits >= 2 * CLIENTS * 10 * 0.9, `cache hits ${hits}`);
    assert.match(m, /codecanvas_requests_in_flight [01]\n/);
  } finally {
    await wk.stop();
    await sd.stop();
  }
});
