// Root inside a codecanvas-sandboxd sandbox, through the official E2B SDK (npm e2b, as pinned):
// `user: 'root'` runs as uid 0 of the sandbox's own user namespace with HOME and cwd /root, a
// root upload of a relative path lands in /root, `sudo` works for `user` without a password,
// commands as `user` stay uid 1000 — and root inside stays unprivileged on the host: uid 0 is
// host uid 101001, under the same seccomp filter and cgroup, and cannot read host files `user`
// cannot, mount, load modules, create user namespaces or reach host loopback.
// Needs sandboxd to run as root (the two-range uid map); otherwise every test is skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { Sandbox } from 'e2b';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { run, useSandboxd } from '../lib/sdk.mjs';

const isRoot = process.getuid?.() === 0;
let sd;

before(async () => {
  if (!isRoot) return;
  sd = await startSandboxd();
  useSandboxd(sd);
});

after(async () => {
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});


describe('root and sudo', { skip: !isRoot && 'sandboxd must run as root for a root inside' }, () => {
  test('the start line says root inside maps to an unprivileged host uid', () => {
    assert.match(sd.stderr, /root 0 = host uid 101001/);
  });

  test('user stays uid 1000; sudo and user: root are uid 0 with /root', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const u = await run(sbx, 'id -u; id -un; pwd; echo $HOME');
      assert.equal(u.stdout, '1000\nuser\n/home/user\n/home/user\n');
      const s = await run(sbx, 'sudo id -u');
      assert.equal(s.exitCode, 0, s.stderr);
      assert.equal(s.stdout, '0\n');
      assert.equal((await run(sbx, 'sudo -u user id -u')).stdout, '1000\n');
      assert.equal((await run(sbx, "sudo sh -c 'id -u; echo $HOME'")).stdout, '0\n/root\n');
      assert.equal((await run(sbx, 'sudo -i pwd')).stdout, '/root\n');
      const r = await run(sbx, 'id -u; id -g; whoami; pwd; echo $HOME $USER', { user: 'root' });
      assert.equal(r.stdout, '0\n0\nroot\n/root\n/root root\n');
      // root's files are root's; user cannot read /root, sudo can
      await run(sbx, 'echo secret > /root/s; chmod 600 /root/s', { user: 'root' });
      const denied = await run(sbx, 'cat /root/s');
      assert.notEqual(denied.exitCode, 0);
      assert.equal((await run(sbx, 'sudo cat /root/s')).stdout, 'secret\n');
      // user's files stay user's: what root creates in the home is root's, what user creates is user's
      assert.equal((await run(sbx, 'touch a; stat -c %u a')).stdout, '1000\n');
      assert.equal((await run(sbx, 'sudo touch b; stat -c %u b')).stdout, '0\n');
      assert.equal((await run(sbx, 'stat -c %u /home/user')).stdout, '1000\n');
      assert.equal((await run(sbx, 'stat -c %a /tmp')).stdout, '1777\n');
    } finally {
      await sbx.kill();
    }
  });

  test('files as root: a relative upload lands in /root; default files stay in /home/user', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const w = await sbx.files.write('hello.txt', 'hi root', { user: 'root' });
      assert.equal(w.path, '/root/hello.txt');
      assert.equal(await sbx.files.read('/root/hello.txt', { user: 'root' }), 'hi root');
      assert.equal(await sbx.files.read('hello.txt', { user: 'root' }), 'hi root');
      assert.equal((await run(sbx, 'stat -c %u /root/hello.txt', { user: 'root' })).stdout, '0\n');
      // user cannot read it through /files either
      await assert.rejects(sbx.files.read('/root/hello.txt'));
      const u = await sbx.files.write('hello.txt', 'hi user');
      assert.equal(u.path, '/home/user/hello.txt');
      assert.equal((await run(sbx, 'stat -c %u hello.txt')).stdout, '1000\n');
      const names = (await sbx.files.list('/root', { user: 'root' })).map((e) => e.name);
      assert.ok(names.includes('hello.txt'), names.join(','));
      assert.ok(await sbx.files.makeDir('d', { user: 'root' }));
      assert.equal((await sbx.files.getInfo('d', { user: 'root' })).path, '/root/d');
    } finally {
      await sbx.kill();
    }
  });

  test('root inside is unprivileged on the host', async () => {
    // a host file only host root can read, outside anything the sandbox mounts
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-root-'));
    const secret = path.join(dir, 'secret');
    fs.writeFileSync(secret, 'host secret\n', { mode: 0o600 });
    // a host service on loopback
    const srv = net.createServer((c) => c.end('host service\n'));
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const port = srv.address().port;
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const as = { user: 'root' };
      // host uid of sandbox root: the agent and root's commands are host uid 101001, not 0
      // A sleep with a duration no other test uses, reported once it has exec'd (its comm is
      // sleep), so the host-side scan below finds exactly this process.
      const tag = `${30 + (process.pid % 1000) / 1000}`;
      const me = await run(sbx, `sleep ${tag} & p=$!; until [ "$(cat /proc/$p/comm)" = sleep ]; do :; done; echo $p`, as);
      const inner = me.stdout.trim();
      const uids = new Set();
      for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
        let st;
        try {
          st = fs.readFileSync(`/proc/${p}/status`, 'utf8');
        } catch {
          continue;
        }
        const nsm = /NSpid:\s+([\d\s]+?)\n/.exec(st);
        const ids = nsm ? nsm[1].trim().split(/\s+/) : [];
        const cmd = (() => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
          } catch {
            return '';
          }
        })();
        // innermost pid (the sandbox's own) and exactly our command line
        if (ids.length > 1 && ids[ids.length - 1] === inner && cmd === `sleep\0${tag}\0`)
          uids.add(/Uid:\s+(\d+)/.exec(st)[1]);
      }
      assert.deepEqual([...uids], ['101001']);
      // the same seccomp filter and no capabilities outside the sandbox's namespace
      const sec = await run(sbx, 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status', as);
      assert.match(sec.stdout, /Seccomp:\s+2/);
      assert.match(sec.stdout, /NoNewPrivs:\s+1/);
      // the host file is not in the sandbox's view at all; the host's root-only files that are
      // (read-only /etc) stay unreadable to root inside, as to user
      assert.notEqual((await run(sbx, `cat ${secret}`, as)).exitCode, 0);
      // /etc/shadow: the host's stays unreadable (read-only system); with the writable system
      // the sandbox has its own, readable by its root, with no password of the host's in it
      const shadow = await run(sbx, 'cat /etc/shadow', as);
      if (shadow.exitCode === 0) {
        for (const line of shadow.stdout.trim().split('\n')) assert.match(line, /^[^:]+:\*:/);
      } else {
        assert.equal(shadow.stdout, '');
        assert.match(shadow.stderr, /Permission denied/);
      }
      // no mount (seccomp), not even of a fresh tmpfs; the host's disk is not reachable
      const m = await run(sbx, 'mkdir -p /root/m && mount -t tmpfs none /root/m', as);
      assert.notEqual(m.exitCode, 0);
      assert.notEqual((await run(sbx, 'sudo mount --bind / /root/m')).exitCode, 0);
      // no module loading
      const mod = await run(sbx, "python3 -c \"import ctypes,os; l=ctypes.CDLL(None,use_errno=True); r=l.syscall(313,-1,b'',0); print(r, ctypes.get_errno())\"", as);
      assert.equal(mod.stdout, '-1 1\n');
      // no nested user namespace (with its fresh capabilities)
      assert.notEqual((await run(sbx, 'unshare -U true', as)).exitCode, 0);
      assert.notEqual((await run(sbx, "python3 -c \"import os; os.unshare(os.CLONE_NEWUSER)\"", as)).exitCode, 0);
      // the system is the sandbox's own (a writable layer, sandboxd_rootfs.test.mjs): root's
      // writes there succeed, and the host's files stay unchanged
      const before = fs.readFileSync('/etc/hostname', 'utf8');
      assert.equal((await run(sbx, 'echo x > /etc/hostname', as)).exitCode, 0);
      assert.equal((await run(sbx, 'touch /usr/cc-root-x', as)).exitCode, 0);
      assert.equal(fs.readFileSync('/etc/hostname', 'utf8'), before);
      assert.equal(fs.existsSync('/usr/cc-root-x'), false);
      // host loopback is unreachable for root too
      const lo = await run(
        sbx,
        `python3 -c "import socket; s=socket.socket(); s.settimeout(2); print(s.connect_ex(('127.0.0.1', ${port})))"`,
        as,
      );
      assert.notEqual(lo.stdout.trim(), '0');
      assert.notEqual((await run(sbx, `curl -s -m 3 http://10.0.2.2:${port}/`, as)).exitCode, 0);
      // root inside can kill only the sandbox's own processes: the host's pid 1 is not visible
      assert.notEqual((await run(sbx, 'kill -0 ' + sd.pid, as)).exitCode, 0);
    } finally {
      await sbx.kill();
      srv.close();
      assert.equal(fs.readFileSync(secret, 'utf8'), 'host secret\n');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("root's home is on the sandbox's disk, in its size limit", async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      // the disk (--disk-mb, 1024 MiB by default) holds /root and /home/user alike; filling
      // it is refused with ENOSPC (sandboxd_rootfs.test.mjs, with a disk smaller than memory)
      const sz = await run(sbx, 'df -B1 --output=size /root | tail -1', { user: 'root' });
      assert.equal(Number(sz.stdout.trim()), 1024 * 1024 * 1024);
      const used = async () => Number((await run(sbx, 'df -B1 --output=used /home/user | tail -1')).stdout.trim());
      const u0 = await used();
      assert.equal((await run(sbx, 'head -c 8M /dev/zero > /root/big', { user: 'root' })).exitCode, 0);
      assert.ok((await used()) - u0 >= 8 << 20);
      assert.equal((await run(sbx, 'echo ok')).stdout, 'ok\n');
    } finally {
      await sbx.kill();
    }
  });
});
