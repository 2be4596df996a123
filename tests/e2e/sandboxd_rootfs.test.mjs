// A writable system inside each codecanvas-sandboxd sandbox, through today's official SDK
// (npm e2b 2.51.0, unchanged): root writes anywhere (/0/x, /usr/local, /etc), `sudo apt-get
// install -y` from an apt repository on a test host of ours (over the sandbox's egress) and
// `sudo dpkg -i` of a package built here install it, each sandbox's changes are its own (another sandbox does
// not see them, a kill discards them, pause and resume keep them, with or without memory) and
// count in its disk size — while the host's files stay as they were and root inside reads no
// more of the host than an ordinary user can: not /etc/shadow, not a 0600 file made under
// /etc or /usr, not a file made under /etc after sandboxd started.
// Needs sandboxd to run as root (root inside); otherwise every test is skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Sandbox } from 'e2b-2.51';

import { startTestHost } from '../lib/netns.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { run, useSandboxd } from '../lib/sdk.mjs';

const isRoot = process.getuid?.() === 0;
const tag = `cc-rootfs-${process.pid}`;
// host files only host root may read, made before sandboxd starts (so its base saw them)
const etcSecret = `/etc/${tag}-secret`;
const usrSecret = `/usr/local/share/${tag}-secret`;
let sd;

const sha = (p) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

before(async () => {
  if (!isRoot) return;
  fs.writeFileSync(etcSecret, 'etc secret\n', { mode: 0o600 });
  fs.mkdirSync(path.dirname(usrSecret), { recursive: true });
  fs.writeFileSync(usrSecret, 'usr secret\n', { mode: 0o600 });
  sd = await startSandboxd({ args: ['--disk-mb', '64'] });
  useSandboxd(sd);
});

after(async () => {
  fs.rmSync(etcSecret, { force: true });
  fs.rmSync(usrSecret, { force: true });
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});


/** The sandbox's disk on the host (a tmpfs mount under the state dir), or null. */
function diskMount(id) {
  const dir = path.join(sd.stateDir, 'sys', 'disks', id, 'd');
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return mounts.some((l) => l.split(' ')[4] === dir) ? dir : null;
}

/** A .deb (Package: name) whose /usr/bin/<name> prints its name, built with dpkg-deb. */
function buildDeb(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-deb-'));
  fs.mkdirSync(path.join(dir, 'pkg/DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'pkg/usr/bin'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'pkg/DEBIAN/control'),
    `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: codecanvas tests <t@example.invalid>\nDescription: a test package\n`,
  );
  fs.writeFileSync(path.join(dir, `pkg/usr/bin/${name}`), `#!/bin/sh\necho hello from ${name}\n`, { mode: 0o755 });
  // as man-db's trigger does after nearly every package: chown to a system user
  fs.writeFileSync(path.join(dir, 'pkg/DEBIAN/postinst'),
    `#!/bin/sh\nset -e\nmkdir -p /var/cache/${name}\nchown man:man /var/cache/${name}\n`, { mode: 0o755 });
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', path.join(dir, 'pkg'), path.join(dir, 'p.deb')], {
    stdio: 'ignore',
  });
  const bytes = fs.readFileSync(path.join(dir, 'p.deb'));
  fs.rmSync(dir, { recursive: true, force: true });
  return bytes;
}

describe('a writable system', { skip: !isRoot && 'sandboxd must run as root for a root inside' }, () => {
  test('the start line says the system is writable', () => {
    assert.match(sd.stderr, /system: writable \(/);
  });

  test('root writes /0/x; another sandbox does not see it; a kill discards it', async () => {
    const a = await Sandbox.create({ timeoutMs: 120_000 });
    const b = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      // through a command and through the files API, as root
      const w = await run(a, 'mkdir /0 && echo hi > /0/x && cat /0/x', { user: 'root' });
      assert.equal(w.exitCode, 0, w.stderr);
      assert.equal(w.stdout, 'hi\n');
      await a.files.write('/0/y', 'from files\n', { user: 'root' });
      assert.equal(await a.files.read('/0/y'), 'from files\n');
      assert.equal((await run(a, 'sudo sh -c "echo more >> /0/x"; cat /0/x')).stdout, 'hi\nmore\n');
      // user's commands stay an ordinary user's: root's system is not writable to them
      assert.notEqual((await run(a, 'touch /0/z')).exitCode, 0);
      assert.notEqual((await run(a, 'touch /usr/local/bin/z')).exitCode, 0);
      // the files API writes as E2B's envd does for user: with root's rights, and what it
      // creates or writes becomes user's (E2B's "write multiple files" writes /0/... as user)
      await a.files.write([{ path: '/0/u/one.txt', data: '1' }, { path: '/0/u/two.txt', data: '2' }]);
      await a.files.makeDir('/opt/made/here');
      await a.files.write('/0/y', 'now user\'s\n');
      const owners = await run(a, 'stat -c "%n %U:%G" /0/u /0/u/one.txt /0/u/two.txt /opt/made /opt/made/here /0/y /0 /0/x');
      assert.equal(owners.stdout, [
        '/0/u user:user', '/0/u/one.txt user:user', '/0/u/two.txt user:user', '/opt/made user:user',
        '/opt/made/here user:user', '/0/y user:user', '/0 root:root', '/0/x root:root', ''].join('\n'));
      assert.equal(await a.files.read('/0/u/two.txt'), '2');
      // reading, listing and removing keep user's rights: root's 0600 files stay closed to it
      await run(a, 'sudo chmod 600 /0/x');
      await assert.rejects(a.files.read('/0/x'), /ermission/);
      // the other sandbox, and the host, see nothing of it
      assert.notEqual((await run(b, 'ls /0', { user: 'root' })).exitCode, 0);
      assert.equal(fs.existsSync('/0'), false);
      const disk = diskMount(a.sandboxId);
      assert.ok(disk, 'the sandbox has its disk');
      await a.kill();
      // the kill removed the disk from the host; a new sandbox starts from the base
      assert.equal(diskMount(a.sandboxId), null);
      assert.equal(fs.existsSync(disk), false);
      const c = await Sandbox.create({ timeoutMs: 120_000 });
      try {
        assert.notEqual((await run(c, 'ls /0', { user: 'root' })).exitCode, 0);
      } finally {
        await c.kill();
      }
    } finally {
      await Sandbox.kill(a.sandboxId);
      await b.kill();
    }
  });

  test('sudo apt-get install -y from an apt repository the sandbox reaches over its egress', async () => {
    // a flat repository (Packages + the .deb) on a test host of our own: no outside address
    const name = `${tag}-apt`;
    const deb = buildDeb(name);
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-repo-'));
    fs.chmodSync(repo, 0o755);
    fs.writeFileSync(path.join(repo, 'p.deb'), deb);
    const control = execFileSync('dpkg-deb', ['-f', path.join(repo, 'p.deb')], { encoding: 'utf8' });
    fs.writeFileSync(path.join(repo, 'Packages'),
      `${control.trimEnd()}\nFilename: ./p.deb\nSize: ${deb.length}\nSHA256: ${createHash('sha256').update(deb).digest('hex')}\n\n`);
    const host = await startTestHost({ addresses: 1, files: repo });
    const sbx = await Sandbox.create({ timeoutMs: 180_000 });
    try {
      const list = '/etc/apt/sources.list.d/cc-test.list';
      const only = `-o Dir::Etc::sourcelist=${list} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0`;
      const r = await run(sbx, `echo 'deb [trusted=yes] http://${host.ips[0]}:${host.port}/ ./' | sudo tee ${list} >/dev/null ` +
        `&& sudo apt-get ${only} update && sudo apt-get ${only} install -y ${name}`);
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      assert.equal((await run(sbx, name)).stdout, `hello from ${name}\n`);
      assert.equal((await run(sbx, `dpkg -s ${name} | grep ^Status`)).stdout, 'Status: install ok installed\n');
      assert.equal(fs.existsSync(`/usr/bin/${name}`), false, 'not on the host');
    } finally {
      await sbx.kill();
      await host.stop();
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('sudo dpkg -i of a package built here installs it; the host has none of it', async () => {
    const deb = buildDeb(`${tag}-pkg`);
    const statusBefore = sha('/var/lib/dpkg/status');
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await sbx.files.write('/home/user/p.deb', deb);
      const i = await run(sbx, 'sudo dpkg -i /home/user/p.deb');
      assert.equal(i.exitCode, 0, i.stdout + i.stderr);
      assert.equal((await run(sbx, `${tag}-pkg`)).stdout, `hello from ${tag}-pkg\n`);
      // its postinst's chown to a system user worked (uids 1-999 are mapped), and useradd too
      assert.equal((await run(sbx, `stat -c %U:%G /var/cache/${tag}-pkg`)).stdout, 'man:man\n');
      const ua = await run(sbx, 'sudo useradd -m -u 1001 alice && sudo setpriv --reuid=alice --regid=alice --clear-groups id -u && stat -c %U /home/alice');
      assert.equal(ua.stdout, '1001\nalice\n', ua.stderr);
      const s = await run(sbx, `dpkg -s ${tag}-pkg | grep ^Status`);
      assert.equal(s.stdout, 'Status: install ok installed\n');
      // other changes to /usr, /etc, /var as root: a copy, an edit in place, a removal
      assert.equal((await run(sbx, 'sudo cp /bin/true /usr/local/bin/cc-true && cc-true')).exitCode, 0);
      assert.equal((await run(sbx, 'echo "# edited" | sudo tee -a /etc/hosts >/dev/null && tail -1 /etc/hosts')).stdout, '# edited\n');
      assert.equal((await run(sbx, 'sudo rm /usr/bin/yes && ! test -e /usr/bin/yes')).exitCode, 0);
      const rm = await run(sbx, `sudo dpkg -r ${tag}-pkg && ! test -e /usr/bin/${tag}-pkg`);
      assert.equal(rm.exitCode, 0, rm.stdout + rm.stderr);
      // the host: no package, no file, the removed file still there, the database unchanged
      assert.equal(fs.existsSync(`/usr/bin/${tag}-pkg`), false);
      assert.equal(fs.existsSync('/usr/local/bin/cc-true'), false);
      assert.ok(fs.existsSync('/usr/bin/yes'));
      assert.doesNotMatch(fs.readFileSync('/etc/hosts', 'utf8'), /# edited/);
      assert.equal(sha('/var/lib/dpkg/status'), statusBefore);
    } finally {
      await sbx.kill();
    }
  });

  test("E2B's base tools are there; root's pip install and npm install -g go to the system", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-rootfs-pkgs-'));
    // a wheel (a zip with its metadata) and an npm package tarball, made here: no network
    const wheel = path.join(dir, 'ccrootfs_mod-1.0-py3-none-any.whl');
    execFileSync('python3', ['-c', `import zipfile
z = zipfile.ZipFile(${JSON.stringify(wheel)}, 'w')
z.writestr('ccrootfs_mod/__init__.py', 'VALUE = 42\\n')
d = 'ccrootfs_mod-1.0.dist-info/'
z.writestr(d + 'METADATA', 'Metadata-Version: 2.1\\nName: ccrootfs-mod\\nVersion: 1.0\\n')
z.writestr(d + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
z.writestr(d + 'RECORD', 'ccrootfs_mod/__init__.py,,\\n' + d + 'METADATA,,\\n' + d + 'WHEEL,,\\n' + d + 'RECORD,,\\n')
z.close()`]);
    const cli = path.join(dir, 'cli');
    fs.mkdirSync(cli);
    fs.writeFileSync(path.join(cli, 'package.json'), JSON.stringify({ name: `${tag}-cli`, version: '1.0.0', bin: { [`${tag}-cli`]: 'cli.js' } }));
    fs.writeFileSync(path.join(cli, 'cli.js'), "#!/usr/bin/env node\nconsole.log('cli ok');\n", { mode: 0o755 });
    execFileSync('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: cli, stdio: 'ignore' });
    const sbx = await Sandbox.create({ timeoutMs: 120_000, allowInternetAccess: false });
    try {
      const tools = await run(sbx, 'for t in python python3 pip node npm git curl sudo; do command -v $t; done');
      assert.equal(tools.stdout.trim().split('\n').length, 8, tools.stdout + tools.stderr);
      assert.equal((await run(sbx, 'python -c "print(1+1)"')).stdout, '2\n');
      await sbx.files.write('/home/user/m.whl', fs.readFileSync(wheel));
      const pip = await run(sbx, 'cp m.whl ccrootfs_mod-1.0-py3-none-any.whl && sudo pip install --no-index -q ccrootfs_mod-1.0-py3-none-any.whl');
      assert.equal(pip.exitCode, 0, pip.stdout + pip.stderr);
      const imp = await run(sbx, 'cd /tmp && python3 -c "import ccrootfs_mod as m; print(m.VALUE, m.__file__)"');
      assert.match(imp.stdout, /^42 \/usr\/local\/lib\/python3[.\d]*\/dist-packages\/ccrootfs_mod\/__init__.py\n$/);
      await sbx.files.write('/home/user/cli.tgz', fs.readFileSync(path.join(dir, `${tag}-cli-1.0.0.tgz`)));
      const npm = await run(sbx, 'sudo npm install -g --offline --no-audit --no-fund --loglevel=error /home/user/cli.tgz');
      assert.equal(npm.exitCode, 0, npm.stdout + npm.stderr);
      assert.equal((await run(sbx, `${tag}-cli`)).stdout, 'cli ok\n');
      // the host has neither
      const prefix = execFileSync('npm', ['config', 'get', 'prefix']).toString().trim();
      assert.equal(fs.existsSync(path.join(prefix, 'bin', `${tag}-cli`)), false);
      assert.equal(fs.readdirSync('/usr/local/lib').some((d) => fs.existsSync(`/usr/local/lib/${d}/dist-packages/ccrootfs_mod`)), false);
    } finally {
      await sbx.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('pause and resume keep the system layer, with memory and without', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await run(sbx, 'sudo sh -c "mkdir -p /0 && echo kept > /0/x && echo kept > /usr/local/share/kept && echo kept > /root/r"');
      assert.equal(await sbx.pause(), true);
      let back = await Sandbox.connect(sbx.sandboxId);
      assert.equal((await run(back, 'cat /0/x /usr/local/share/kept', { user: 'root' })).stdout, 'kept\nkept\n');
      assert.equal(await back.pause({ keepMemory: false }), true);
      assert.ok(diskMount(sbx.sandboxId), 'a pause without memory keeps the disk');
      back = await Sandbox.connect(sbx.sandboxId);
      const r = await run(back, 'cat /0/x /usr/local/share/kept /root/r', { user: 'root' });
      assert.equal(r.stdout, 'kept\nkept\nkept\n', r.stderr);
      // deleting it while paused drops the disk
      assert.equal(await back.pause({ keepMemory: false }), true);
      assert.equal(await Sandbox.kill(sbx.sandboxId), true);
      assert.equal(diskMount(sbx.sandboxId), null);
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('a sandbox paused without memory keeps its system layer across a sandboxd restart', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-rootfs-restart-'));
    let one = await startSandboxd({ stateDir });
    const env = { ...process.env };
    try {
      Object.assign(process.env, one.env());
      const sbx = await Sandbox.create({ timeoutMs: 120_000 });
      const gone = await Sandbox.create({ timeoutMs: 120_000 });
      // one whose disk a host restart would lose (unmounted below while sandboxd is down)
      const lost = await Sandbox.create({ timeoutMs: 120_000 });
      await run(sbx, 'sudo sh -c "echo kept > /usr/local/share/kept"');
      await run(lost, 'echo home > ~/h && sudo sh -c "echo sys > /usr/local/share/sys"');
      assert.equal(await sbx.pause({ keepMemory: false }), true);
      assert.equal(await lost.pause({ keepMemory: false }), true);
      assert.deepEqual(await one.stop(), { code: 0, signal: null });
      const lostDisk = path.join(stateDir, 'sys', 'disks', lost.sandboxId);
      execFileSync('umount', ['--recursive', '--lazy', path.join(lostDisk, 'd')]);
      fs.rmSync(lostDisk, { recursive: true });
      one = await startSandboxd({ stateDir });
      Object.assign(process.env, one.env());
      const back = await Sandbox.connect(sbx.sandboxId);
      assert.equal((await run(back, 'cat /usr/local/share/kept')).stdout, 'kept\n');
      // the lost one: said at start, and it resumes with its home (the archive) only
      assert.match(one.stderr, new RegExp(`paused sandbox ${lost.sandboxId}: its disk \\(system layer, /root\\) is gone`));
      const lb = await Sandbox.connect(lost.sandboxId);
      assert.equal((await run(lb, 'cat ~/h')).stdout, 'home\n');
      assert.notEqual((await run(lb, 'cat /usr/local/share/sys')).exitCode, 0);
      await lb.kill();
      // the running one did not survive the restart, and neither did its disk
      const disks = fs.readdirSync(path.join(stateDir, 'sys', 'disks')).filter((n) => !n.startsWith('.'));
      assert.deepEqual(disks, [sbx.sandboxId]);
      assert.ok(!disks.includes(gone.sandboxId));
      await back.kill();
      assert.deepEqual(await one.stop(), { code: 0, signal: null });
      // nothing of the writable system is left mounted or on disk
      assert.equal(fs.existsSync(path.join(stateDir, 'sys')), false);
      assert.doesNotMatch(fs.readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(stateDir));
    } finally {
      await one.stop();
      Object.assign(process.env, env);
      if (fs.existsSync(path.join(stateDir, 'sys')))
        execFileSync('umount', ['--recursive', '--lazy', path.join(stateDir, 'sys')], { stdio: 'ignore' });
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test('--read-only-system and --no-root keep the read-only system, and say so', async () => {
    for (const [flag, why] of [['--read-only-system', '--read-only-system'], ['--no-root', 'no root inside']]) {
      const other = await startSandboxd({ args: [flag] });
      const env = { ...process.env };
      try {
        assert.match(other.stderr, new RegExp(`system: read-only: ${why}`));
        Object.assign(process.env, other.env());
        const sbx = await Sandbox.create({ timeoutMs: 120_000 });
        try {
          const w = await run(sbx, 'touch /usr/local/x || touch /0x', { user: 'root' });
          assert.notEqual(w.exitCode, 0);
          assert.match(w.stderr, /Read-only file system/);
          assert.equal((await run(sbx, 'echo ok > ~/f && cat ~/f')).stdout, 'ok\n');
        } finally {
          await sbx.kill();
        }
        assert.equal(fs.existsSync(path.join(other.stateDir, 'sys')), false);
      } finally {
        Object.assign(process.env, env);
        assert.deepEqual(await other.stop(), { code: 0, signal: null });
      }
    }
  });

  test('the system layer obeys the disk limit (ENOSPC) and shares it with the home', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const big = await run(sbx, 'head -c 100M /dev/zero > /usr/local/big', { user: 'root' });
      assert.match(big.stderr, /No space left on device/);
      // the home is on the same disk: full now too
      const h = await run(sbx, 'head -c 1M /dev/zero > /home/user/more');
      assert.match(h.stderr, /No space left on device/);
      const info = await run(sbx, 'df -B1 --output=size /home/user | tail -1');
      assert.equal(Number(info.stdout.trim()), 64 * 1024 * 1024);
      // freeing it makes room again; the sandbox keeps working
      assert.equal((await run(sbx, 'rm /usr/local/big && echo ok > /home/user/more && cat /home/user/more', { user: 'root' })).stdout, 'ok\n');
    } finally {
      await sbx.kill();
    }
  });

  test('escape corpus: root inside reads no more of the host than user, and changes none of it', async () => {
    // made after sandboxd started: the base is a copy taken at start
    const late = `/etc/${tag}-late`;
    fs.writeFileSync(late, 'late secret\n', { mode: 0o600 });
    const hostsBefore = sha('/etc/hosts');
    const lsBefore = sha('/usr/bin/ls');
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    const as = { user: 'root' };
    try {
      // /etc/shadow and /etc/gshadow are the sandbox's own: root reads them (user does not),
      // and they hold no password of the host's (every one locked)
      for (const f of ['/etc/shadow', '/etc/gshadow']) {
        const r = await run(sbx, `cat ${f}`, as);
        assert.equal(r.exitCode, 0, r.stderr);
        for (const line of r.stdout.trim().split('\n')) assert.match(line, /^[^:]+:\*:/, f);
        assert.match(r.stdout, f === '/etc/shadow' ? /^root:\*:/m : /^root:\*::/m);
        assert.notEqual((await run(sbx, `cat ${f}`)).exitCode, 0, `${f} is not user's to read`);
      }
      for (const f of [etcSecret, usrSecret, late]) {
        const r = await run(sbx, `cat ${f}`, as);
        assert.notEqual(r.exitCode, 0, `${f} is readable: ${r.stdout}`);
        assert.doesNotMatch(r.stdout, /secret/);
      }
      // nor by the files API as root
      await assert.rejects(sbx.files.read(usrSecret, as));
      await assert.rejects(sbx.files.read(etcSecret, as));
      // what user reads, root reads (a world-readable host file is there)
      assert.equal((await run(sbx, 'head -c 4 /usr/bin/ls | od -c | head -1', as)).exitCode, 0);
      // changes through the overlay never reach the lower layers on the host
      const w = await run(sbx, 'echo x > /usr/bin/ls && rm /etc/hosts && rm -rf /usr/share/doc && echo done', as);
      assert.equal(w.stdout, 'done\n', w.stderr);
      assert.equal(sha('/usr/bin/ls'), lsBefore);
      assert.equal(sha('/etc/hosts'), hostsBefore);
      assert.ok(fs.existsSync('/usr/share/doc'));
      // no mount, no remount of the system, no unmount of the layers
      assert.notEqual((await run(sbx, 'mount -t tmpfs none /mnt', as)).exitCode, 0);
      assert.notEqual((await run(sbx, 'mount -o remount,ro /', as)).exitCode, 0);
      assert.notEqual((await run(sbx, 'umount /usr', as)).exitCode, 0);
      assert.notEqual((await run(sbx, 'sudo mount --bind /usr /mnt')).exitCode, 0);
      // device nodes made below the system would not open (no CAP_MKNOD; nodev)
      assert.notEqual((await run(sbx, 'mknod /0dev c 1 3', as)).exitCode, 0);
      // other host users cannot look into the sandbox's disk on the host (its files, its
      // system layer), although bwrap, as the sandbox's host uid, reaches it
      await sbx.files.write('/home/user/mine', 'mine\n');
      const disk = diskMount(sbx.sandboxId);
      assert.equal(fs.readFileSync(path.join(disk, 'home/mine'), 'utf8'), 'mine\n'); // as host root
      for (const p of ['home/mine', 'm/root/etc/hostname', 'm/root/var/tmp']) {
        assert.throws(
          () => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ls', path.join(disk, p)], { stdio: 'pipe' }),
          /Permission denied/,
          p,
        );
      }
    } finally {
      await sbx.kill();
      fs.rmSync(late, { force: true });
    }
  });
});
