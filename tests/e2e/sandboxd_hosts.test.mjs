// sandboxd on hosts of every shape: /dev/net/tun open to all (0666, the udev default),
// root-only (0600: many VMs, containers, minimal images), or missing.  Each shape is staged
// for one sandboxd in a private mount namespace (unshare -m) with a node of our own
// bind-mounted over /dev/net/tun, or an empty tmpfs over /dev/net; the host's node is never
// touched.  Checked: the start line says what egress sandboxes get and why, Sandbox.create()
// with the SDK's defaults runs a command, the sandbox reaches a host service when it has
// egress, and without egress it has loopback only (a DNS error, not a 503), GET
// /sandboxes/{id} and the worker's project info say internet: false with the reason.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';

import { CommandExitError, Sandbox } from 'e2b';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

const root = process.getuid() === 0;
const tunRdev = (() => {
  try {
    return statSync('/dev/net/tun').rdev;
  } catch {
    return null;
  }
})();
// Staging needs root (mount namespaces, mknod) and a tun driver to make nodes of.
const why = !root ? 'staging host shapes needs root' : tunRdev === null ? 'this kernel has no /dev/net/tun' : null;

let dir;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cc-hosts-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A character node of the tun device with the given mode, owned by root. */
function tunNode(name, mode) {
  const p = join(dir, name);
  const major = Math.floor(tunRdev / 256) & 0xfff;
  const minor = (tunRdev & 0xff) | ((Math.floor(tunRdev / 4096) & ~0xff) >>> 0);
  execFileSync('mknod', ['-m', mode, p, 'c', String(major), String(minor)]);
  return p;
}

/** sandboxd in a private mount namespace prepared by `setup` (a shell snippet). */
function stagedSandboxd(setup, args = []) {
  return startSandboxd({
    args,
    wrap: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `${setup} && exec "$0" "$@"`],
  });
}

async function stop(sd) {
  const r = await sd.stop();
  assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
}

function startLine(sd) {
  return (sd.stderr.match(/^codecanvas-sandboxd: sandbox runtime: .*$/m) ?? [''])[0];
}

async function detail(sd, id) {
  const r = await fetch(`${sd.url}/sandboxes/${id}`, { headers: { 'X-API-KEY': sd.apiKey } });
  assert.equal(r.status, 200);
  return r.json();
}

/** The host's first non-loopback IPv4 address: what an internet host looks like from inside. */
function hostAddress() {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return null;
}

/** A TCP service on every host address that answers one line and records who called. */
async function hostService() {
  const seen = [];
  const srv = net.createServer((c) => {
    seen.push(c.remoteAddress);
    c.end('hello from the host\n');
  });
  await new Promise((r) => srv.listen(0, '0.0.0.0', r));
  return { port: srv.address().port, seen, close: () => new Promise((r) => srv.close(r)) };
}

/** Sandbox.create() with the SDK's defaults (allow_internet_access true) runs a command and
 * reaches a service on the host's non-loopback address through slirp4netns. */
async function egressWorks(sd) {
  const sbx = await Sandbox.create();
  const svc = await hostService();
  try {
    const r = await sbx.commands.run('echo ran as $(id -un)');
    assert.equal(r.stdout, 'ran as user\n');
    const d = await detail(sd, sbx.sandboxId);
    assert.equal(d.internet, true, JSON.stringify(d));
    assert.equal(d.internetReason, undefined);
    const addr = hostAddress();
    if (addr) {
      const py = `import socket; s=socket.create_connection(('${addr}', ${svc.port}), timeout=5); print(s.recv(100).decode(), end='')`;
      const c = await sbx.commands.run(`python3 -c "${py}"`);
      assert.equal(c.stdout, 'hello from the host\n');
      assert.equal(svc.seen.length, 1);
    } else {
      // no non-loopback address to call: at least the tap device and its route are up
      const c = await sbx.commands.run('cat /proc/net/route');
      assert.match(c.stdout, /^tap0\s+00000000\s/m);
    }
  } finally {
    await svc.close();
    await sbx.kill();
  }
}

/** Without egress the sandbox still starts, has loopback only, and says why. */
async function loopbackOnly(sd, reason) {
  const sbx = await Sandbox.create();
  try {
    const d = await detail(sd, sbx.sandboxId);
    assert.equal(d.internet, false);
    assert.equal(d.allowInternetAccess, true);
    assert.match(d.internetReason, reason);
    // a command that needs the network fails the normal way: name resolution
    const err = await sbx.commands
      .run(`python3 -c "import socket; socket.getaddrinfo('example.com', 80)"`)
      .then(() => null, (e) => e);
    assert.ok(err instanceof CommandExitError, String(err));
    assert.match(err.stderr, /gaierror|name resolution|Name or service not known/);
    const lo = await sbx.commands.run('cat /proc/net/dev');
    assert.doesNotMatch(lo.stdout, /tap0/);
    assert.match(lo.stdout, /\blo:/);
  } finally {
    await sbx.kill();
  }
}

function withSdk(sd) {
  Object.assign(process.env, sd.env());
  return sd;
}

describe('host shapes', { skip: why ?? false }, () => {
  test('root-only /dev/net/tun (0600): sandboxd as root still gives egress, through a private node', async () => {
    const node = tunNode('tun-0600', '600');
    const sd = withSdk(await stagedSandboxd(`mount --bind ${node} /dev/net/tun`));
    try {
      assert.match(startLine(sd), /egress: slirp4netns \S+ \(tap via a private \/dev\/net\/tun node for uid 101000 \(the host's is mode 0600/);
      await egressWorks(sd);
      // the host's node (here: the staged one) keeps its mode and owner
      const st = statSync(node);
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(st.uid, 0);
    } finally {
      await stop(sd);
    }
  });

  test('/dev/net/tun open to all (0666): used as it is', async () => {
    const node = tunNode('tun-0666', '666');
    const sd = withSdk(await stagedSandboxd(`mount --bind ${node} /dev/net/tun`));
    try {
      assert.match(startLine(sd), /egress: slirp4netns \S+ \(tap via \/dev\/net\/tun \(mode 0666\)/);
      await egressWorks(sd);
    } finally {
      await stop(sd);
    }
  });

  test('no /dev/net/tun: loopback only, said at start, on the sandbox and in the project info', async () => {
    const sd = withSdk(await stagedSandboxd('mount -t tmpfs -o size=4k none /dev/net'));
    let wk;
    try {
      assert.match(
        startLine(sd),
        /egress: unavailable: \/dev\/net\/tun: No such file or directory \(no tun driver\); sandboxes get loopback only/,
      );
      await loopbackOnly(sd, /^egress unavailable: \/dev\/net\/tun: No such file or directory/);
      // the worker creates its sandboxes with internet access; the project says it has none
      wk = await startWorker({ sandboxd: sd });
      const tok = wk.token('alice');
      const r = await wk.rpc(tok, { op: 'exec', project: 'net', args: { cmd: 'echo ok' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.result.stdout, 'ok\n');
      const p = await wk.rpc(tok, { op: 'getProject', project: 'net' });
      assert.equal(p.body.result.sandbox.id, p.body.result.sandboxId);
      assert.equal(p.body.result.sandbox.internet, false);
      assert.match(p.body.result.sandbox.internetReason, /\/dev\/net\/tun: No such file or directory/);
    } finally {
      if (wk) await wk.stop();
      await stop(sd);
    }
  });

  test('--no-internet: loopback only, and the reason names the flag', async () => {
    const sd = withSdk(await startSandboxd({ args: ['--no-internet'] }));
    try {
      assert.match(startLine(sd), /egress: unavailable: disabled \(--no-internet\); sandboxes get loopback only/);
      await loopbackOnly(sd, /--no-internet/);
    } finally {
      await stop(sd);
    }
  });
});
