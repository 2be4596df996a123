// Domain egress rules of codecanvas-sandboxd through the official E2B SDK (today's 2.51.0, and
// the pinned 2.9.0 for create), against real sandboxes: with allowOut naming domains and
// denyOut 0.0.0.0/0, HTTP (port 80, by its Host) and HTTPS (443, by the TLS server name)
// reach the names allowed, exactly or below a "*." entry, and nothing else; other ports stay
// with the address rules; updateNetwork adds and removes domain rules on a running sandbox;
// the rules survive a cold resume; root inside cannot get around them.
// The targets are a network namespace of this test's own (tests/lib/netns.mjs, with HTTP on 80
// and HTTPS on 443); the names are given to curl with --resolve, so no DNS is involved and
// nothing outside the machine is contacted.  Needs root (ip netns; domain rules need a root
// sandboxd); otherwise every test is skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Sandbox as Sandbox29 } from 'e2b';
import { Sandbox } from 'e2b-2.51';

import { startTestHost } from '../lib/netns.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { run, useSandboxd } from '../lib/sdk.mjs';

const isRoot = process.getuid?.() === 0;
let sd;
let host;
let A;
let B;

before(async () => {
  if (!isRoot) return;
  sd = await startSandboxd();
  useSandboxd(sd);
  host = await startTestHost({ addresses: 2, web: true });
  [A, B] = host.ips;
});

after(async () => {
  await host?.stop();
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

/** What the sandbox gets asking for name (resolved to addr by curl itself) over scheme:
 *  the answer, or curl's failure. */
async function get(sbx, scheme, name, addr, opts = {}) {
  const port = scheme === 'https' ? 443 : 80;
  const r = await run(
    sbx,
    `curl -sSk --max-time 5 --resolve ${name}:${port}:${addr} ${scheme}://${name}/`,
    opts,
  );
  return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

// a name not allowed: the connection is taken, then closed without an answer (as E2B)
const CLOSED = /^failed: curl: \((52|56|35)\)/;
const REFUSED = /^failed: .*(No route to host|Couldn't connect)/;
const RULES = { allowOut: ['Allowed.test', '*.wild.test'], denyOut: ['0.0.0.0/0'] };

describe('domain egress rules', { skip: !isRoot && 'needs root (ip netns, a root sandboxd)' }, () => {
  test('HTTP by Host and HTTPS by server name reach the allowed names only (SDK 2.51 and 2.9.0)', async () => {
    for (const S of [Sandbox, Sandbox29]) {
      const sbx = await S.create({ timeoutMs: 120_000, network: RULES });
      try {
        for (const scheme of ['http', 'https']) {
          assert.equal(await get(sbx, scheme, 'allowed.test', A), `hello ${A}`, scheme);
          assert.equal(await get(sbx, scheme, 'ALLOWED.test', B), `hello ${B}`, scheme);
          assert.equal(await get(sbx, scheme, 'api.wild.test', A), `hello ${A}`, scheme);
          assert.equal(await get(sbx, scheme, 'a.b.wild.test', A), `hello ${A}`, scheme);
          assert.match(await get(sbx, scheme, 'other.test', A), CLOSED, scheme);
          assert.match(await get(sbx, scheme, 'wild.test', A), CLOSED, `${scheme}: *. is what is below`);
          assert.match(await get(sbx, scheme, 'evilallowed.test', A), CLOSED, scheme);
          assert.match(await get(sbx, scheme, 'allowed.test.evil', A), CLOSED, scheme);
        }
        // by address, with no name: closed; other ports follow the address rules (denied)
        const byIp = await run(sbx, `curl -sS --max-time 5 http://${A}/`);
        assert.match(`failed: ${byIp.stderr.trim()}`, CLOSED);
        const other = await run(sbx, `curl -sS --max-time 5 http://${A}:${host.port}/`);
        assert.match(`failed: ${other.stderr.trim()}`, REFUSED);
        // the proxy's own port, asked directly with an allowed Host: no destination, closed
        const direct = await run(sbx, `curl -sS --max-time 5 -H 'Host: allowed.test' http://127.0.0.1:1/`);
        assert.notEqual(direct.exitCode, 0);
        assert.doesNotMatch(direct.stdout, /hello/);
        // a body bigger than what is read for the name, sent at once, arrives whole both ways
        const post = await run(sbx, `head -c 200000 /dev/urandom > /tmp/b && sha256sum /tmp/b | cut -c1-64 && ` +
          `curl -sSk --max-time 10 --resolve allowed.test:443:${A} --data-binary @/tmp/b https://allowed.test/ && ` +
          `curl -sS --max-time 10 --resolve allowed.test:80:${A} --data-binary @/tmp/b http://allowed.test/`);
        const [sum, viaTls, viaHttp] = post.stdout.trim().split('\n');
        assert.equal(viaTls, `got 200000 ${sum}`, post.stderr);
        assert.equal(viaHttp, `got 200000 ${sum}`, post.stderr);
        // an allowed name aimed at slirp4netns's host address: never connected (host loopback)
        assert.match(await get(sbx, 'http', 'allowed.test', '10.0.2.2'), CLOSED);
        const info = await Sandbox.getInfo(sbx.sandboxId); // (2.9.0's getInfo has no network)
        assert.deepEqual(info.network?.allowOut, RULES.allowOut, 'shown as given');
      } finally {
        await sbx.kill();
      }
    }
  });

  test('an address in allowOut is reached on every port, beside the names', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { allowOut: ['allowed.test', B], denyOut: ['0.0.0.0/0'] } });
    try {
      assert.equal(await get(sbx, 'http', 'other.test', B), `hello ${B}`);
      const r = await run(sbx, `curl -sS --max-time 5 http://${B}:${host.port}/`);
      assert.equal(r.stdout.trim(), `hello ${B}`);
      assert.equal(await get(sbx, 'https', 'allowed.test', A), `hello ${A}`);
      assert.match(await get(sbx, 'https', 'other.test', A), CLOSED);
    } finally {
      await sbx.kill();
    }
  });

  test('updateNetwork adds and removes domain rules on a running sandbox; root inside cannot undo them', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: { denyOut: ['0.0.0.0/0'] } });
    try {
      assert.match(await get(sbx, 'http', 'allowed.test', A), REFUSED);
      await sbx.updateNetwork(RULES);
      assert.equal(await get(sbx, 'http', 'allowed.test', A), `hello ${A}`);
      assert.match(await get(sbx, 'http', 'other.test', A), CLOSED);
      // root inside can neither change the table nor see the proxy (no process of the sandbox)
      const root = await run(sbx, 'nft flush ruleset; iptables -t nat -F; ps -eo comm=', { user: 'root' });
      assert.doesNotMatch(root.stdout, /sandboxd|proxy/);
      assert.match(await get(sbx, 'http', 'other.test', A, { user: 'root' }), CLOSED);
      assert.equal(await get(sbx, 'https', 'allowed.test', A, { user: 'root' }), `hello ${A}`);
      // the name rules go: everything is denied again
      await sbx.updateNetwork({ denyOut: ['0.0.0.0/0'] });
      assert.match(await get(sbx, 'http', 'allowed.test', A), REFUSED);
      // and come back
      await sbx.updateNetwork({ allowOut: ['allowed.test'], denyOut: ['0.0.0.0/0'] });
      assert.equal(await get(sbx, 'https', 'allowed.test', A), `hello ${A}`);
    } finally {
      await sbx.kill();
    }
  });

  test('domain rules hold after a pause without memory and a resume', async () => {
    const sbx = await Sandbox.create({ timeoutMs: 120_000, network: RULES });
    try {
      assert.equal(await get(sbx, 'http', 'allowed.test', A), `hello ${A}`);
      assert.equal(await sbx.pause({ keepMemory: false }), true);
      const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
      assert.equal(await get(back, 'https', 'api.wild.test', A), `hello ${A}`);
      assert.match(await get(back, 'https', 'other.test', A), CLOSED);
    } finally {
      await sbx.kill();
    }
  });
});
