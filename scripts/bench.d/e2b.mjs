// scripts/bench e2b: the native E2B client (native/e2b, tests/bench/bench_e2b.c) against a
// Release codecanvas-sandboxd, beside the official npm `e2b` SDK making the same calls to the
// same server in the same run.  Both are clients of one server, so the ratio is the cost of
// the client itself (HTTP, parsing, connection reuse).
//
//   scripts/bench e2b [iterations]      (default 200)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startSandboxd } from '../../tests/lib/sandboxd.mjs';

const require = createRequire(join(process.env.CC_SOURCE_DIR, 'tests', 'package.json'));
const { Sandbox } = require('e2b');
const n = Math.max(10, Number(process.argv[2] ?? 200));

function stats(v) {
  v.sort((a, b) => a - b);
  const sum = v.reduce((a, b) => a + b, 0);
  return { n: v.length, p50: v[v.length >> 1], p95: v[Math.min(v.length - 1, Math.floor(v.length * 0.95))], mean: sum / v.length };
}

async function time(count, fn) {
  const v = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await fn(i);
    v.push(performance.now() - t0);
  }
  return stats(v);
}

function runC(url, key) {
  return new Promise((resolve, reject) => {
    const p = spawn(join(process.env.CC_BIN_DIR, 'bench_e2b'), [url, key, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`bench_e2b exited ${code}`))));
  });
}

const sd = await startSandboxd({ args: ['--max-sandboxes', '16'] });
try {
  const opts = { apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url };
  const c = await runC(sd.url, sd.apiKey);

  const creates = Math.max(5, Math.floor(n / 10));
  const sdk = {};
  sdk.create_to_first_result = await time(creates, async () => {
    const s = await Sandbox.create(opts);
    await s.commands.run('true');
    await s.kill();
  });
  const s = await Sandbox.create(opts);
  const payload = 'x'.repeat(1024);
  await s.files.write('/home/user/bench.txt', payload);
  sdk.exec_true = await time(n, () => s.commands.run('true'));
  sdk.stat = await time(n, () => s.files.getInfo('/home/user/bench.txt'));
  sdk.read_1k = await time(n, () => s.files.read('/home/user/bench.txt'));
  sdk.write_1k = await time(n, () => s.files.write('/home/user/bench.txt', payload));
  await s.kill();

  const fmt = (x) => x.toFixed(3).padStart(9);
  console.log(`native E2B client (cc_e2b) vs official e2b SDK ${require('e2b/package.json').version}, same sandboxd, ${n} iterations (ms)`);
  console.log('operation                 cc_e2b p50    SDK p50   ratio | cc_e2b p95    SDK p95');
  for (const k of Object.keys(c)) {
    const a = c[k], b = sdk[k];
    console.log(`${k.padEnd(24)} ${fmt(a.p50)}  ${fmt(b.p50)}  ${(a.p50 / b.p50).toFixed(2).padStart(6)} | ${fmt(a.p95)}  ${fmt(b.p95)}`);
  }
} finally {
  await sd.stop();
}
