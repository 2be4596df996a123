// Port URLs as E2B users build them.  sandbox.getHost(port) is "<port>-<id>.<domain>"; with
// sandboxd's defaults that is "<port>-<id>.localhost:<port>", which resolves to this machine
// through nss-myhostname (scripts/setup installs it), so Node's own fetch reaches a server in
// the sandbox with no option at all.  With --domain and --tls-ca, sandboxd serves HTTPS as
// E2B does with a certificate for *.<domain> from a local CA it keeps: the unmodified SDK,
// given only E2B_DOMAIN, an API key and the CA to trust (NODE_EXTRA_CA_CERTS), creates a
// sandbox, runs a command over envd at https://49983-<id>.<domain> and fetches
// https://<getHost(8000)>; a client that does not trust the CA is refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

import { startSandboxd } from '../lib/sandboxd.mjs';

const require = createRequire(import.meta.url);
const { Sandbox } = require('e2b-2.51');
const sdkPath = require.resolve('e2b-2.51');

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/* Polls fn until it returns a value, for at most ms (a server starting in a sandbox). */
async function until(fn, ms, what) {
  let last;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 50))) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
  }
  assert.fail(`${what} within ${ms} ms (last error: ${last?.cause?.code ?? last?.message})`);
}

test("getHost with sandboxd's defaults: Node's fetch reaches a server in the sandbox", async () => {
  const sd = await startSandboxd({ args: ['--no-internet'] });
  cleanup.push(() => sd.stop());
  const sbx = await Sandbox.create({ apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url });
  cleanup.push(() => sbx.kill().catch(() => {}));
  await sbx.files.write('/home/user/www/hello.txt', 'hello from the sandbox');
  await sbx.commands.run('cd /home/user/www && exec python3 -m http.server 8000', { background: true });
  const host = sbx.getHost(8000);
  assert.match(host, new RegExp(`^8000-${sbx.sandboxId}\\.localhost:${sd.port}$`));
  const text = await until(async () => {
    const r = await fetch(`http://${host}/hello.txt`);
    return r.status === 200 && (await r.text());
  }, 15000, `http://${host}/hello.txt answers`);
  assert.equal(text, 'hello from the sandbox');
});

test('--domain + --tls-ca: the unmodified SDK over HTTPS, getHost URLs over HTTPS, untrusted clients refused', async () => {
  const caDir = mkdtempSync(join(tmpdir(), 'cc-ca-'));
  cleanup.push(() => rmSync(caDir, { recursive: true, force: true }));
  const domain = 'sandbox.localhost';
  const sd = await startSandboxd({ args: ['--no-internet', '--domain', domain, '--tls-ca', caDir] });
  cleanup.push(() => sd.stop());
  assert.match(sd.url, /^https:\/\//);
  assert.equal(statSync(join(caDir, 'ca-key.pem')).mode & 0o777, 0o600, 'the CA key is private');
  const ca = readFileSync(join(caDir, 'ca.pem'), 'utf8');
  assert.match(ca, /BEGIN CERTIFICATE/);

  // A child process with what a user sets: the domain, a key, the CA to trust; no URLs.
  const script = join(caDir, 'client.mjs');
  writeFileSync(script, `
    import { createRequire } from 'node:module';
    const { Sandbox } = createRequire(import.meta.url)(${JSON.stringify(sdkPath)});
    const sbx = await Sandbox.create();
    try {
      const run = await sbx.commands.run('echo over-https; id -un');
      await sbx.files.write('/home/user/www/index.html', 'tls ok');
      await sbx.commands.run('cd /home/user/www && exec python3 -m http.server 8000', { background: true });
      const host = sbx.getHost(8000);
      let body = null, err = null;
      for (let i = 0; i < 300 && body === null; i++) {
        try {
          const r = await fetch('https://' + host + '/index.html');
          if (r.status === 200) body = await r.text();
        } catch (e) { err = String(e.cause?.code ?? e); }
        if (body === null) await new Promise((r) => setTimeout(r, 50));
      }
      console.log(JSON.stringify({ id: sbx.sandboxId, stdout: run.stdout, host, body, err,
        envd: sbx.envdApiUrl ?? null }));
    } finally { await sbx.kill(); }
  `);
  const env = { ...process.env, E2B_DOMAIN: `${domain}:${sd.port}`, E2B_API_KEY: sd.apiKey,
    NODE_EXTRA_CA_CERTS: join(caDir, 'ca.pem') };
  for (const k of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_DEBUG']) delete env[k];
  const out = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '', e = '';
    child.stdout.on('data', (d) => (o += d));
    child.stderr.on('data', (d) => (e += d));
    child.on('exit', (code) => (code === 0 ? resolve(o) : reject(new Error(`client exited ${code}: ${e}`))));
  });
  const res = JSON.parse(out.trim().split('\n').pop());
  assert.equal(res.stdout, 'over-https\nuser\n');
  assert.equal(res.host, `8000-${res.id}.${domain}:${sd.port}`);
  assert.equal(res.body, 'tls ok', `https://${res.host}: ${res.err}`);
  if (res.envd) assert.equal(res.envd, `https://49983-${res.id}.${domain}:${sd.port}`);

  // This process does not trust the CA: TLS is verified, not merely offered.
  await assert.rejects(fetch(`https://api.${domain}:${sd.port}/health`),
    (e) => /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(String(e.cause?.code ?? e.cause)));
  // Plain HTTP to the TLS port is not served.
  await assert.rejects(fetch(`http://127.0.0.1:${sd.port}/health`));

  // The CA stays: a restart issues a new server certificate from the same CA.
  await sd.stop();
  const sd2 = await startSandboxd({ args: ['--no-internet', '--domain', domain, '--tls-ca', caDir] });
  cleanup.push(() => sd2.stop());
  assert.equal(readFileSync(join(caDir, 'ca.pem'), 'utf8'), ca);
  const pem = execFileSync('openssl', ['s_client', '-connect', `127.0.0.1:${sd2.port}`,
    '-servername', `49983-x.${domain}`, '-CAfile', join(caDir, 'ca.pem'), '-verify_return_error'],
  { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  assert.match(pem, /Verify return code: 0 \(ok\)/);
});

test('TLS settings that cannot work are refused at start with the reason', async () => {
  const caDir = mkdtempSync(join(tmpdir(), 'cc-ca-'));
  cleanup.push(() => rmSync(caDir, { recursive: true, force: true }));
  const bin = join(process.env.CC_BIN_DIR, 'codecanvas-sandboxd');
  const run = (args) => {
    try {
      execFileSync(bin, ['--listen', '127.0.0.1:0', '--state-dir', caDir + '/state', '--insecure-no-api-key', ...args],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { code: 0, stderr: '' };
    } catch (e) {
      return { code: e.status, stderr: e.stderr };
    }
  };
  let r = run(['--tls-ca', caDir]); // domain "localhost": *.localhost is refused by clients
  assert.equal(r.code, 2);
  assert.match(r.stderr, /two labels or more/);
  r = run(['--tls-cert', join(caDir, 'none.pem')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--tls-cert and --tls-key go together/);
  r = run(['--domain', 'Bad_Name']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--domain needs a lower-case DNS name/);
});
