// The worker's interactive terminal (GET /v1/terminal, a WebSocket): a login shell on a PTY
// in the project's sandbox, through a real worker and a real sandboxd, with Node's own
// WebSocket client (the browser API).  Typed input, Ctrl-C, resize, exit, reattach after a
// dropped connection, authentication and tenancy.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

let sd, wk, alice, bob;

before(async () => {
  sd = await startSandboxd();
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  alice = wk.token('alice');
  bob = wk.token('bob');
});

after(async () => {
  await wk?.stop();
  await sd?.stop();
});

/** A terminal session: collected output, control messages, and waits on them. */
function open(token, project, { cols = 80, rows = 24, pid } = {}) {
  const q = new URLSearchParams({ project, cols: String(cols), rows: String(rows) });
  if (pid) q.set('pid', String(pid));
  const ws = new WebSocket(`${wk.url.replace('http', 'ws')}/v1/terminal?${q}`, ['codecanvas.terminal.v1', `bearer.${token}`]);
  ws.binaryType = 'arraybuffer';
  const t = { ws, out: '', control: [], waiters: [], closed: null };
  const check = () => {
    for (const w of [...t.waiters]) {
      const hit = w.test();
      if (hit) {
        t.waiters.splice(t.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(hit);
      }
    }
  };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') t.control.push(JSON.parse(e.data));
    else t.out += Buffer.from(e.data).toString('utf8');
    check();
  };
  ws.onclose = (e) => {
    t.closed = { code: e.code, reason: e.reason };
    check();
  };
  t.until = (test, what, ms = 20000) => {
    const hit = test();
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { test, resolve };
      w.timer = setTimeout(() => reject(new Error(`terminal: no ${what} within ${ms} ms; output:\n${JSON.stringify(t.out)}\ncontrol: ${JSON.stringify(t.control)}`)), ms);
      t.waiters.push(w);
    });
  };
  t.output = (re, from = 0) => t.until(() => re.exec(t.out.slice(from)), `output ${re}`);
  t.message = (type) => t.until(() => t.control.find((m) => m.type === type), `${type} message`);
  t.type = (s) => ws.send(new TextEncoder().encode(s));
  t.mark = () => t.out.length;
  return t;
}

test('a shell on a PTY: python3 prints 42, Ctrl-C stops sleep, resize reaches stty, exit ends it', async () => {
  const t = open(alice, 'term', { cols: 90, rows: 30 });
  const ready = await t.message('ready');
  assert.ok(ready.pid > 0);
  assert.equal(ready.reattached, false);
  t.type('tty; stty size\r');
  await t.output(/\/dev\/pts\/\d+\r?\n30 90/);
  let m = t.mark();
  t.type('python3\r');
  await t.output(/>>> /, m);
  t.type('print(6*7)\r');
  await t.output(/\r?\n42\r?\n/, m);
  // typing ahead of a program that is not reading yet races in any terminal: wait for the
  // shell's prompt (at the end of the output) before each line
  m = t.mark();
  t.type('exit()\r');
  await t.output(/\$ $/, m);
  m = t.mark();
  t.type('sleep 100\r');
  await t.output(/sleep 100\r?\n/, m);
  t.type('\x03');
  await t.output(/\^C[\s\S]*\$ $/, m);
  m = t.mark();
  t.type('echo after-ctrl-c\r');
  await t.output(/[\r\n]after-ctrl-c\r?\n/, m); // the output line, not the echo of the command
  m = t.mark();
  t.ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 40 }));
  t.type('stty size\r');
  await t.output(/40 100/, m);
  t.type('exit 3\r');
  const exit = await t.message('exit');
  assert.equal(exit.exitCode, 3);
  await t.until(() => t.closed, 'close');
  assert.equal(t.closed.code, 1000);
});

test('a dropped connection leaves the shell running: reattach with its pid, then kill ends it', async () => {
  const t = open(alice, 'term2');
  const { pid } = await t.message('ready');
  t.type('export MARK=still-here\r');
  t.type('echo set:$MARK\r');
  await t.output(/set:still-here/);
  t.ws.close();
  await t.until(() => t.closed, 'close');
  const again = open(alice, 'term2', { pid });
  const r = await again.message('ready');
  assert.equal(r.pid, pid);
  assert.equal(r.reattached, true);
  again.type('echo back:$MARK\r');
  await again.output(/back:still-here/); // the same shell, its state intact
  again.ws.send(JSON.stringify({ type: 'kill' }));
  const exit = await again.message('exit');
  assert.equal(exit.exitCode, -1);
  await again.until(() => again.closed, 'close');
  // the process is gone: a reattach says so (its end, while the server still remembers it, or
  // not_found) and gives no shell
  const late = open(alice, 'term2', { pid });
  const said = await late.until(() => late.control.find((m) => m.type === 'exit' || m.type === 'error'), 'the end');
  assert.ok(said.type === 'error' ? said.code === 'not_found' : said.exitCode === -1, JSON.stringify(said));
  await late.until(() => late.closed, 'close');
});

test("authenticated like every request; a user's terminal is in that user's own project", async () => {
  // no token, a wrong token: the upgrade is refused with the JSON error
  const refused = (headers) =>
    new Promise((resolve, reject) => {
      const req = http.request(`${wk.url}/v1/terminal?project=term`, {
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
      });
      req.on('upgrade', () => reject(new Error('upgraded without a valid token')));
      req.on('error', reject);
      req.end();
    });
  let r = await refused({});
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'unauthorized');
  r = await refused({ 'Sec-WebSocket-Protocol': 'codecanvas.terminal.v1, bearer.cct_not-a-token' });
  assert.equal(r.status, 401);
  r = await refused({ Authorization: `Bearer ${alice}`, 'Sec-WebSocket-Key': 'short' });
  assert.equal(r.status, 400);

  // alice's project 'shared' has a file; bob's terminal on 'shared' is bob's own project
  const w = await wk.rpc(alice, { op: 'writeFile', project: 'shared', args: { path: 'secret.txt', content: 'alice only' } });
  assert.equal(w.status, 200);
  const t = open(bob, 'shared');
  await t.message('ready');
  t.type('cat secret.txt; echo rc=$?\r');
  await t.output(/No such file or directory[\s\S]*rc=1/);
  t.ws.send(JSON.stringify({ type: 'kill' }));
  await t.message('exit');
});
