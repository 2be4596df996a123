// The wasm client benchmark (scripts/bench client).  Everything is measured in this run:
//   1. executeCommand answered from the local cache (wasm SQLite, no request) beside the same
//      command answered by the worker's cache over HTTP (through the client with its local
//      cache disabled, and as a bare node:http request), on 127.0.0.1;
//   2. codecanvas.wasm + codecanvas.js, raw and gzip -9, beside the JS a page shipped for the
//      same job before: npm e2b + @heyputer/puter.js bundled with esbuild --minify.
// Targets: local hit p50 < 0.2 ms; wasm+js smaller than the old bundle, gzip for gzip.
import 'fake-indexeddb/auto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const src = process.env.CC_SOURCE_DIR;
const web = process.env.CC_WEB_DIR;
const { startSandboxd } = await import(pathToFileURL(join(src, 'tests/lib/sandboxd.mjs')));
const { startWorker } = await import(pathToFileURL(join(src, 'tests/lib/worker.mjs')));
const { CodeCanvas } = await import(pathToFileURL(join(web, 'codecanvas.js')));

const N_LOCAL = Number(process.env.N_LOCAL ?? 5000);
const N_REMOTE = Number(process.env.N_REMOTE ?? 500);
const CMD = 'echo bench';

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}
const ms = (x) => (x < 1 ? x.toFixed(3) : x.toFixed(2)).padStart(8);
const kb = (b) => `${(b / 1024).toFixed(1)} KB`.padStart(10);

async function timeCalls(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

const sd = await startSandboxd();
const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
try {
  const token = wk.token('bench');
  const local = await CodeCanvas.connect({ workerUrl: wk.url, token, cacheName: 'bench-local' });
  const first = await local.executeCommand(CMD, 'bench'); // runs in the sandbox, fills both caches
  if (first.exitCode !== 0) throw new Error(`${CMD} failed: ${JSON.stringify(first)}`);
  await timeCalls(500, () => local.executeCommand(CMD, 'bench')); // warm-up (JIT)
  let hits = 0;
  const localT = await timeCalls(N_LOCAL, async () => { if ((await local.executeCommand(CMD, 'bench')).cached) hits++; });
  if (hits !== N_LOCAL) throw new Error(`only ${hits}/${N_LOCAL} local hits`);

  // The same command through the client with the local cache off: the worker answers from
  // its cache (a full HTTP round trip, parse, store lookup).
  const remote = await CodeCanvas.connect({ workerUrl: wk.url, token, maxStaleMs: 0, persist: false });
  await timeCalls(100, () => remote.executeCommand(CMD, 'bench'));
  const remoteT = await timeCalls(N_REMOTE, () => remote.executeCommand(CMD, 'bench'));
  const msg = { op: 'exec', project: 'bench', args: { cmd: CMD } };
  await timeCalls(100, () => wk.rpc(token, msg));
  const rpcT = await timeCalls(N_REMOTE, () => wk.rpc(token, msg));
  await local.close();
  await remote.close();

  const L = stats(localT), R = stats(remoteT), H = stats(rpcT);
  console.log(`\nexecuteCommand('${CMD}') latency, ms (Node ${process.version}, 127.0.0.1)`);
  console.log('                                              n      p50      p95      p99');
  console.log(`wasm client, local cache hit (no request)  ${String(L.n).padStart(5)} ${ms(L.p50)} ${ms(L.p95)} ${ms(L.p99)}`);
  console.log(`wasm client, worker cache (HTTP round trip) ${String(R.n).padStart(4)} ${ms(R.p50)} ${ms(R.p95)} ${ms(R.p99)}`);
  console.log(`bare node:http keep-alive, worker cache     ${String(H.n).padStart(4)} ${ms(H.p50)} ${ms(H.p95)} ${ms(H.p99)}`);
  console.log(`local hit vs worker round trip (p50): ${(R.p50 / L.p50).toFixed(1)}x faster; target p50 < 0.2 ms: ${L.p50 < 0.2 ? 'met' : 'NOT met'}`);
} finally {
  await wk.stop();
  await sd.stop();
}

// Sizes.
const dir = mkdtempSync(join(tmpdir(), 'cc-oldbundle-'));
try {
  const entry = join(src, 'tests', `.oldbundle-${process.pid}.mjs`); // resolves tests/node_modules
  writeFileSync(entry, "export { Sandbox } from 'e2b';\nexport { default as puter } from '@heyputer/puter.js';\n");
  try {
    execFileSync(join(src, 'tests/node_modules/.bin/esbuild'), [entry, '--bundle', '--minify', '--format=esm',
      '--platform=browser', '--external:node:*', `--outfile=${join(dir, 'old.js')}`, '--log-level=error']);
  } finally {
    rmSync(entry, { force: true });
  }
  const size = (b) => ({ raw: b.length, gz: gzipSync(b, { level: 9 }).length });
  const wasm = size(readFileSync(join(web, 'codecanvas.wasm')));
  const js = size(readFileSync(join(web, 'codecanvas.js')));
  const old = size(readFileSync(join(dir, 'old.js')));
  const ours = { raw: wasm.raw + js.raw, gz: wasm.gz + js.gz };
  console.log('\nsize                                        raw        gzip -9');
  console.log(`codecanvas.wasm                      ${kb(wasm.raw)} ${kb(wasm.gz)}`);
  console.log(`codecanvas.js                        ${kb(js.raw)} ${kb(js.gz)}`);
  console.log(`wasm + js                            ${kb(ours.raw)} ${kb(ours.gz)}`);
  console.log(`old bundle (e2b + puter.js, esbuild) ${kb(old.raw)} ${kb(old.gz)}`);
  console.log(`ratio ours/old                       ${(ours.raw / old.raw).toFixed(2).padStart(10)} ${(ours.gz / old.gz).toFixed(2).padStart(10)}`);
  console.log(`target (smaller, raw and gzip): raw ${ours.raw < old.raw ? 'met' : 'NOT met'}, gzip ${ours.gz < old.gz ? 'met' : 'NOT met'}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
