// Escape and abuse corpus, end to end: hostile code inside real sandboxes, driven through the
// official E2B SDK and plain HTTP against a real codecanvas-sandboxd.  Every case asserts that
// the host is unaffected and that sandboxd keeps serving.  (The runtime-level versions of these
// cases are C1's tests of native/sandbox/.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CommandExitError, InvalidArgumentError, NotEnoughSpaceError, NotFoundError, Sandbox, SandboxError, TimeoutError } from 'e2b';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;
let hostDir;
let secretPath;
const SECRET = `host-secret-${randomBytes(8).toString('hex')}`;

before(async () => {
  sd = await startSandboxd({
    args: ['--memory-mb', '256', '--pids', '128', '--disk-mb', '64'],
    // a small ASan quarantine, so that sandboxd's RSS reflects live memory in the flood test
    env: { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=16` },
  });
  useSandboxd(sd);
  hostDir = mkdtempSync(join(tmpdir(), 'cc-abuse-'));
  secretPath = join(hostDir, 'secret.txt');
  writeFileSync(secretPath, SECRET);
});

after(async () => {
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
});

/** sandboxd still answers the control plane and runs commands in a fresh sandbox. */
async function assertServing() {
  const s = await Sandbox.create({ timeoutMs: 60_000 });
  try {
    const r = await s.commands.run('echo alive');
    assert.equal(r.stdout, 'alive\n');
  } finally {
    await s.kill();
  }
  assert.equal(sd.process.exitCode, null, 'sandboxd still running');
}

function hostSecretIntact() {
  assert.equal(readFileSync(secretPath, 'utf8'), SECRET);
}

/** Host pids whose command line contains marker. */
function hostPidsWith(marker) {
  const found = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker)) found.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Polls cond() (bounded) until it is true; returns its last value. */
async function eventually(cond, ms = 10_000) {
  const end = Date.now() + ms;
  let v = await cond();
  while (!v && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    v = await cond();
  }
  return v;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

const failsOrKilled = (e) => e instanceof CommandExitError || e instanceof TimeoutError;

describe('abuse', () => {
  let sbx;
  before(async () => {
    sbx = await Sandbox.create({ timeoutMs: 600_000 });
  });
  after(async () => {
    await sbx?.kill();
  });

  test('a symlink to a host file planted in the home reads and writes nothing on the host', async () => {
    await sbx.commands.run(`ln -s ${secretPath} /home/user/link; ln -s /proc/1/root${secretPath} /home/user/link2; ln -s ${hostDir} /home/user/dirlink`);
    for (const p of ['/home/user/link', '/home/user/link2', '/home/user/dirlink/secret.txt']) {
      // /files download: the link resolves inside the sandbox, where the host file does not exist
      await assert.rejects(sbx.files.read(p), (e) => e instanceof NotFoundError || e instanceof InvalidArgumentError, p);
      // /files upload through the link
      await sbx.files.write(p, 'overwritten').catch(() => {});
      hostSecretIntact();
    }
    assert.ok(!existsSync(join(hostDir, 'x.txt')));
    await sbx.files.write('/home/user/dirlink/x.txt', 'x').catch(() => {});
    assert.ok(!existsSync(join(hostDir, 'x.txt')), 'no file created on the host through a dir link');
    // filesystem RPCs through the links
    await sbx.files.getInfo('/home/user/link').catch(() => {});
    await sbx.files.list('/home/user/dirlink').catch(() => {});
    await sbx.files.rename('/home/user/dirlink/secret.txt', '/home/user/stolen.txt').catch(() => {});
    await sbx.files.remove('/home/user/dirlink/secret.txt').catch(() => {});
    await sbx.files.makeDir('/home/user/dirlink/newdir').catch(() => {});
    hostSecretIntact();
    assert.ok(!existsSync(join(hostDir, 'newdir')));
    assert.deepEqual(readdirSync(hostDir), ['secret.txt']);
    // and no command sees the host file either
    const r = await sbx.commands.run(`cat ${secretPath} /home/user/link 2>&1 || true`);
    assert.ok(!r.stdout.includes(SECRET));
    await assertServing();
  });

  test('.. paths are refused and reach nothing outside', async () => {
    const rel = `../../..${secretPath}`;
    await assert.rejects(sbx.files.read(`/home/user/${rel}`), (e) => e instanceof InvalidArgumentError || e instanceof NotFoundError);
    await assert.rejects(sbx.files.read(rel), (e) => e instanceof InvalidArgumentError || e instanceof NotFoundError);
    await sbx.files.write(`/home/user/../../..${hostDir}/dotdot.txt`, 'x').catch(() => {});
    await sbx.files.write([{ path: `../../..${hostDir}/dotdot2.txt`, data: 'x' }]).catch(() => {});
    await sbx.files.list(`/home/user/../../..${hostDir}`).catch(() => {});
    await sbx.files.remove(`/home/user/../../..${hostDir}`).catch(() => {});
    assert.deepEqual(readdirSync(hostDir), ['secret.txt']);
    hostSecretIntact();
    // raw HTTP with an encoded traversal
    const r = await fetch(`${sd.url}/files?path=${encodeURIComponent('/home/user/../../../etc/shadow')}`, {
      headers: { 'X-Access-Token': (await Sandbox.connect(sbx.sandboxId)).envdAccessToken ?? '' },
    });
    assert.notEqual(r.status, 200);
    const text = await r.text();
    assert.ok(!text.includes('root:'), 'no /etc/shadow content');
    assert.equal(typeof JSON.parse(text).code, 'number');
  });

  test('fork bomb is contained by the pids limit and the deadline', async () => {
    const other = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await assert.rejects(other.commands.run(':(){ :|:& };:; sleep 100', { timeoutMs: 4_000 }), failsOrKilled);
      await other.kill();
      await assertServing();
    } finally {
      await other.kill().catch(() => {});
    }
  });

  test('memory hog is killed by the memory limit', async () => {
    const other = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await assert.rejects(
        other.commands.run('python3 -c "b = bytearray(1 << 30); print(len(b))"', { timeoutMs: 30_000 }),
        (e) => failsOrKilled(e) || e instanceof SandboxError,
      );
    } finally {
      await other.kill().catch(() => {});
    }
    await assertServing();
  });

  test('disk-filling writes fail with ENOSPC inside, 507 on /files', async () => {
    await assert.rejects(sbx.commands.run('dd if=/dev/zero of=/home/user/fill bs=1M count=200'), (e) => {
      assert.ok(e instanceof CommandExitError);
      assert.match(e.stderr, /No space left/);
      return true;
    });
    await assert.rejects(sbx.files.write('/home/user/fill2', new Uint8Array(1 << 20).buffer), NotEnoughSpaceError);
    await sbx.commands.run('rm -f /home/user/fill /home/user/fill2');
    await sbx.files.write('/home/user/after.txt', 'fits again');
    assert.equal(await sbx.files.read('/home/user/after.txt'), 'fits again');
    await assertServing();
  });

  test('output flood streams through bounded buffers', async () => {
    const before = rssKiB(sd.pid);
    let bytes = 0;
    const r = await sbx.commands.run('head -c 30000000 /dev/zero | base64 -w 1000', {
      onStdout: (d) => {
        bytes += d.length;
      },
      timeoutMs: 120_000,
    });
    assert.equal(r.exitCode, 0);
    assert.equal(bytes, 40_040_000);
    // a flood nobody reads: detach and kill it
    const h = await sbx.commands.run('cat /dev/zero', { background: true });
    await h.disconnect();
    assert.equal(await sbx.commands.kill(h.pid), true);
    const grown = rssKiB(sd.pid) - before;
    assert.ok(grown < 200_000, `sandboxd RSS grew by ${grown} KiB`);
    await assertServing();
  });

  test('kill -STOP on its own process group and on everything it can signal', async () => {
    // stops itself and its group: the deadline still ends it (SIGKILL works on stopped tasks)
    await assert.rejects(sbx.commands.run('kill -STOP 0; echo never', { timeoutMs: 2_000 }), failsOrKilled);
    // stops every other process it may signal (kill(-1) spares the caller and PID 1, the agent)
    const sleeper = await sbx.commands.run('sleep 1000', { background: true });
    const r1 = await sbx.commands.run('kill -STOP -1; echo stopped the others');
    assert.equal(r1.stdout, 'stopped the others\n');
    assert.equal(await sbx.commands.kill(sleeper.pid), true);
    await assert.rejects(sleeper.wait(), (e) => e instanceof CommandExitError && e.exitCode === -1);
    const r = await sbx.commands.run('echo still works');
    assert.equal(r.stdout, 'still works\n');
    await assertServing();
  });

  test('one sandbox can neither read another one\'s files nor signal its processes', async () => {
    const a = await Sandbox.create({ timeoutMs: 120_000 });
    const b = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await a.files.write('/home/user/a-secret.txt', 'only for a');
      const sleeper = await a.commands.run('sleep 1000', { background: true });
      // from inside b
      const look = await b.commands.run('ls /home/user; cat /home/user/a-secret.txt 2>&1; ls /proc | grep -c "^[0-9]" ; kill -9 -1 2>/dev/null; true');
      assert.ok(!look.stdout.includes('only for a'));
      // through the API: b's token with a's id, and a's pid through b
      const bToken = (await Sandbox.connect(b.sandboxId)).envdAccessToken ?? '';
      const cross = await fetch(`${sd.url}/process.Process/SendSignal`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': a.sandboxId, 'X-Access-Token': bToken },
        body: JSON.stringify({ process: { pid: sleeper.pid }, signal: 'SIGNAL_SIGKILL' }),
      });
      assert.equal(cross.status, 401);
      const viaB = await fetch(`${sd.url}/files?path=/home/user/a-secret.txt`, { headers: { 'X-Access-Token': bToken } });
      assert.equal(viaB.status, 404);
      const aList = await a.commands.list();
      assert.ok(aList.some((p) => p.pid === sleeper.pid), 'a\'s process survived');
      assert.equal(await a.files.read('/home/user/a-secret.txt'), 'only for a');
    } finally {
      await a.kill();
      await b.kill();
    }
  });

  test('sandboxd\'s port and other host loopback ports are unreachable from inside', async () => {
    const probe = `import socket,sys
for host in ["127.0.0.1", "10.0.2.2", "10.0.2.3"]:
    try:
        socket.create_connection((host, ${sd.port}), 2).close()
        print("CONNECTED", host)
    except OSError as e:
        print("refused", host, e.__class__.__name__)
`;
    await sbx.files.write('/home/user/probe.py', probe);
    const r = await sbx.commands.run('python3 /home/user/probe.py', { timeoutMs: 30_000 });
    assert.ok(!r.stdout.includes('CONNECTED'), r.stdout);
  });

  test('after kill and after timeout no process of the sandbox is left on the host', async () => {
    const marker = `9${randomBytes(4).readUInt32BE(0)}`;
    const k = await Sandbox.create({ timeoutMs: 120_000 });
    await k.commands.run(`sleep ${marker}1 & sleep ${marker}2 & (sleep ${marker}3 &) ; true`);
    await k.commands.run(`sleep ${marker}4`, { background: true });
    assert.ok(await eventually(() => hostPidsWith(`sleep\0${marker}`).length === 4), 'the sleepers are visible on the host before');
    await k.kill();
    assert.deepEqual(hostPidsWith(`sleep\0${marker}`), []);

    const t = await Sandbox.create({ timeoutMs: 5_000 });
    const marker2 = `8${randomBytes(4).readUInt32BE(0)}`;
    await t.commands.run(`sleep ${marker2}`, { background: true, timeoutMs: 0 });
    assert.ok(await eventually(() => hostPidsWith(`sleep\0${marker2}`).length === 1), 'the sleeper is visible on the host before');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await t.isRunning())) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await t.isRunning(), false);
    assert.deepEqual(hostPidsWith(`sleep\0${marker2}`), []);
    await assertServing();
  });
});
