// scripts/bench files: what a project's files cost when its sandbox sleeps or is lost, each
// beside an operation on a running sandbox measured in the same run (Release build,
// codecanvas-worker + codecanvas-sandboxd on 127.0.0.1):
//
//   1. the first operation on an idle project whose sandbox was paused (as at its timeout;
//      paused here through sandboxd's API so that no run waits for a clock): readFile of a
//      small file, which resumes it;
//   2. the first operation after the project's sandbox was lost (deleted behind the worker's
//      back) for a project of 10 MB (incompressible): a new sandbox, the snapshot uploaded and
//      extracted, then the readFile;
// baseline: the same readFile on the running sandbox.
// Options: --n N (samples of each, default 20), --mb N (project size, default 10).
// bench-targets: codecanvas-worker codecanvas-sandboxd codecanvas-sandbox-agent
import { performance } from 'node:perf_hooks';

import { startSandboxd } from '../../tests/lib/sandboxd.mjs';
import { startWorker } from '../../tests/lib/worker.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 20);
const MB = arg('--mb', 10);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(2)} ms`;
function line(label, value, base) {
  console.log(`${label.padEnd(46)} ${value.padStart(12)}   baseline ${base.padStart(12)}   ratio ${(parseFloat(value) / parseFloat(base)).toFixed(2)}x`);
}

const sd = await startSandboxd();
const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--snapshot-debounce', '50'] });
const tok = wk.token('bench');
const ok = (r) => {
  if (r.status !== 200 || !r.body.ok) throw new Error(r.text);
  return r.body.result;
};
const read = (project) => wk.rpc(tok, { op: 'readFile', project, args: { path: 'small.txt' } }).then(ok);
const project = (p) => wk.rpc(tok, { op: 'getProject', project: p }).then(ok);
const sbxApi = (method, path) => fetch(`${sd.url}${path}`, { method, headers: { 'X-API-KEY': sd.apiKey } });

async function snapshotAfter(p, t) {
  for (let i = 0; i < 600; i++) {
    const info = await project(p);
    if (info.snapshot?.takenAt >= t) return info;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no snapshot');
}

try {
  // the project: a small file and MB of incompressible data
  const t0 = Date.now();
  ok(await wk.rpc(tok, { op: 'writeFile', project: 'p', args: { path: 'small.txt', content: 'hello\n' } }));
  ok(await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: `head -c ${MB * 1000000} /dev/urandom > data.bin`, useCache: false } }));
  const snap = await snapshotAfter('p', t0);
  console.log(`project of ${MB} MB; its snapshot ${(snap.snapshot.bytes / 1e6).toFixed(1)} MB; ${N} samples each`);

  const running = [];
  const resumed = [];
  const restored = [];
  for (let i = 0; i < N; i++) {
    let t = performance.now();
    await read('p');
    running.push(performance.now() - t);

    const id = (await project('p')).sandboxId;
    if ((await sbxApi('POST', `/sandboxes/${id}/pause`)).status !== 204) throw new Error('pause');
    t = performance.now();
    await read('p');
    resumed.push(performance.now() - t);

    if (i < Math.min(N, 10)) {
      await snapshotAfter('p', 0); // the project's snapshot (a read changes no files: it stays)
      const cur = (await project('p')).sandboxId;
      if ((await sbxApi('DELETE', `/sandboxes/${cur}`)).status !== 204) throw new Error('delete');
      t = performance.now();
      const r = await read('p');
      restored.push(performance.now() - t);
      if (!r.sandboxRestored) throw new Error('not restored');
    }
  }
  console.log('');
  line('readFile on a running sandbox p50', ms(pct(running, 50)), ms(pct(running, 50)));
  line('first op on a paused project p50', ms(pct(resumed, 50)), ms(pct(running, 50)));
  line('first op on a paused project p95', ms(pct(resumed, 95)), ms(pct(running, 95)));
  line(`first op after a loss, ${MB} MB restored p50 (n=${restored.length})`, ms(pct(restored, 50)), ms(pct(running, 50)));
  line(`first op after a loss, ${MB} MB restored p95`, ms(pct(restored, 95)), ms(pct(running, 95)));
} finally {
  await wk.stop();
  await sd.stop();
}
