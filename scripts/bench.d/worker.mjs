// scripts/bench worker: codecanvas-worker throughput and latency, each beside a baseline
// measured in the same run (Release build from CC_BIN_DIR, everything on 127.0.0.1).
//
//   1. cached exec at 64 connections (wrk + Lua, 2 threads): requests/s and p50/p99,
//      beside GET /healthz at the same concurrency (the HTTP floor of the same server), run
//      alternately (exec, healthz, exec, healthz; half the time each) so that both see the
//      same machine load; prints the ratio and the worker's CPU per request of each;
//   2. uncached `exec true` through the worker (useCache:false, sequential) beside the
//      official e2b SDK running `true` against codecanvas-sandboxd directly: p50/p95 and the
//      worker's overhead at p50;
//   3. getHistory of 1000 records (limit 1000) p50/p95, beside getHistory with limit 1.
//
// Each part runs twice: on the SQLite store, then on the PostgreSQL store (a server of this run's
// own, tests/lib/postgres.mjs, fsync on), and a last table sets PostgreSQL beside SQLite.
//
// Targets (issue 4): >= 10,000 cached exec/s on 2 cores with p99 < 5 ms; overhead over the
// direct SDK path <= 2 ms at p50; history of 1000 in < 5 ms.  Issue 16: a cached exec at
// >= 0.8x the healthz throughput of the same run, <= 15 us worker CPU each.  Issue 13: cached
// exec on PostgreSQL >= 0.5x SQLite's throughput, history of 1000 on PostgreSQL < 10 ms p50.
// Options: --seconds N (wrk duration, default 10), --records N (default 1000),
// --store sqlite|postgresql|both (default both), --http-threads N (the worker's event-loop
// threads; default its own: half the cores, at least one).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startSandboxd } from '../../tests/lib/sandboxd.mjs';
import { startWorker } from '../../tests/lib/worker.mjs';
import { startPostgres } from '../../tests/lib/postgres.mjs';

const require = createRequire(join(process.env.CC_SOURCE_DIR ?? process.cwd(), 'tests', 'package.json'));
const { Sandbox } = require('e2b');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('--seconds', 10);
const storeArg = process.argv.includes('--store') ? process.argv[process.argv.indexOf('--store') + 1] : 'both';
const RECORDS = arg('--records', 1000);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(2)} ms`;

function wrk(url, luaBody, token, conns, seconds = SECONDS) {
  const dir = mkdtempSync(join(tmpdir(), 'cc-bench-'));
  const script = join(dir, 'req.lua');
  writeFileSync(
    script,
    luaBody
      ? `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n` +
          `wrk.headers["Authorization"] = "Bearer ${token}"\nwrk.body = '${luaBody}'\n` +
          `done = function(summary, latency, requests)\n` +
          `  io.write(string.format("CC p50=%d p99=%d errors=%d non2xx=%d\\n", latency:percentile(50), latency:percentile(99), ` +
          `summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))\nend\n`
      : `done = function(summary, latency, requests)\n` +
          `  io.write(string.format("CC p50=%d p99=%d errors=%d non2xx=%d\\n", latency:percentile(50), latency:percentile(99), ` +
          `summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))\nend\n`,
  );
  const out = execFileSync('wrk', ['-t2', `-c${conns}`, `-d${seconds}s`, '-s', script, url], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const m = /CC p50=(\d+) p99=(\d+) errors=(\d+) non2xx=(\d+)/.exec(out);
  return { rps, requests, p50: Number(m[1]) / 1000, p99: Number(m[2]) / 1000, errors: Number(m[3]) + Number(m[4]) };
}

/* wrk runs of `rounds` alternating targets, each `seconds` long; per target: requests/s over
 * all its rounds, the worst p50/p99 of its rounds, errors, and the worker's CPU per request
 * (user+system of the whole process over its rounds, from /proc). */
function alternate(targets, rounds, seconds, pid) {
  const acc = targets.map(() => ({ requests: 0, secs: 0, p50: 0, p99: 0, errors: 0, cpuMs: 0 }));
  for (let r = 0; r < rounds; r++)
    targets.forEach((t, i) => {
      const c0 = cpuMs(pid);
      const res = wrk(t.url, t.body, t.token, 64, seconds);
      const a = acc[i];
      a.cpuMs += cpuMs(pid) - c0;
      a.requests += res.requests;
      a.secs += res.requests / res.rps;
      a.p50 = Math.max(a.p50, res.p50);
      a.p99 = Math.max(a.p99, res.p99);
      a.errors += res.errors;
    });
  return acc.map((a) => ({ ...a, rps: a.requests / a.secs, cpuUs: (a.cpuMs * 1000) / a.requests }));
}

/* CPU time (user+system) the worker process has used so far, in ms. */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / 100);
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function measure(sd, label, db) {
const logDir = mkdtempSync(join(tmpdir(), 'cc-bench-log-'));
const threads = process.argv.includes('--http-threads') ? ['--http-threads', String(arg('--http-threads', 0))] : [];
const wk = await startWorker({ sandboxd: sd, db, args: ['--rate-limit', '0', '--access-log', join(logDir, 'access.log'), ...threads] });
const out = { label };
try {
  const tok = wk.token('bench');
  console.log(`\n=== ${label} store: ${SECONDS} s per wrk run, ${RECORDS} records; cores: ${execFileSync('nproc', { encoding: 'utf8' }).trim()}; access log to a file`);

  // 1. cached exec vs /healthz
  const warm = await wk.rpc(tok, { op: 'exec', project: 'cached', args: { cmd: 'echo cached' } });
  if (warm.status !== 200) throw new Error(warm.text);
  // Steady state: the exec above marks the project for a snapshot (taken once it has been
  // quiet for snapshot_debounce_ms); wait for it rather than measure it, and warm up.
  for (const t0 = Date.now(); Date.now() - t0 < 20000;) {
    const p = await wk.rpc(tok, { op: 'getProject', project: 'cached' });
    const snap = p.body?.result?.snapshot; /* {pending:true} alone: not taken yet */
    if (snap?.takenAt && !snap.pending) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  wrk(`${wk.url}/v1/rpc`, '{"v":1,"id":"b","op":"exec","project":"cached","args":{"cmd":"echo cached"}}', tok, 64, 1);
  wrk(`${wk.url}/healthz`, null, null, 64, 1);
  const [cached, health] = alternate([
    { url: `${wk.url}/v1/rpc`, body: '{"v":1,"id":"b","op":"exec","project":"cached","args":{"cmd":"echo cached"}}', token: tok },
    { url: `${wk.url}/healthz`, body: null, token: null },
  ], 2, Math.max(1, Math.round(SECONDS / 2)), wk.pid);
  const ratio = cached.rps / health.rps;
  Object.assign(out, { cached, health });
  console.log('\n1. cached exec at 64 connections (wrk -t2 -c64; exec and healthz alternately, 2 rounds each)');
  console.log(`   cached exec      ${cached.rps.toFixed(0).padStart(7)} req/s   p50 ${ms(cached.p50)}   p99 ${ms(cached.p99)}   errors ${cached.errors}   (target >= 10000 req/s, p99 < 5 ms)`);
  console.log(`   GET /healthz     ${health.rps.toFixed(0).padStart(7)} req/s   p50 ${ms(health.p50)}   p99 ${ms(health.p99)}   errors ${health.errors}   (baseline: same server, no auth/store)`);
  console.log(`   ratio            ${ratio.toFixed(2)}x the healthz throughput   (target >= 0.8x)`);
  console.log(`   worker CPU       ${cached.cpuUs.toFixed(1)} us per cached exec, ${health.cpuUs.toFixed(1)} us per healthz   (user+system, from /proc; target <= 15 us per cached exec)`);
  // Both figures move with the host's load (the kernel's share of a loopback request is
  // about two thirds); the difference is what a cached exec costs beyond the HTTP floor.
  console.log(`   above healthz    ${(cached.cpuUs - health.cpuUs).toFixed(1)} us of CPU per cached exec beyond the same server's health check (auth, decode, memo, encode)`);

  // 2. uncached exec true: worker vs the official SDK straight to sandboxd, interleaved so
  //    that both see the same machine load.  The worker calls also fill the history.
  const sbx = await Sandbox.create({ apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url });
  const w = [];
  const s = [];
  const wexec = async () => {
    const r = await wk.rpc(tok, { op: 'exec', project: 'hist', args: { cmd: 'true', useCache: false } });
    if (r.status !== 200) throw new Error(r.text);
  };
  for (let i = 0; i < 20; i++) {
    await wexec();
    await sbx.commands.run('true');
  }
  for (let i = 0; i < RECORDS - 20; i++) {
    w.push(await timed(wexec));
    if (i % 3 === 0) s.push(await timed(() => sbx.commands.run('true')));
  }
  await sbx.kill();
  console.log('\n2. uncached `exec true`, sequential');
  console.log(`   through worker   p50 ${ms(pct(w, 50))}   p95 ${ms(pct(w, 95))}   (n=${w.length}; auth, record, cache write, sandbox)`);
  console.log(`   e2b SDK direct   p50 ${ms(pct(s, 50))}   p95 ${ms(pct(s, 95))}   (n=${s.length}; official e2b ${require('e2b/package.json').version} -> sandboxd)`);
  console.log(`   worker overhead  p50 ${ms(pct(w, 50) - pct(s, 50))}   (target <= 2 ms)`);
  out.uncached = pct(w, 50);
  out.overhead = pct(w, 50) - pct(s, 50);

  // 3. getHistory of 1000 records
  const h1000 = [];
  const h1 = [];
  let count = 0;
  const hc0 = cpuMs(wk.pid);
  for (let i = 0; i < 60; i++) {
    h1000.push(await timed(async () => {
      const r = await wk.rpc(tok, { op: 'getHistory', project: 'hist', args: { limit: 1000 } });
      count = r.body.result.items.length;
    }));
    h1.push(await timed(() => wk.rpc(tok, { op: 'getHistory', project: 'hist', args: { limit: 1 } })));
  }
  const histCpu = (cpuMs(wk.pid) - hc0) / 60; /* both requests of each pair */
  console.log(`\n3. getHistory, ${count} records in the page`);
  console.log(`   limit 1000       p50 ${ms(pct(h1000, 50))}   p95 ${ms(pct(h1000, 95))}   (target < 5 ms)`);
  console.log(`   limit 1          p50 ${ms(pct(h1, 50))}   p95 ${ms(pct(h1, 95))}   (baseline)`);
  console.log(`   worker CPU       ${ms(histCpu)} per (limit 1000 + limit 1) pair (from /proc)`);
  out.history = pct(h1000, 50);
} finally {
  await wk.stop();
  rmSync(logDir, { recursive: true, force: true });
}
return out;
}

const sd = await startSandboxd({ args: ['--no-internet'] });
let pg = null;
try {
  const runs = [];
  if (storeArg !== 'postgresql') runs.push(await measure(sd, 'SQLite', undefined));
  if (storeArg !== 'sqlite') {
    pg = await startPostgres();
    runs.push(await measure(sd, 'PostgreSQL', pg.createDatabase()));
  }
  if (runs.length === 2) {
    const [l, p] = runs;
    console.log('\n4. PostgreSQL beside SQLite (same machine, same run)');
    console.log(`   cached exec      ${p.cached.rps.toFixed(0)} vs ${l.cached.rps.toFixed(0)} req/s = ${(p.cached.rps / l.cached.rps).toFixed(2)}x   p99 ${ms(p.cached.p99)} vs ${ms(l.cached.p99)}   (target >= 0.5x)`);
    console.log(`   uncached exec    p50 ${ms(p.uncached)} vs ${ms(l.uncached)}   overhead over the SDK ${ms(p.overhead)} vs ${ms(l.overhead)}`);
    console.log(`   history of 1000  p50 ${ms(p.history)} vs ${ms(l.history)}   (target on PostgreSQL < 10 ms)`);
  }
} finally {
  await sd.stop();
  pg?.destroy();
}
