// Conformance: the official E2B JavaScript SDK (npm e2b 2.9.0, unchanged; and, through
// tests/lib/e2b-sdk-alias.mjs, the same file against today's 2.51.0) against a real
// codecanvas-sandboxd with real bubblewrap sandboxes, over 127.0.0.1.  The SDK is pointed at
// sandboxd only through its documented settings E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { AuthenticationError, CommandExitError, NotFoundError, RateLimitError, Sandbox, TimeoutError } from 'e2b';

import { requestWithHost } from '../lib/host.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;

before(async () => {
  sd = await startSandboxd();
  useSandboxd(sd);
});

after(async () => {
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

async function listAll(opts) {
  const out = [];
  const p = Sandbox.list(opts);
  while (p.hasNext) out.push(...(await p.nextItems()));
  return out;
}

/** GET through sandboxd's port proxy with the Host header getHost() gave (Node does not
 * resolve *.localhost by itself). */
function getViaHost(host, path) {
  return requestWithHost(sd.port, host, path);
}

describe('control plane', () => {
  test('create with metadata, getInfo, list with filters and paging, setTimeout, connect, kill', async () => {
    const sbx = await Sandbox.create({ metadata: { suite: 'cp', n: '1' }, timeoutMs: 120_000 });
    try {
      assert.match(sbx.sandboxId, /^i[a-z0-9]{20}$/);
      assert.equal(sbx.getHost(8080), `8080-${sbx.sandboxId}.localhost:${sd.port}`);
      const info = await sbx.getInfo();
      assert.equal(info.sandboxId, sbx.sandboxId);
      assert.equal(info.templateId, 'base');
      assert.equal(info.state, 'running');
      assert.deepEqual(info.metadata, { suite: 'cp', n: '1' });
      assert.equal(info.envdVersion, '0.6.4');
      const lifetime = info.endAt.getTime() - info.startedAt.getTime();
      assert.ok(lifetime > 100_000 && lifetime <= 121_000, `lifetime ${lifetime}`);

      // setTimeout may shorten the lifetime: expiry = now + timeout
      await sbx.setTimeout(30_000);
      const shorter = await sbx.getInfo();
      assert.ok(shorter.endAt.getTime() - Date.now() <= 31_000);

      // connect only ever extends, and returns the same sandbox
      const again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 10_000 });
      assert.equal(again.sandboxId, sbx.sandboxId);
      const afterConnect = await sbx.getInfo();
      assert.equal(afterConnect.endAt.getTime(), shorter.endAt.getTime());
      await Sandbox.connect(sbx.sandboxId, { timeoutMs: 200_000 });
      assert.ok((await sbx.getInfo()).endAt.getTime() - Date.now() > 150_000);

      // a second sandbox with other metadata, then filters and paging
      const other = await Sandbox.create({ metadata: { suite: 'cp', n: '2' } });
      try {
        const mine = await listAll({ query: { metadata: { suite: 'cp', n: '1' } } });
        assert.deepEqual(mine.map((s) => s.sandboxId), [sbx.sandboxId]);
        const both = await listAll({ query: { metadata: { suite: 'cp' }, state: ['running'] } });
        assert.deepEqual(new Set(both.map((s) => s.sandboxId)), new Set([sbx.sandboxId, other.sandboxId]));
        const paused = await listAll({ query: { metadata: { suite: 'cp' }, state: ['paused'] } });
        assert.deepEqual(paused, []);
        const pager = Sandbox.list({ query: { metadata: { suite: 'cp' } }, limit: 1 });
        const page1 = await pager.nextItems();
        assert.equal(page1.length, 1);
        assert.ok(pager.hasNext, 'X-Next-Token on the first page');
        const page2 = await pager.nextItems();
        assert.equal(page2.length, 1);
        assert.notEqual(page1[0].sandboxId, page2[0].sandboxId);
        assert.ok(!pager.hasNext);
        const special = await Sandbox.create({ metadata: { 'a b': 'c&d=e' } });
        const bySpecial = await listAll({ query: { metadata: { 'a b': 'c&d=e' } } });
        assert.deepEqual(bySpecial.map((s) => s.sandboxId), [special.sandboxId]);
        await special.kill();
      } finally {
        await other.kill();
      }

      // pause stops it (envd unreachable, listed as paused); a second pause says so (409 ->
      // false); connect brings it back
      assert.equal(await Sandbox.betaPause(sbx.sandboxId), true);
      assert.equal(await Sandbox.betaPause(sbx.sandboxId), false);
      assert.equal(await sbx.isRunning(), false);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
      await Sandbox.connect(sbx.sandboxId);
      assert.equal(await sbx.isRunning(), true);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'running');
    } finally {
      await sbx.kill();
    }
    assert.equal(await Sandbox.kill(sbx.sandboxId), false);
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId), NotFoundError);
    await assert.rejects(Sandbox.connect(sbx.sandboxId), NotFoundError);
    const listed = await listAll({ query: { metadata: { suite: 'cp' } } });
    assert.deepEqual(listed, []);
  });

  test('--max-sandboxes: concurrent creates beyond the limit get 429 (RateLimitError)', async () => {
    const small = await startSandboxd({ args: ['--max-sandboxes', '2'] });
    const opts = { apiUrl: small.url, sandboxUrl: small.url, apiKey: small.apiKey, domain: `localhost:${small.port}` };
    try {
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => Sandbox.create(opts)));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(ok.length, 2);
      assert.equal(refused.length, 2);
      for (const r of refused) assert.ok(r.reason instanceof RateLimitError, String(r.reason));
      await ok[0].value.kill();
      const again = await Sandbox.create(opts); // a slot is free again
      assert.equal((await again.commands.run('echo ok')).stdout, 'ok\n');
    } finally {
      const r = await small.stop();
      assert.deepEqual(r, { code: 0, signal: null }, small.stderr);
    }
  });

  test('a wrong API key is refused with AuthenticationError', async () => {
    await assert.rejects(Sandbox.create({ apiKey: 'e2b_wrong' }), AuthenticationError);
    await assert.rejects(listAll({ apiKey: 'e2b_wrong' }), AuthenticationError);
  });

  test('an expired sandbox is gone: envd answers 502 and the SDK reports it', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 1_000 });
    const id = sbx.sandboxId;
    // wait (bounded) for the reaper through the API, not by sleeping a fixed time
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (await listAll()).some((s) => s.sandboxId === id)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await assert.rejects(Sandbox.getInfo(id), NotFoundError);
    assert.equal(await sbx.isRunning(), false);
    await assert.rejects(sbx.commands.run('true'), (e) => e instanceof TimeoutError || e instanceof NotFoundError);
  });
});

describe('insecure sandbox (secure: false)', () => {
  test('no access token: envd requests are routed to the newest insecure sandbox', async (t) => {
    const sbx = await Sandbox.create({ secure: false });
    try {
      if (sbx.envdAccessToken) {
        // today's SDK has no secure:false (its create omits the field: secure by default)
        t.skip('this SDK version cannot create insecure sandboxes');
        return;
      }
      const info = await Sandbox.connect(sbx.sandboxId);
      assert.equal(info.envdAccessToken, undefined);
      await sbx.files.write('/home/user/plain.txt', 'no token');
      assert.equal(await sbx.files.read('/home/user/plain.txt'), 'no token');
      assert.equal((await sbx.commands.run('cat plain.txt')).stdout, 'no token');
    } finally {
      await sbx.kill();
    }
  });
});

describe('sandbox', () => {
  let sbx;
  before(async () => {
    sbx = await Sandbox.create({ envs: { GLOBAL_FOO: 'global bar' }, metadata: { suite: 'sdk' } });
  });
  after(async () => {
    await sbx?.kill();
  });

  test('commands.run: stdout, stderr, exit code, envs, cwd', async () => {
    const r = await sbx.commands.run('echo hello; echo oops >&2');
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.stderr, 'oops\n');
    const env = await sbx.commands.run('echo "$GLOBAL_FOO|$LOCAL|$E2B_SANDBOX|$E2B_SANDBOX_ID|$E2B_TEMPLATE_ID|$HOME|$(id -un)"', {
      envs: { LOCAL: 'loc' },
    });
    assert.equal(env.stdout, `global bar|loc|true|${sbx.sandboxId}|base|/home/user|user\n`);
    const pwd = await sbx.commands.run('pwd');
    assert.equal(pwd.stdout, '/home/user\n');
    await sbx.files.makeDir('/home/user/work/dir');
    const cwd = await sbx.commands.run('pwd', { cwd: '/home/user/work/dir' });
    assert.equal(cwd.stdout, '/home/user/work/dir\n');
  });

  test('commands.run: non-zero exit throws CommandExitError', async () => {
    await assert.rejects(sbx.commands.run('echo partial; exit 3'), (e) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stdout, 'partial\n');
      assert.equal(e.error, 'exit status 3');
      return true;
    });
  });

  test('commands.run: onStdout streams chunks as they are produced', async () => {
    const chunks = [];
    const r = await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.2; done', {
      onStdout: (d) => chunks.push(d),
    });
    assert.equal(r.stdout, 'line1\nline2\nline3\n');
    assert.ok(chunks.length >= 2, `expected several chunks, got ${JSON.stringify(chunks)}`);
    assert.equal(chunks.join(''), r.stdout);
  });

  test('commands.run: timeoutMs kills the command', async () => {
    await assert.rejects(sbx.commands.run('sleep 30', { timeoutMs: 1_000 }), (e) => {
      assert.ok(e instanceof TimeoutError || (e instanceof CommandExitError && e.exitCode === -1), String(e));
      return true;
    });
    // the server kills it at the same deadline (Connect-Timeout-Ms), even though the client
    // already gave up; poll (bounded) for that
    let procs = await sbx.commands.list();
    for (let i = 0; i < 300 && procs.some((p) => p.args.includes('sleep 30')); i++) {
      await new Promise((r) => setTimeout(r, 50));
      procs = await sbx.commands.list();
    }
    assert.ok(!procs.some((p) => p.args.includes('sleep 30')));
  });

  test('background command: list, sendStdin, kill', async () => {
    // The command says on stdout when it has written what it read from stdin, so the test
    // waits on that event instead of polling for the file.
    const cmd = 'read line && printf "%s\\n" "$line" > /home/user/stdin.txt && echo written && exec cat';
    let written;
    const wroteIt = new Promise((resolve) => (written = resolve));
    const h = await sbx.commands.run(cmd, {
      background: true,
      stdin: true,
      onStdout: (d) => d.includes('written') && written(),
    });
    assert.ok(h.pid > 0);
    const procs = await sbx.commands.list();
    const p = procs.find((x) => x.pid === h.pid);
    assert.ok(p, 'listed');
    assert.equal(p.cmd, '/bin/bash');
    assert.deepEqual(p.args, ['-l', '-c', cmd]);
    await sbx.commands.sendStdin(h.pid, 'from stdin\n');
    await wroteIt;
    assert.equal((await sbx.commands.run('cat /home/user/stdin.txt')).stdout, 'from stdin\n');
    assert.equal(await sbx.commands.kill(h.pid), true);
    await assert.rejects(h.wait(), (e) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, -1);
      assert.equal(e.error, 'signal: killed');
      return true;
    });
    assert.ok(!(await sbx.commands.list()).some((x) => x.pid === h.pid));
    assert.equal(await sbx.commands.kill(h.pid), false);
  });

  test('background command output and commands.connect', async () => {
    const h = await sbx.commands.run('read x; echo got $x', { background: true, stdin: true });
    const attached = await sbx.commands.connect(h.pid);
    await sbx.commands.sendStdin(h.pid, 'it\n');
    const r = await attached.wait();
    assert.equal(r.stdout, 'got it\n');
    assert.equal(r.exitCode, 0);
  });

  test('files: write/read text and binary, list, makeDir, rename, remove, exists, getInfo', async () => {
    const w = await sbx.files.write('/home/user/dir1/hello.txt', 'hello world');
    assert.equal(w.path, '/home/user/dir1/hello.txt');
    assert.equal(w.name, 'hello.txt');
    assert.equal(await sbx.files.read('/home/user/dir1/hello.txt'), 'hello world');
    assert.equal(await sbx.files.read('dir1/hello.txt'), 'hello world', 'relative to home');

    const bin = new Uint8Array(70_000).map((_, i) => (i * 31 + 7) & 0xff);
    await sbx.files.write('/home/user/bin.dat', bin.buffer);
    const back = await sbx.files.read('/home/user/bin.dat', { format: 'bytes' });
    assert.deepEqual(Buffer.from(back), Buffer.from(bin));

    await sbx.files.write('/home/user/empty.txt', '');
    assert.equal(await sbx.files.read('/home/user/empty.txt'), '');

    const many = await sbx.files.write([
      { path: '/home/user/m/a.txt', data: 'A' },
      { path: 'm/b.txt', data: 'B' },
    ]);
    assert.deepEqual(many.map((x) => x.path), ['/home/user/m/a.txt', '/home/user/m/b.txt']);
    assert.equal((await sbx.commands.run('cat m/a.txt m/b.txt')).stdout, 'AB');

    assert.equal(await sbx.files.makeDir('/home/user/newdir/sub'), true);
    assert.equal(await sbx.files.makeDir('/home/user/newdir/sub'), false);
    await sbx.files.write('/home/user/newdir/sub/x.txt', 'x');
    const l1 = await sbx.files.list('/home/user/newdir');
    assert.deepEqual(l1.map((e) => [e.name, e.type, e.path]), [['sub', 'dir', '/home/user/newdir/sub']]);
    const l2 = await sbx.files.list('/home/user/newdir', { depth: 2 });
    assert.deepEqual(l2.map((e) => e.path).sort(), ['/home/user/newdir/sub', '/home/user/newdir/sub/x.txt']);
    const fileEntry = l2.find((e) => e.name === 'x.txt');
    assert.equal(fileEntry.type, 'file');
    assert.equal(fileEntry.size, 1);
    assert.equal(fileEntry.owner, 'user');
    assert.ok(fileEntry.modifiedTime instanceof Date);

    const info = await sbx.files.getInfo('/home/user/dir1/hello.txt');
    assert.equal(info.type, 'file');
    assert.equal(info.size, 11);
    assert.equal(info.path, '/home/user/dir1/hello.txt');

    const moved = await sbx.files.rename('/home/user/dir1/hello.txt', '/home/user/dir2/renamed.txt');
    assert.equal(moved.path, '/home/user/dir2/renamed.txt');
    assert.equal(await sbx.files.exists('/home/user/dir1/hello.txt'), false);
    assert.equal(await sbx.files.exists('/home/user/dir2/renamed.txt'), true);
    assert.equal(await sbx.files.read('/home/user/dir2/renamed.txt'), 'hello world');

    await sbx.files.remove('/home/user/dir2');
    assert.equal(await sbx.files.exists('/home/user/dir2'), false);
    await sbx.files.remove('/home/user/does-not-exist'); // not an error

    await assert.rejects(sbx.files.read('/home/user/nope.txt'), NotFoundError);
    await assert.rejects(sbx.files.list('/home/user/nope'), NotFoundError);
    await assert.rejects(sbx.files.getInfo('/home/user/nope'), NotFoundError);
  });

  test('files.watchDir reports creates, writes, renames and removes, recursively', async () => {
    await sbx.files.makeDir('/home/user/watched/sub');
    const events = [];
    const until = async (pred) => {
      for (let i = 0; i < 600 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
      return pred();
    };
    const has = (name, type) => () => events.some((e) => e.name === name && e.type === type);
    const h = await sbx.files.watchDir('/home/user/watched', (e) => events.push(e), { recursive: true });
    await sbx.files.write('/home/user/watched/a.txt', 'a');
    assert.ok(await until(has('a.txt', 'create')), JSON.stringify(events));
    await sbx.commands.run('echo more >> /home/user/watched/a.txt; mv /home/user/watched/a.txt /home/user/watched/b.txt; touch /home/user/watched/sub/deep.txt; rm /home/user/watched/b.txt');
    assert.ok(await until(has('a.txt', 'write')), JSON.stringify(events));
    assert.ok(await until(has('a.txt', 'rename')), JSON.stringify(events));
    assert.ok(await until(has('b.txt', 'remove')), JSON.stringify(events));
    assert.ok(await until(has('sub/deep.txt', 'create')), JSON.stringify(events));
    // the watcher is not one of the user's processes, and it ends with the watch
    assert.ok(!(await sbx.commands.list()).some((p) => p.cmd === 'python3'));
    await h.stop();
    let left = '1';
    const end = Date.now() + 10_000;
    while (left !== '0' && Date.now() < end) {
      left = (await sbx.commands.run("pgrep -c -f 'inotify_[i]nit1' || true")).stdout.trim();
      if (left !== '0') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(left, '0');
    await assert.rejects(sbx.files.watchDir('/home/user/not-there', () => {}), NotFoundError);
  });

  test('signed upload and download URLs', async () => {
    const up = await sbx.uploadUrl('/home/user/signed.txt', { useSignatureExpiration: 60 });
    const form = new FormData();
    form.append('file', new Blob(['signed content']), 'signed.txt');
    const r = await fetch(up, { method: 'POST', body: form });
    assert.equal(r.status, 200);
    const down = await sbx.downloadUrl('/home/user/signed.txt');
    const d = await fetch(down);
    assert.equal(d.status, 200);
    assert.equal(await d.text(), 'signed content');
    const bad = new URL(down);
    bad.searchParams.set('signature', 'v1_forged');
    const f = await fetch(bad);
    assert.equal(f.status, 401);
    assert.equal((await f.json()).code, 401);
    const expired = await sbx.downloadUrl('/home/user/signed.txt', { useSignatureExpiration: -10 });
    assert.equal((await fetch(expired)).status, 401);
  });

  test('envd is also reachable by the Host form 49983-<id>.localhost:<port>', async () => {
    const token = sbx.envdAccessToken;
    const viaHost = (path, init = {}) =>
      requestWithHost(sd.port, sbx.getHost(49983), path, {
        ...init,
        headers: { 'X-Access-Token': token, ...(init.headers ?? {}) },
      });
    assert.equal((await viaHost('/health')).status, 204);
    await sbx.files.write('/home/user/host-routed.txt', 'by host');
    const r = await viaHost('/files?path=/home/user/host-routed.txt');
    assert.deepEqual(r, { status: 200, body: 'by host' });
    const stat = await viaHost('/filesystem.Filesystem/Stat', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ path: '/home/user/host-routed.txt' }),
    });
    assert.equal(stat.status, 200);
    assert.equal(JSON.parse(stat.body).entry.size, '7');
  });

  test('envd rejects a wrong access token with 401', async () => {
    const r = await fetch(`${sd.url}/process.Process/List`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': 'wrong' },
      body: '{}',
    });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).code, 401);
  });

  test('getHost + HTTP request to a server started in the sandbox', async () => {
    await sbx.files.write('/home/user/site/index.html', '<h1>from the sandbox</h1>');
    const server = await sbx.commands.run('cd /home/user/site && exec python3 -m http.server 8000 --bind 127.0.0.1', {
      background: true,
    });
    const host = sbx.getHost(8000);
    assert.equal(host, `8000-${sbx.sandboxId}.localhost:${sd.port}`);
    let res = { status: 0 };
    for (let i = 0; i < 200 && res.status !== 200; i++) {
      res = await getViaHost(host, '/index.html');
      if (res.status !== 200) {
        assert.equal(res.status, 502, res.body);
        assert.equal(JSON.parse(res.body).code, 502);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal(res.status, 200);
    assert.equal(res.body, '<h1>from the sandbox</h1>');
    await server.kill();
    const closed = await getViaHost(sbx.getHost(8001), '/');
    assert.equal(closed.status, 502);
    const body = JSON.parse(closed.body);
    assert.equal(body.message, 'The sandbox is running but port is not open');
    assert.equal(body.sandboxId, sbx.sandboxId);
    const gone = await getViaHost(`8000-iunknownsandbox0000000.localhost:${sd.port}`, '/');
    assert.equal(gone.status, 502);
    assert.equal(JSON.parse(gone.body).message, 'The sandbox was not found');
  });

  test('WebSocket upgrade through the port proxy', async () => {
    // a minimal WebSocket server in the sandbox: RFC 6455 handshake, then it echoes raw bytes
    await sbx.files.write('/home/user/ws.py', `import socket, hashlib, base64
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8765))
s.listen()
while True:
    c, _ = s.accept()
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        data += c.recv(4096)
    key = [l.split(b":", 1)[1].strip() for l in data.split(b"\\r\\n") if l.lower().startswith(b"sec-websocket-key")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + acc + b"\\r\\n\\r\\n")
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
`);
    const server = await sbx.commands.run('python3 /home/user/ws.py', { background: true });
    const host = sbx.getHost(8765);
    const handshake = () =>
      new Promise((resolve, reject) => {
        const sock = net.connect(sd.port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        sock.on('error', reject);
        sock.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          const end = buf.indexOf('\r\n\r\n');
          if (end >= 0) {
            sock.removeAllListeners('data');
            resolve({ sock, head: buf.subarray(0, end).toString(), rest: buf.subarray(end + 4) });
          }
        });
        sock.on('end', () => resolve({ sock, head: buf.toString(), rest: Buffer.alloc(0) }));
        sock.write(`GET /chat HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      });
    let hs;
    for (let i = 0; i < 200; i++) {
      hs = await handshake();
      if (hs.head.startsWith('HTTP/1.1 101')) break;
      hs.sock.destroy();
      assert.match(hs.head, /^HTTP\/1\.1 502/);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(hs.head, /^HTTP\/1\.1 101/);
    assert.match(hs.head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    // a masked text frame "hello" (RFC 6455 §5.7), echoed byte for byte by the server
    const frame = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    const echoed = await new Promise((resolve, reject) => {
      let got = hs.rest;
      if (got.length >= frame.length) return resolve(got);
      hs.sock.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.length >= frame.length) resolve(got);
      });
      hs.sock.on('error', reject);
      hs.sock.write(frame);
    });
    assert.deepEqual(echoed, frame);
    hs.sock.destroy();
    await server.kill();
  });
});
