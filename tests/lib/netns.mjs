// tests/lib/netns.mjs: a test host of the test's own, for egress tests: a network namespace
// joined to the host by a veth pair with private addresses, and a tiny HTTP listener in it
// that answers with the address it was reached at.  Needs root (ip netns).  Nothing outside
// the machine is ever involved; stop() removes the namespace, the veth pair and the listener.
//
//   const host = await startTestHost({ addresses: 2 });
//   // host.ips = ['10.213.N.2', '10.213.N.3'], host.port = 8080, host.subnet = '10.213.N.0/24'
//   await host.stop();
import { execFileSync, spawn } from 'node:child_process';

const LISTENER = `
const http = require('node:http');
const s = http.createServer((req, res) => res.end('hello ' + req.socket.localAddress + '\\n'));
s.listen(8080, '0.0.0.0', () => console.log('ready'));
`;

function ip(...args) {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts the namespace and its listener; resolves once the listener is ready. */
export async function startTestHost({ addresses = 2 } = {}) {
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
  const stop = async () => {
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
    listener = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER], {
      stdio: ['ignore', 'pipe', 'pipe'],
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
