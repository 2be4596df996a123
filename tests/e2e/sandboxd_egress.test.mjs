// Egress rules and public-traffic tokens of codecanvas-sandboxd, through the official E2B SDK
// (today's e2b@2.51.0, and the pinned 2.9.0 for create), against real sandboxes: denyOut blocks
// a target that allowOut reaches (allow wins, as E2B documents), allowInternetAccess: false is
// denyOut 0.0.0.0/0, updateNetwork changes a running sandbox's rules and GET shows them, root
// inside (user: 'root' and sudo) cannot remove or route around the rules, the rules survive a
// cold resume, rule kinds sandboxd does not enforce are refused, and port URLs of a sandbox
// created with allowPublicTraffic: false need its traffic access token.
// The targets are a network namespace of this test's own (tests/lib/netns.mjs: a veth pair
// with private 10.213.N.0/24 addresses); nothing outside the machine is contacted.  Needs root
// (ip netns, and the sandbox's root inside); otherwise every test is skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Sandbox as Sandbox29 } from 'e2b';
import { Sandbox } from 'e2b-2.51';

import { requestWithHost } from '../lib/host.mjs';
import { startTestHost } from '../lib/netns.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { run, useSandboxd } from '../lib/sdk.mjs';

const isRoot = process.getuid?.() === 0;
let sd;
let host; // { ips: [A, B], port, subnet }
let A;
let B;

before(async () => {
  if (!isRoot) return;
  sd = await startSandboxd();
  useSandboxd(sd);
  host = await startTestHost({ addresses: 2 });
  [A, B] = host.ips;
});

after(async () => {
  await host?.stop();
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});


/** What the sandbox gets from the test host at addr: the answer, or curl's failure. */
async function reach(sbx, addr, opts = {}) {
  const r = await run(sbx, `curl -sS --max-time 5 http://${addr}:${host.port}/`, opts);
  return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

const REFUSED = /^failed: .*(No route to host|Couldn't connect)/;

function assertReaches(got, addr) {
  assert.equal(got, `hello ${addr}`);
}

describe('egress rules', { skip: !isRoot && 'needs root (ip netns, root inside)' }, () => {
  test('the start line says how egress rules are enforced', () => {
    assert.match(sd.stderr, /egress rules: nftables \((libnftables|\S*nft)\) in each sandbox's network namespace/);
  });

  test('without rules both targets are reachable (the control for every block below)', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      assertReaches(await reach(sbx, A), A);
      assertReaches(await reach(sbx, B), B);
      const info = await Sandbox.getInfo(sbx.sandboxId);
      assert.equal(info.network, undefined);
      assert.equal(sbx.trafficAccessToken, undefined);
    } finally {
      await sbx.kill();
    }
  });

  test('egress outlives the HTTP connection that created the sandbox', async () => {
    // The create's connection closes at once (Connection: close), and with it sandboxd's
    // thread for it: the network helper must not go with that thread.
    const created = await new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1', port: sd.port, path: '/v2/sandboxes', method: 'POST', agent: false,
          headers: { 'X-API-KEY': sd.apiKey, 'Content-Type': 'application/json', Connection: 'close' },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (body += d));
          res.socket.once('close', () => resolve({ status: res.statusCode, body }));
          res.resume();
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ templateID: 'base', timeout: 120, network: { denyOut: [B] } }));
    });
    assert.equal(created.status, 201, created.body);
    const { sandboxID } = JSON.parse(created.body);
    const sbx = await Sandbox.connect(sandboxID);
    try {
      for (let i = 0; i < 5; i++) assertReaches(await reach(sbx, A), A);
      assert.match(await reach(sbx, B), REFUSED);
      assert.equal((await run(sbx, 'grep -c tap0: /proc/net/dev')).stdout, '1\n');
    } finally {
      await sbx.kill();
    }
  });

  test('denyOut blocks what allowOut reaches: allow takes precedence (SDK 2.51 and 2.9.0)', async () => {
    for (const S of [Sandbox, Sandbox29]) {
      const sbx = await S.create({
        timeoutMs: 120_000,
        network: { denyOut: [host.subnet], allowOut: [A] },
      });
      try {
        assertReaches(await reach(sbx, A), A);
        const blocked = await reach(sbx, B);
        assert.match(blocked, REFUSED);
        // UDP too: the sender is refused at once
        const udp = (a) => run(sbx, `python3 -c "
import socket
try:
  socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${a}', 9999)); print('sent')
except OSError as e: print(e.strerror)"`);
        assert.equal((await udp(A)).stdout, 'sent\n');
        assert.equal((await udp(B)).stdout, 'Operation not permitted\n');
        const tcp = await run(sbx, `python3 -c "
import socket
try:
  socket.create_connection(('${B}', ${host.port}), timeout=5); print('connected')
except OSError as e: print(e.strerror)"`);
        assert.equal(tcp.stdout, 'No route to host\n');
        // the sandbox's own loopback is never filtered
        const lo = await run(sbx, 'python3 -c "import socket; s=socket.socket(); s.bind((\'127.0.0.1\',0)); s.listen(); c=socket.create_connection(s.getsockname()); print(\'lo ok\')"');
        assert.equal(lo.stdout, 'lo ok\n', lo.stderr);
        const info = await Sandbox.getInfo(sbx.sandboxId); // 2.9.0 does not read `network`
        assert.deepEqual(info.network?.allowOut, [A]);
        assert.deepEqual(info.network?.denyOut, [host.subnet]);
      } finally {
        await sbx.kill();
      }
    }
  });

  test('ALL_TRAFFIC denied with one address allowed; allowInternetAccess: false with allowOut', async () => {
    const sbx = await Sandbox.create({
      timeoutMs: 120_000,
      network: { denyOut: ({ allTraffic }) => [allTraffic], allowOut: [`${A}/32`] },
    });
    try {
      assertReaches(await reach(sbx, A), A);
      assert.match(await reach(sbx, B), REFUSED);
    } finally {
      await sbx.kill();
    }
    // E2B: allowInternetAccess false is denyOut 0.0.0.0/0, and allowOut still wins over it
    const off = await Sandbox.create({
      timeoutMs: 120_000,
      allowInternetAccess: false,
      network: { allowOut: [A] },
    });
    try {
      assertReaches(await reach(off, A), A);
      assert.match(await reach(off, B), REFUSED);
      assert.equal((await Sandbox.getInfo(off.sandboxId)).allowInternetAccess, false);
    } finally {
      await off.kill();
    }
  });

  test('updateNetwork changes the rules of a running sandbox, and GET shows them', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      // a long-lived process keeps running across the updates
      await sbx.commands.run('sleep 600', { background: true });
      assertReaches(await reach(sbx, B), B);
      await sbx.updateNetwork({ denyOut: [B] });
      assert.match(await reach(sbx, B), REFUSED);
      assertReaches(await reach(sbx, A), A);
      let info = await Sandbox.getInfo(sbx.sandboxId);
      assert.deepEqual(info.network?.denyOut, [B]);
      assert.equal(info.network?.allowOut, undefined);

      // fields left out are cleared: both reachable again
      await sbx.updateNetwork({});
      assertReaches(await reach(sbx, B), B);
      info = await Sandbox.getInfo(sbx.sandboxId);
      assert.equal(info.network?.denyOut, undefined);

      // allowInternetAccess: false blocks everything but allowOut
      await Sandbox.updateNetwork(sbx.sandboxId, { allowInternetAccess: false, allowOut: [B] });
      assertReaches(await reach(sbx, B), B);
      assert.match(await reach(sbx, A), REFUSED);
      info = await Sandbox.getInfo(sbx.sandboxId);
      assert.equal(info.allowInternetAccess, false);
      assert.deepEqual(info.network?.allowOut, [B]);
      assert.ok((await sbx.commands.list()).some((p) => (p.args ?? []).includes('sleep 600')));
    } finally {
      await sbx.kill();
    }
  });

  test('root inside cannot remove or bypass the rules', async () => {
    const sbx = await Sandbox.create({
      timeoutMs: 120_000,
      network: { denyOut: [B] },
    });
    try {
      assert.match(await reach(sbx, B), REFUSED);
      const attempts = [
        'nft flush ruleset',
        'nft delete table inet codecanvas_egress',
        'nft list ruleset',
        'iptables -F',
        'iptables -P OUTPUT ACCEPT',
        `ip route add ${B}/32 via 10.0.2.2 dev tap0`,
        'ip route del default',
        'ip link set tap0 down',
        'ip addr add 10.0.2.99/24 dev tap0',
        'unshare -n true',
        'unshare -U -r true',
        `python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)"`,
        `python3 -c "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)"`,
      ];
      for (const cmd of attempts) {
        for (const [how, opts, prefix] of [['user: root', { user: 'root' }, ''], ['sudo', {}, 'sudo ']]) {
          const r = await run(sbx, prefix + cmd, opts);
          assert.notEqual(r.exitCode, 0, `${how}: '${cmd}' succeeded: ${r.stdout}`);
          // refused by the kernel (no capability), not merely missing
          assert.match(r.stderr, /not permitted|Permission denied/, `${how}: '${cmd}': ${r.stderr}`);
        }
      }
      // root has no CAP_NET_ADMIN or CAP_NET_RAW (bits 12 and 13) in any set
      const caps = await run(sbx, 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)" /proc/self/status', { user: 'root' });
      for (const line of caps.stdout.trim().split('\n')) {
        const bits = BigInt(`0x${line.split(/\s+/)[1]}`);
        assert.equal(bits & (3n << 12n), 0n, line);
      }
      // the target stays blocked for root and for user, and the allowed one stays reachable;
      // an IPv4-mapped IPv6 address is the same IPv4 packet
      assert.match(await reach(sbx, B, { user: 'root' }), REFUSED);
      assert.match(await reach(sbx, `[::ffff:${B}]`, { user: 'root' }), /^failed: /);
      assertReaches(await reach(sbx, `[::ffff:${A}]`, { user: 'root' }), A);
      assert.match(await reach(sbx, B), REFUSED);
      assertReaches(await reach(sbx, A, { user: 'root' }), A);
    } finally {
      await sbx.kill();
    }
  });

  test('the rules survive a cold resume; updates while paused take effect', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { denyOut: [B] } });
    try {
      assert.match(await reach(sbx, B), REFUSED);
      assert.equal(await sbx.pause({ keepMemory: false }), true);
      const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      const info = await Sandbox.getInfo(sbx.sandboxId);
      assert.equal(info.state, 'running');
      assert.match(await reach(back, B), REFUSED);
      assertReaches(await reach(back, A), A);
      // an update while paused: with its memory (frozen) it applies at once, without it at
      // the resume
      assert.equal(await back.pause(), true);
      await Sandbox.updateNetwork(sbx.sandboxId, { denyOut: [A] });
      const thawed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      assert.match(await reach(thawed, A), REFUSED);
      assertReaches(await reach(thawed, B), B);
      assert.equal(await thawed.pause({ keepMemory: false }), true);
      await Sandbox.updateNetwork(sbx.sandboxId, { denyOut: [B] });
      const cold = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      assert.match(await reach(cold, B), REFUSED);
      assertReaches(await reach(cold, A), A);
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  /** How many bubblewrap children the sandboxd with this pid has (one per started sandbox). */
  function bwrapChildren(pid) {
    let n = 0;
    for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
        if (m && m[1] === 'bwrap' && Number(m[2]) === pid) n++;
      } catch { /* exited meanwhile */ }
    }
    return n;
  }

  async function until(what, cond) {
    for (let i = 0; i < 300; i++) {
      if (cond()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  test('with a warm pool, and across a sandboxd restart (paused, then resumed afresh)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cc-egress-'));
    const saved = { ...sd.env() };
    let pd = await startSandboxd({ stateDir: dir, args: ['--warm-pool', '1'] });
    const apiKey = pd.apiKey;
    Object.assign(process.env, pd.env());
    try {
      // the pool holds its started sandbox, so this create takes it and must install the rules
      await until('the warm pool to fill', () => bwrapChildren(pd.pid) === 1);
      const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { denyOut: [B] } });
      assert.match(await reach(sbx, B), REFUSED);
      assertReaches(await reach(sbx, A), A);
      const priv = await Sandbox.create({ timeoutMs: 120_000, network: { allowPublicTraffic: false } });
      const other = await Sandbox.create({ timeoutMs: 120_000, network: { denyOut: [B] } });
      assert.equal(await sbx.pause(), true);
      assert.equal(await priv.pause(), true);
      assert.equal(await other.pause(), true);
      // changed while paused: the restart must bring back the new rules, not the old ones
      await Sandbox.updateNetwork(other.sandboxId, { denyOut: [A] });
      assert.deepEqual(await pd.stop(), { code: 0, signal: null }, pd.stderr);
      pd = await startSandboxd({ stateDir: dir, apiKey });
      Object.assign(process.env, pd.env());
      const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      assert.match(await reach(back, B), REFUSED);
      assertReaches(await reach(back, A), A);
      assert.deepEqual((await Sandbox.getInfo(sbx.sandboxId)).network?.denyOut, [B]);
      const otherBack = await Sandbox.connect(other.sandboxId, { timeoutMs: 120_000 });
      assert.match(await reach(otherBack, A), REFUSED);
      assertReaches(await reach(otherBack, B), B);
      await Sandbox.kill(other.sandboxId);
      const privBack = await Sandbox.connect(priv.sandboxId, { timeoutMs: 120_000 });
      assert.equal(privBack.trafficAccessToken, priv.trafficAccessToken);
      await Sandbox.kill(sbx.sandboxId);
      await Sandbox.kill(priv.sandboxId);
    } finally {
      Object.assign(process.env, saved);
      assert.deepEqual(await pd.stop(), { code: 0, signal: null }, pd.stderr);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('concurrent creates and updates each get their own rules', async () => {
    const n = 6;
    const boxes = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        Sandbox.create({ timeoutMs: 120_000, network: { denyOut: [i % 2 ? A : B] } })),
    );
    try {
      const got = await Promise.all(boxes.map(async (s) => [await reach(s, A), await reach(s, B)]));
      got.forEach(([a, b], i) => {
        if (i % 2) assert.match(a, REFUSED), assertReaches(b, B);
        else assertReaches(a, A), assert.match(b, REFUSED);
      });
      // swap every sandbox's rule at once
      await Promise.all(boxes.map((s, i) => s.updateNetwork({ denyOut: [i % 2 ? B : A] })));
      const after = await Promise.all(boxes.map(async (s) => [await reach(s, A), await reach(s, B)]));
      after.forEach(([a, b], i) => {
        if (i % 2) assertReaches(a, A), assert.match(b, REFUSED);
        else assert.match(a, REFUSED), assertReaches(b, B);
      });
    } finally {
      await Promise.all(boxes.map((s) => s.kill()));
    }
  });

  test('a sandbox created without internet access cannot be given egress by an update', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, allowInternetAccess: false });
    try {
      await assert.rejects(sbx.updateNetwork({ allowOut: [A] }), /409.*allowInternetAccess: false/s);
      // denying everything is what it has already
      await sbx.updateNetwork({ allowInternetAccess: false });
      assert.match(await reach(sbx, A), /^failed: /);
    } finally {
      await sbx.kill();
    }
  });

  test('rule kinds sandboxd does not enforce are refused, never ignored; it keeps serving', async () => {
    const cases = [
      [{ allowOut: ['exa mple.com'] }, /400.*invalid network\.allowOut entry/s],
      [{ denyOut: ['example.com'] }, /400.*domain names are not supported for deny rules/s],
      [{ denyOut: ['10.0.0.0/33'] }, /400.*invalid network\.denyOut entry '10\.0\.0\.0\/33'/s],
      [{ allowOut: ['1.2.3.4 '] }, /400.*invalid network\.allowOut entry/s],
      [{ rules: { 'api.example.com': [{ transform: { headers: { a: 'b' } } }] }, allowOut: ['api.example.com'] }, /501/],
      [{ egressProxy: { address: '127.0.0.1:1080' } }, /501.*egressProxy/s],
      [{ httpsPorts: [3000] }, /501.*httpsPorts/s],
      [{ maskRequestHost: 'two words' }, /400.*maskRequestHost must be a host name/s],
    ];
    for (const [network, re] of cases)
      await assert.rejects(Sandbox.create({ timeoutMs: 60_000, network }), re, JSON.stringify(network));
    const sbx = await Sandbox.create({ timeoutMs: 60_000 });
    try {
      await assert.rejects(sbx.updateNetwork({ allowOut: ['example..com'] }), /400/);
      await assert.rejects(sbx.updateNetwork({ denyOut: ['300.1.1.1'] }), /400/);
      // the refused update changed nothing
      assertReaches(await reach(sbx, B), B);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).network, undefined);
    } finally {
      await sbx.kill();
    }
  });
});

describe('public traffic', { skip: !isRoot && 'needs root' }, () => {
  /** GET / on the sandbox's port through sandboxd, with the Host header getHost(port) gives
   * (fetch cannot set Host; Node does not resolve *.localhost). */
  function getPort(sbx, port, headers = {}) {
    return requestWithHost(sd.port, sbx.getHost(port), '/', { headers });
  }

  async function serve(sbx) {
    await sbx.commands.run('python3 -m http.server 8000 --bind 127.0.0.1', { background: true });
    // bounded poll until it listens (inside the sandbox)
    const up = await run(sbx, 'for i in $(seq 100); do curl -s -o /dev/null localhost:8000 && exit 0; sleep 0.1; done; exit 1');
    assert.equal(up.exitCode, 0, 'the server in the sandbox did not start');
  }

  test('allowPublicTraffic: false needs the traffic access token on port URLs', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { allowPublicTraffic: false } });
    try {
      assert.match(sbx.trafficAccessToken ?? '', /^[0-9a-f]{64}$/);
      await serve(sbx); // envd (port 49983) needs no traffic token
      const none = await getPort(sbx, 8000);
      assert.equal(none.status, 403);
      assert.match(JSON.parse(none.body).message, /e2b-traffic-access-token/);
      const wrong = await getPort(sbx, 8000, { 'e2b-traffic-access-token': 'x'.repeat(64) });
      assert.equal(wrong.status, 403);
      const ok = await getPort(sbx, 8000, { 'e2b-traffic-access-token': sbx.trafficAccessToken });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /Directory listing/);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).network?.allowPublicTraffic, false);
      // the SDK's own calls keep working
      assert.equal((await run(sbx, 'echo hi')).stdout, 'hi\n');
    } finally {
      await sbx.kill();
    }
  });

  test('a request without the token does not wake a paused sandbox; one with it does', async () => {
    const sbx = await Sandbox.create({
      timeoutMs: 120_000,
      network: { allowPublicTraffic: false },
      lifecycle: { onTimeout: 'pause', autoResume: true },
    });
    try {
      assert.equal(await sbx.pause(), true);
      assert.equal((await getPort(sbx, 8000)).status, 403);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
      // with the token it is resumed (auto-resume), and then nothing listens on the port
      const r = await getPort(sbx, 8000, { 'e2b-traffic-access-token': sbx.trafficAccessToken });
      assert.equal(r.status, 502);
      assert.match(r.body, /port is not open/);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'running');
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  test('a public sandbox serves its ports without a token; 2.9.0 gets the token too', async () => {
    const pub = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await serve(pub);
      assert.equal((await getPort(pub, 8000)).status, 200);
    } finally {
      await pub.kill();
    }
    const old = await Sandbox29.create({ timeoutMs: 120_000, network: { allowPublicTraffic: false } });
    try {
      assert.match(old.trafficAccessToken ?? '', /^[0-9a-f]{64}$/);
      assert.equal((await getPort(old, 8000)).status, 403);
    } finally {
      await old.kill();
    }
  });

  test('maskRequestHost: the server in the sandbox sees that Host, ${PORT} replaced', async () => {
    const echo = `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = (self.headers.get('Host') or '-').encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(('127.0.0.1', 8001), H).serve_forever()`;
    const serveEcho = async (s) => {
      await s.files.write('/home/user/echo.py', echo);
      await s.commands.run('python3 echo.py', { background: true });
      const up = await run(s, 'for i in $(seq 100); do curl -s -o /dev/null localhost:8001 && exit 0; sleep 0.1; done; exit 1');
      assert.equal(up.exitCode, 0, 'the server in the sandbox did not start');
    };
    // without a mask the server sees the Host the client sent (the control)
    const plain = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      await serveEcho(plain);
      assert.equal((await getPort(plain, 8001)).body, plain.getHost(8001));
    } finally {
      await plain.kill();
    }
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { maskRequestHost: 'app-${PORT}.example.test' } });
    try {
      await serveEcho(sbx);
      const r = await getPort(sbx, 8001);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'app-8001.example.test');
      assert.equal((await Sandbox.getInfo(sbx.sandboxId)).network?.maskRequestHost, 'app-${PORT}.example.test');
      // an update of the egress rules keeps it
      await sbx.updateNetwork({ denyOut: [B] });
      assert.equal((await getPort(sbx, 8001)).body, 'app-8001.example.test');
    } finally {
      await sbx.kill();
    }
  });

  test('allowPublicTraffic: false without a secure sandbox is refused', async () => {
    const r = await fetch(`${sd.url}/sandboxes`, {
      method: 'POST',
      headers: { 'X-API-KEY': sd.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ templateID: 'base', secure: false, network: { allowPublicTraffic: false } }),
    });
    assert.equal(r.status, 400);
    assert.match((await r.json()).message, /allowPublicTraffic: false needs a secure sandbox/);
  });
});
