// scripts/bench sandboxd: codecanvas-sandboxd against bare bubblewrap, measured in one run.
//
//   1. create -> first command result: POST /sandboxes (allow_internet_access: false, so no
//      slirp4netns), then process.Process/Start of `/bin/bash -l -c true` (what the SDK's
//      commands.run sends) until the end-of-stream, over N sandboxes (default 50), one at a
//      time; and the same with allow_internet_access: true (the SDK's default: slirp4netns
//      attached, through whatever tap path the host allows, before create answers), whose
//      baseline is the no-egress figure (target <= 2x); with egress rules
//      (network: {denyOut: ['0.0.0.0/0'], allowOut: two entries}: nft in the sandbox's network
//      namespace before create answers), whose baseline is the egress figure; and the same
//      create -> first result on a second sandboxd started with --read-only-system (the host's
//      system read-only, no per-sandbox disk and overlays), the baseline of the writable
//      system's cost (target: <= 1 ms more);
//   2. exec latency of `true` in a live sandbox (Start of /bin/true until end-of-stream) and of
//      the SDK form `/bin/bash -l -c true`;
//   3. pause (keeping memory: the cgroup freezer, after /home/user is archived) and
//      resume -> first command result (POST /v2/sandboxes/{id}/connect, then Start of
//      /bin/true), over N sandboxes; and the same resume after a pause without memory (a cold
//      start from the archived files).  Target: resume -> first result p50 <= 10 ms;
//   4. create -> first command result with --warm-pool 4 (a second sandboxd): create hands out
//      a started sandbox; baseline the bare bwrap measured just before each sample (which also
//      gives the pool time to refill, as a user's think time would).  Target: at or below it;
//   5. 50 sandboxes alive at once: create them all (8 in flight), run `true` in each
//      concurrently, kill them all.
// Baseline for each: `bwrap --unshare-all --die-with-parent <read-only system dirs> /bin/true`
// (and `... /bin/bash -l -c true`), spawned and waited for from the same Node process.
// Traffic is plain HTTP over 127.0.0.1 with keep-alive, no SDK, so the numbers are the
// server's.  Usage: scripts/bench sandboxd [--n 50] [--alive 50] [--exec 200]
// bench-targets: codecanvas-sandboxd codecanvas-sandbox-agent
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

import { startSandboxd } from '../../tests/lib/sandboxd.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const N = opt('n', 50);
const ALIVE = opt('alive', 50);
const EXEC_N = opt('exec', 200);

const pct = (arr, p) => {
  const a = [...arr].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(p * (a.length - 1) + 0.5))];
};
const ms = (x) => `${x.toFixed(2)} ms`;

const BWRAP_ARGS = [
  '--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr',
  '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
  '--symlink', 'usr/sbin', '/sbin', '--ro-bind', '/etc', '/etc', '--proc', '/proc', '--dev', '/dev',
  '--tmpfs', '/tmp', '--tmpfs', '/home/user', '--chdir', '/home/user', '--setenv', 'HOME', '/home/user',
];

function bare(cmd) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn('bwrap', [...BWRAP_ARGS, ...cmd], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`bwrap exit ${code}`))));
  });
}

let sd;
async function api(method, path, body) {
  const r = await fetch(sd.url + path, {
    method,
    headers: { 'X-API-KEY': sd.apiKey, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function envelope(obj) {
  const p = Buffer.from(JSON.stringify(obj));
  const b = Buffer.alloc(5 + p.length);
  b.writeUInt32BE(p.length, 1);
  p.copy(b, 5);
  return b;
}

/** Runs cmd args in the sandbox through process.Process/Start; resolves with the exit code. */
async function run(sbx, cmd, args) {
  const r = await fetch(`${sd.url}/process.Process/Start`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/connect+json',
      'Connect-Protocol-Version': '1',
      'E2b-Sandbox-Id': sbx.sandboxID,
      'X-Access-Token': sbx.envdAccessToken,
    },
    body: envelope({ process: { cmd, args }, stdin: false }),
  });
  const buf = Buffer.from(await r.arrayBuffer());
  let off = 0;
  let exit = null;
  let eos = false;
  while (off + 5 <= buf.length) {
    const len = buf.readUInt32BE(off + 1);
    const msg = JSON.parse(buf.subarray(off + 5, off + 5 + len).toString());
    if (buf[off] === 2) {
      eos = true;
      if (msg.error) throw new Error(`stream error ${JSON.stringify(msg.error)}`);
    } else if (msg.event?.end) exit = msg.event.end.exitCode ?? 0;
    off += 5 + len;
  }
  if (!eos || exit === null) throw new Error('stream ended without end event / end-of-stream');
  return exit;
}

const create = () => api('POST', '/sandboxes', { templateID: 'base', timeout: 300, secure: true, allow_internet_access: false });
const createNet = () => api('POST', '/sandboxes', { templateID: 'base', timeout: 300, secure: true, allow_internet_access: true });
const createRules = () => api('POST', '/sandboxes', {
  templateID: 'base', timeout: 300, secure: true, allow_internet_access: true,
  network: { denyOut: ['0.0.0.0/0'], allowOut: ['10.0.2.3', '192.0.2.0/24'] },
});
const kill = (s) => api('DELETE', `/sandboxes/${s.sandboxID}`);

function line(label, value, base) {
  console.log(`${label.padEnd(44)} ${value.padStart(12)}   baseline ${base.padStart(12)}   ratio ${(parseFloat(value) / parseFloat(base)).toFixed(2)}x`);
}

async function main() {
  sd = await startSandboxd({ args: ['--max-sandboxes', String(Math.max(64, ALIVE + 4))] });
  const ro = await startSandboxd({ args: ['--read-only-system'] });
  console.log(`codecanvas-sandboxd at ${sd.url}; ${N} sandboxes, ${EXEC_N} execs, ${ALIVE} alive at once`);
  const onRo = async (fn) => {
    const main = sd;
    sd = ro;
    try {
      return await fn();
    } finally {
      sd = main;
    }
  };
  try {
    // warm up both paths (page cache, first bwrap)
    for (let i = 0; i < 3; i++) await bare(['/bin/true']);
    { const s = await create(); await run(s, '/bin/true', []); await kill(s); }
    await onRo(async () => { const s = await create(); await run(s, '/bin/true', []); await kill(s); });

    // Baseline and measurement are interleaved sample by sample, so that both see the same
    // machine load (the CI machine is shared).
    const bareTrue = [];
    const bareBash = [];

    // 1. create -> first command result
    const c2r = [];
    const createOnly = [];
    const c2rNet = [];
    const c2rRules = [];
    const c2rRo = [];
    let netSaid = null;
    for (let i = 0; i < N; i++) {
      {
        const t0 = performance.now();
        const s = await createNet();
        if ((await run(s, '/bin/bash', ['-l', '-c', 'true'])) !== 0) throw new Error('exit');
        c2rNet.push(performance.now() - t0);
        netSaid ??= s.internet ? 'egress attached' : `no egress: ${s.internetReason}`;
        await kill(s);
      }
      {
        const t0 = performance.now();
        const s = await createRules();
        if (!s.sandboxID) throw new Error(`create with egress rules: ${JSON.stringify(s)}`);
        if ((await run(s, '/bin/bash', ['-l', '-c', 'true'])) !== 0) throw new Error('exit');
        c2rRules.push(performance.now() - t0);
        await kill(s);
      }
      bareTrue.push(await bare(['/bin/true']));
      const t0 = performance.now();
      const s = await create();
      const t1 = performance.now();
      if ((await run(s, '/bin/bash', ['-l', '-c', 'true'])) !== 0) throw new Error('exit');
      c2r.push(performance.now() - t0);
      createOnly.push(t1 - t0);
      await kill(s);
      await onRo(async () => {
        const t2 = performance.now();
        const r = await create();
        if ((await run(r, '/bin/bash', ['-l', '-c', 'true'])) !== 0) throw new Error('exit');
        c2rRo.push(performance.now() - t2);
        await kill(r);
      });
    }
    await ro.stop();

    // 2. exec latency in a live sandbox
    const s = await create();
    const execTrue = [];
    const execBash = [];
    for (let i = 0; i < EXEC_N; i++) {
      const t0 = performance.now();
      await run(s, '/bin/true', []);
      execTrue.push(performance.now() - t0);
      if (i < N) bareBash.push(await bare(['/bin/bash', '-l', '-c', 'true']));
      const t1 = performance.now();
      await run(s, '/bin/bash', ['-l', '-c', 'true']);
      execBash.push(performance.now() - t1);
    }
    await kill(s);

    // 3. pause and resume
    const pauseT = [];
    const resumeT = [];
    const coldT = [];
    const bareP = [];
    for (let i = 0; i < N; i++) {
      bareP.push(await bare(['/bin/true']));
      const s = await create();
      await run(s, '/bin/true', []);
      let t0 = performance.now();
      await api('POST', `/sandboxes/${s.sandboxID}/pause`, {});
      pauseT.push(performance.now() - t0);
      t0 = performance.now();
      await api('POST', `/v2/sandboxes/${s.sandboxID}/connect`, { timeout: 300 });
      if ((await run(s, '/bin/true', [])) !== 0) throw new Error('exit');
      resumeT.push(performance.now() - t0);
      if (i < Math.min(N, 20)) {
        await api('POST', `/sandboxes/${s.sandboxID}/pause`, { memory: false });
        t0 = performance.now();
        await api('POST', `/v2/sandboxes/${s.sandboxID}/connect`, { timeout: 300 });
        if ((await run(s, '/bin/true', [])) !== 0) throw new Error('exit');
        coldT.push(performance.now() - t0);
      }
      await kill(s);
    }

    // 4. warm pool
    const poolT = [];
    const poolTrue = [];
    const bareW = [];
    {
      const main = sd;
      sd = await startSandboxd({ args: ['--warm-pool', '4'] });
      try {
        for (let i = 0; i < 3; i++) { const s = await create(); await run(s, '/bin/true', []); await kill(s); }
        for (let i = 0; i < N; i++) {
          // think time: the replacement of the previous take starts meanwhile (a benchmark
          // pause, not a synchronisation: without it the refill competes for the 2 cores)
          await new Promise((r) => setTimeout(r, 150));
          bareW.push(await bare(['/bin/true']));
          let t0 = performance.now();
          let s = await createNet(); // the pool's sandboxes have internet access, as the SDK's default
          if ((await run(s, '/bin/true', [])) !== 0) throw new Error('exit');
          poolTrue.push(performance.now() - t0);
          await kill(s);
          await new Promise((r) => setTimeout(r, 150));
          t0 = performance.now();
          s = await createNet();
          if ((await run(s, '/bin/bash', ['-l', '-c', 'true'])) !== 0) throw new Error('exit');
          poolT.push(performance.now() - t0);
          await kill(s);
        }
      } finally {
        await sd.stop();
        sd = main;
      }
    }

    // 5. many alive at once
    const tb0 = performance.now();
    await Promise.all(Array.from({ length: ALIVE }, () => bare(['/bin/true'])));
    const bareAlive = performance.now() - tb0;
    const ta0 = performance.now();
    const boxes = [];
    for (let i = 0; i < ALIVE; i += 8) {
      boxes.push(...(await Promise.all(Array.from({ length: Math.min(8, ALIVE - i) }, create))));
    }
    const tCreated = performance.now();
    const perCmd = await Promise.all(boxes.map(async (b) => {
      const t0 = performance.now();
      await run(b, '/bin/true', []);
      return performance.now() - t0;
    }));
    const tRan = performance.now();
    const listed = await api('GET', '/v2/sandboxes?limit=100');
    await Promise.all(boxes.map(kill));
    const tKilled = performance.now();

    console.log('');
    line(`create -> first result p50 (n=${N})`, ms(pct(c2r, 0.5)), ms(pct(bareTrue, 0.5)));
    line(`create -> first result p95`, ms(pct(c2r, 0.95)), ms(pct(bareTrue, 0.95)));
    line(`  of which POST /sandboxes p50`, ms(pct(createOnly, 0.5)), ms(pct(bareTrue, 0.5)));
    line(`create, read-only system -> result p50`, ms(pct(c2rRo, 0.5)), ms(pct(bareTrue, 0.5)));
    line(`create, read-only system -> result p95`, ms(pct(c2rRo, 0.95)), ms(pct(bareTrue, 0.95)));
    line(`writable vs read-only system p50`, ms(pct(c2r, 0.5)), ms(pct(c2rRo, 0.5)));
    line(`writable vs read-only system p95`, ms(pct(c2r, 0.95)), ms(pct(c2rRo, 0.95)));
    const pairs = c2r.map((x, i) => x - c2rRo[i]); // sample i of each, taken one after the other
    console.log(`writable system: cost per pair p50 ${ms(pct(pairs, 0.5))}, p25 ${ms(pct(pairs, 0.25))}, p75 ${ms(pct(pairs, 0.75))} (target <= 1 ms); sandboxd said "${(sd.stderr.match(/system: (writable|read-only)[^\n]*/) ?? ['?'])[0]}"`);
    line(`create+egress -> first result p50`, ms(pct(c2rNet, 0.5)), ms(pct(c2r, 0.5)));
    line(`create+egress -> first result p95`, ms(pct(c2rNet, 0.95)), ms(pct(c2r, 0.95)));
    line(`create+egress vs bare bwrap p50`, ms(pct(c2rNet, 0.5)), ms(pct(bareTrue, 0.5)));
    console.log(`create+egress: ${netSaid}; sandboxd said "egress: ${(sd.stderr.match(/egress: (.*?); seccomp:/) ?? [])[1]}"`);
    line(`create+egress rules -> first result p50`, ms(pct(c2rRules, 0.5)), ms(pct(c2rNet, 0.5)));
    line(`create+egress rules -> first result p95`, ms(pct(c2rRules, 0.95)), ms(pct(c2rNet, 0.95)));
    line(`warm pool: create -> /bin/true result p50`, ms(pct(poolTrue, 0.5)), ms(pct(bareW, 0.5)));
    line(`warm pool: create -> /bin/true result p95`, ms(pct(poolTrue, 0.95)), ms(pct(bareW, 0.95)));
    line(`warm pool: create -> bash -l -c true p50`, ms(pct(poolT, 0.5)), ms(pct(bareW, 0.5)));
    line(`warm pool: create -> bash -l -c true p95`, ms(pct(poolT, 0.95)), ms(pct(bareW, 0.95)));
    line(`pause (memory kept) p50 (n=${N})`, ms(pct(pauseT, 0.5)), ms(pct(bareP, 0.5)));
    line(`resume -> first result p50`, ms(pct(resumeT, 0.5)), ms(pct(bareP, 0.5)));
    line(`resume -> first result p95`, ms(pct(resumeT, 0.95)), ms(pct(bareP, 0.95)));
    line(`resume after pause w/o memory p50 (n=${coldT.length})`, ms(pct(coldT, 0.5)), ms(pct(bareP, 0.5)));
    line(`exec /bin/true p50 (n=${EXEC_N})`, ms(pct(execTrue, 0.5)), ms(pct(bareTrue, 0.5)));
    line(`exec /bin/true p95`, ms(pct(execTrue, 0.95)), ms(pct(bareTrue, 0.95)));
    line(`exec bash -l -c true p50 (SDK form)`, ms(pct(execBash, 0.5)), ms(pct(bareBash, 0.5)));
    line(`exec bash -l -c true p95`, ms(pct(execBash, 0.95)), ms(pct(bareBash, 0.95)));
    line(`${ALIVE} alive: create all (8 in flight)`, ms(tCreated - ta0), ms(bareAlive));
    line(`${ALIVE} alive: true in each, concurrently`, ms(tRan - tCreated), ms(bareAlive));
    console.log(`${ALIVE} alive: per-command p50 ${ms(pct(perCmd, 0.5))}, p95 ${ms(pct(perCmd, 0.95))}; listed ${listed.length}; kill all ${ms(tKilled - tRan)}`);
    console.log(`baseline = bare bwrap ${BWRAP_ARGS.length} args + /bin/true (or bash -l -c true), spawned from Node; for "alive", ${ALIVE} bare bwraps at once`);
    console.log(`targets: create -> first result p50 <= 50 ms; exec <= 1.5x baseline; create+egress <= 2x create (its baseline); resume -> first result <= 10 ms; warm pool create -> first result <= bare bwrap`);
  } finally {
    await ro.stop();
    await sd.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
