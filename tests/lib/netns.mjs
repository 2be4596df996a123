// tests/lib/netns.mjs: a test host of the test's own, for egress tests: a network namespace
// joined to the host by a veth pair with private addresses, and a tiny HTTP listener in it
// that answers with the address it was reached at.  Needs root (ip netns).  Nothing outside
// the machine is ever involved; stop() removes the namespace, the veth pair and the listener.
//
//   const host = await startTestHost({ addresses: 2 });
//   // host.ips = ['10.213.N.2', '10.213.N.3'], host.port = 8080, host.subnet = '10.213.N.0/24'
//   // with { web: true } also HTTP on 80 and HTTPS (self-signed) on 443, same answer
//   await host.stop();
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LISTENER = `
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const path = require('node:path');
const hello = (req, res) => {
  // with WEB_FILES: the files under that directory, by their path (an apt repository, say)
  const root = process.env.WEB_FILES;
  const file = root && path.join(root, path.normalize(decodeURIComponent(req.url.split('?')[0])));
  if (file && file.startsWith(root + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile())
    return res.end(fs.readFileSync(file));
  if (file && req.url !== '/') { res.statusCode = 404; return res.end(); }
  if (req.method === 'POST') { // says how much arrived, and a digest of it
    const h = require('node:crypto').createHash('sha256');
    let n = 0;
    req.on('data', (d) => { n += d.length; h.update(d); });
    return req.on('end', () => res.end('got ' + n + ' ' + h.digest('hex') + '\\n'));
  }
  res.end('hello ' + req.socket.localAddress + '\\n');
};
const ports = [[http.createServer(hello), 8080]];
if (process.env.WEB_KEY) {
  ports.push([http.createServer(hello), 80]);
  const tls = { key: fs.readFileSync(process.env.WEB_KEY), cert: fs.readFileSync(process.env.WEB_CERT) };
  ports.push([https.createServer(tls, hello), 443]);
}
let left = ports.length;
for (const [s, port] of ports) s.listen(port, '0.0.0.0', () => { if (--left === 0) console.log('ready'); });
`;

function ip(...args) {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts the namespace and its listener; resolves once the listener is ready.  web: also
 *  HTTP on port 80 and HTTPS (a self-signed certificate made here) on 443.  files: a
 *  directory whose files are served by path (others 404; "/" still says hello). */
export async function startTestHost({ addresses = 2, web = false, files = null } = {}) {
  const tag = `${process.pid}`.slice(-7);
  const ns = `cc-egress-${tag}`;
  const hostIf = `cceg${tag}h`;
  const nsIf = `cceg${tag}n`;
  // a /24 in 10.213.0.0/16 that no interface of the host uses yet
  const used = ip('-4', '-o', 'addr');
  let n = (process.pid % 200) + 20;
  for (let i = 0; i < 200 && used.includes(`10.213.${n}.`); i++) n = ((n + 1) % 230) + 20;
  const subnet = `10.213.${n}.0/24`;
  const ips = Array.from({ length: addresses }, (_, i) => `10.213.${n}.${i + 2}`);
  let listener;
  let certDir;
  const stop = async () => {
    if (certDir) rmSync(certDir, { recursive: true, force: true });
    if (listener && listener.exitCode === null) {
      const gone = new Promise((r) => listener.once('exit', r));
      listener.kill('SIGKILL');
      await gone;
    }
    try { ip('netns', 'del', ns); } catch { /* already gone */ }
    try { ip('link', 'del', hostIf); } catch { /* went with the namespace */ }
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `10.213.${n}.1/24`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    for (const a of ips) ip('-n', ns, 'addr', 'add', `${a}/24`, 'dev', nsIf);
    ip('-n', ns, 'link', 'set', nsIf, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const env = { ...process.env };
    if (files) env.WEB_FILES = files;
    if (web) {
      certDir = mkdtempSync(join(tmpdir(), 'cc-testhost-'));
      env.WEB_KEY = join(certDir, 'key.pem');
      env.WEB_CERT = join(certDir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', env.WEB_KEY, '-out', env.WEB_CERT, '-subj', '/CN=test-host', '-days', '1'],
      { stdio: 'ignore' });
    }
    listener = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER], {
      stdio: ['ignore', 'pipe', 'pipe'], env,
    });
    await new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`test host listener not ready in 15 s: ${err}`)), 15000);
      listener.stderr.on('data', (d) => { err += d; });
      listener.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      listener.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`test host listener exited (${code}): ${err}`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ns, ips, port: 8080, subnet, stop };
}
