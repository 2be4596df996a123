// codecanvas-worker: every protocol op against a live codecanvas-sandboxd (real bubblewrap
// sandboxes), the cache generation rule, history, records, streaming, cancellation on
// disconnect, ordering and tenancy.  Real processes, SQLite files and HTTP on 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox } from 'e2b';
import { requestWithHost } from '../lib/host.mjs';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

let sd, wk, A, B;

before(async () => {
  sd = await startSandboxd({ args: ['--no-internet'] });
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--max-output-bytes', '4096'] });
  A = wk.token('alice');
  B = wk.token('bob');
});

after(async () => {
  await wk?.stop();
  await sd?.stop();
});

const ok = (r, what = '') => {
  assert.equal(r.status, 200, `${what} ${r.text}`);
  assert.equal(r.body.ok, true, `${what} ${r.text}`);
  return r.body.result;
};
const exec = (tok, project, args) => wk.rpc(tok, { op: 'exec', project, args });
const sdkConnect = (id) => Sandbox.connect(id, { apiKey: sd.apiKey, apiUrl: sd.url, sandboxUrl: sd.url });

test('exec: output, exit code, status; second identical exec is cached; writeFile invalidates', async () => {
  const r1 = ok(await exec(A, 'p1', { cmd: 'echo hello; echo oops >&2' }), 'first exec');
  assert.equal(r1.stdout, 'hello\n');
  assert.equal(r1.stderr, 'oops\n');
  assert.equal(r1.exitCode, 0);
  assert.equal(r1.status, 'success');
  assert.equal(r1.cached, false);
  assert.match(r1.id, /^[0-9a-f]{32}$/);
  assert.equal(r1.sandboxRecreated, undefined);

  const r2 = ok(await exec(A, 'p1', { cmd: 'echo hello; echo oops >&2' }), 'second exec');
  assert.equal(r2.cached, true);
  assert.equal(r2.stdout, 'hello\n');
  assert.equal(r2.id, r1.id, 'a hit names the record that produced it');

  const nc = ok(await exec(A, 'p1', { cmd: 'echo hello; echo oops >&2', useCache: false }));
  assert.equal(nc.cached, false, 'useCache:false runs again');

  const w = ok(await wk.rpc(A, { op: 'writeFile', project: 'p1', args: { path: 'notes/a.txt', content: 'héllo\n' } }));
  assert.equal(w.path, '/home/user/notes/a.txt');
  assert.equal(w.size, Buffer.byteLength('héllo\n'));
  const r3 = ok(await exec(A, 'p1', { cmd: 'echo hello; echo oops >&2' }));
  assert.equal(r3.cached, false, 'after writeFile the entry is stale');
  const r4 = ok(await exec(A, 'p1', { cmd: 'cat notes/a.txt' }));
  assert.equal(r4.stdout, 'héllo\n');
});

test('what the worker remembers between requests (token, cached result) never outlives a change', async () => {
  // Repeated hits are answered from memory (cc_wmemo), not from SQLite; any write to the
  // database (clearCache here, a revocation by another process below) retires that memory
  // before the next request is answered.
  const tok = wk.token('mallory');
  const cmd = { cmd: 'echo remembered' };
  const first = ok(await exec(tok, 'mem', cmd));
  for (let i = 0; i < 3; i++) {
    const hit = ok(await exec(tok, 'mem', cmd));
    assert.equal(hit.cached, true);
    assert.equal(hit.id, first.id);
    assert.equal(hit.stdout, 'remembered\n');
  }
  assert.equal(ok(await wk.rpc(tok, { op: 'clearCache', project: 'mem' })).cleared, 1);
  const again = ok(await exec(tok, 'mem', cmd));
  assert.equal(again.cached, false, 'cleared means cleared, even for a result served from memory');
  assert.notEqual(again.id, first.id);
  for (let i = 0; i < 3; i++) assert.equal(ok(await exec(tok, 'mem', cmd)).id, again.id);
  const [entry] = JSON.parse(wk.cli('token', 'list', '--user', 'mallory'));
  wk.cli('token', 'revoke', '--user', 'mallory', '--id', String(entry.id));
  const refused = await exec(tok, 'mem', cmd);
  assert.equal(refused.status, 401, 'the revocation is effective for the very next request');
  assert.equal(refused.body.error.code, 'unauthorized');
});

test('non-zero exit is status failed (ok:true); readOnly exec keeps the generation', async () => {
  const f = await exec(A, 'p1', { cmd: 'echo bad >&2; exit 3' });
  const r = ok(f);
  assert.equal(r.exitCode, 3);
  assert.equal(r.status, 'failed');
  const g0 = (await wk.rpc(A, { op: 'getProject', project: 'p1' })).body.generation;
  const ro = await exec(A, 'p1', { cmd: 'ls /home/user', readOnly: true });
  ok(ro);
  assert.equal(ro.body.generation, g0, 'readOnly does not bump');
  const rw = await exec(A, 'p1', { cmd: 'touch /home/user/x' });
  ok(rw);
  assert.equal(rw.body.generation, g0 + 1, 'a non-readOnly exec bumps');
  const again = ok(await exec(A, 'p1', { cmd: 'ls /home/user', readOnly: true }));
  assert.equal(again.cached, false, 'the readOnly entry was made at an older generation');
});

test('exec options: env, cwd, stdin, timeout, output truncation', async () => {
  ok(await wk.rpc(A, { op: 'writeFile', project: 'p2', args: { path: 'sub/.keep', content: '' } }));
  const e = ok(await exec(A, 'p2', { cmd: 'echo "$FOO-$BAR"; pwd', env: { FOO: 'x', BAR: 'y' }, cwd: '/home/user/sub' }));
  assert.equal(e.stdout, 'x-y\n/home/user/sub\n');
  const s = ok(await exec(A, 'p2', { cmd: 'tr a-z A-Z', stdin: 'abc\n' }));
  assert.equal(s.stdout, 'ABC\n');
  const t = await exec(A, 'p2', { cmd: 'sleep 30', timeoutMs: 700 });
  assert.equal(t.status, 504, t.text);
  assert.equal(t.body.error.code, 'timeout');
  const rec = ok(await wk.rpc(A, { op: 'getResult', args: { executionId: t.body.error.executionId } }));
  assert.equal(rec.status, 'timeout');
  const big = ok(await exec(A, 'p2', { cmd: 'head -c 10000 /dev/zero | tr "\\0" a' }));
  assert.equal(big.truncated, true);
  assert.equal(big.stdout.length, 4096);
  const rec2 = ok(await wk.rpc(A, { op: 'getResult', args: { executionId: big.id } }));
  assert.equal(rec2.truncated, true);
  assert.equal(rec2.stdout.length, 4096);
});

test('readFile, listDir, base64; getResult of a failed op has status error, error and input', async () => {
  ok(await wk.rpc(A, { op: 'writeFile', project: 'p3', args: { path: 'bin.dat', content: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64' } }));
  const rb = ok(await wk.rpc(A, { op: 'readFile', project: 'p3', args: { path: 'bin.dat', encoding: 'base64' } }));
  assert.equal(rb.content, 'AAEC/w==');
  assert.equal(rb.size, 4);
  ok(await wk.rpc(A, { op: 'writeFile', project: 'p3', args: { path: 'd/e.txt', content: 'E' } }));
  const rt = ok(await wk.rpc(A, { op: 'readFile', project: 'p3', args: { path: '/home/user/d/e.txt' } }));
  assert.equal(rt.content, 'E');
  assert.equal(rt.encoding, 'utf8');
  const ls = ok(await wk.rpc(A, { op: 'listDir', project: 'p3', args: { path: '/home/user', depth: 2 } }));
  const paths = ls.entries.map((e) => e.path);
  assert.ok(paths.includes('/home/user/bin.dat'), paths.join());
  assert.ok(paths.includes('/home/user/d/e.txt'), paths.join());
  const d = ls.entries.find((e) => e.path === '/home/user/d');
  assert.equal(d.type, 'dir');
  assert.equal(ls.entries.find((e) => e.name === 'bin.dat').size, 4);

  const miss = await wk.rpc(A, { op: 'readFile', project: 'p3', args: { path: 'missing.txt' } });
  assert.equal(miss.status, 404);
  assert.equal(miss.body.error.code, 'not_found');
  const id = miss.body.error.executionId;
  assert.match(id, /^[0-9a-f]{32}$/);
  const rec = ok(await wk.rpc(A, { op: 'getResult', args: { executionId: id } }));
  assert.equal(rec.status, 'error');
  assert.equal(rec.op, 'readFile');
  assert.equal(rec.error.code, 'not_found');
  assert.deepEqual(rec.input, { path: 'missing.txt' });
  assert.ok(rec.createdAt && rec.finishedAt);
  assert.equal((await wk.rpc(B, { op: 'getResult', args: { executionId: id } })).body.error.code, 'not_found');
});

test('history is newest first with limit and a cursor; clearCache', async () => {
  const ids = [];
  for (const n of [1, 2, 3]) ids.push(ok(await exec(A, 'hist', { cmd: `echo ${n}` })).id);
  const h = ok(await wk.rpc(A, { op: 'getHistory', project: 'hist', args: { limit: 2 } }));
  assert.deepEqual(h.items.map((i) => i.id), [ids[2], ids[1]]);
  assert.equal(h.items[0].stdout, '3\n');
  assert.equal(h.items[0].op, 'exec');
  assert.ok(h.next);
  const h2 = ok(await wk.rpc(A, { op: 'getHistory', project: 'hist', args: { limit: 2, before: h.next } }));
  assert.deepEqual(h2.items.map((i) => i.id), [ids[0]]);

  // readOnly runs keep the generation, so several entries are live at once.
  const ro = (cmd) => exec(A, 'hist', { cmd, readOnly: true });
  ok(await ro('echo A'));
  ok(await ro('echo B'));
  assert.equal(ok(await ro('echo A')).cached, true);
  const c = ok(await wk.rpc(A, { op: 'clearCache', project: 'hist', args: { cmd: 'echo A' } }));
  assert.equal(c.cleared, 1);
  assert.equal(ok(await ro('echo A')).cached, false);
  assert.equal(ok(await ro('echo B')).cached, true, 'other commands stay cached');
  const all = ok(await wk.rpc(A, { op: 'clearCache', project: 'hist', args: {} }));
  assert.ok(all.cleared >= 2);
  assert.equal(ok(await ro('echo B')).cached, false);
});

test('streaming exec: events arrive while the command still runs', async () => {
  let proj = null;
  const seen = [];
  const res = await wk.rpcStream(A, { op: 'exec', project: 'stream', args: { cmd: 'echo first; while [ ! -f /home/user/go ]; do sleep 0.05; done; echo second' } }, {
    onLine: async (l) => {
      seen.push(l);
      if (l.event === 'stdout' && l.data.includes('first')) {
        // The command cannot finish until we react to its first line.
        proj = ok(await wk.rpc(A, { op: 'getProject', project: 'stream' }));
        const sbx = await sdkConnect(proj.sandboxId);
        await sbx.files.write('/home/user/go', 'go');
      }
    },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /application\/x-ndjson/);
  assert.ok(proj, 'the first stdout event arrived before the end');
  assert.equal(seen[0].event, 'start');
  assert.match(seen[0].data.executionId, /^[0-9a-f]{32}$/);
  const final = seen[seen.length - 1];
  assert.equal(final.ok, true);
  assert.equal(final.result.stdout, 'first\nsecond\n');
  assert.equal(final.result.id, seen[0].data.executionId);
  const outs = seen.filter((l) => l.event === 'stdout').map((l) => l.data).join('');
  assert.equal(outs, 'first\nsecond\n');
});

test('closing the connection cancels the command: the process is gone, the record canceled', async () => {
  const ac = new AbortController();
  let execId = null;
  await wk.rpcStream(A, { op: 'exec', project: 'cancel', args: { cmd: 'echo started; exec sleep 600' } }, {
    signal: ac.signal,
    onLine: (l) => {
      if (l.event === 'start') execId = l.data.executionId;
      if (l.event === 'stdout') ac.abort();
    },
  }).catch((e) => assert.equal(e.name, 'AbortError'));
  assert.ok(execId);
  // listProcesses waits (per-project order) until the canceled exec has finished.
  const ps = ok(await wk.rpc(A, { op: 'listProcesses', project: 'cancel' }));
  assert.ok(!ps.processes.some((p) => p.cmd.includes('sleep 600')), JSON.stringify(ps));
  const rec = ok(await wk.rpc(A, { op: 'getResult', args: { executionId: execId } }));
  assert.equal(rec.status, 'canceled');
  assert.equal(rec.stdout, 'started\n');
});

test('a non-streaming exec is canceled too when its client goes away', async () => {
  const ac = new AbortController();
  const pending = wk.rpc(A, { op: 'exec', project: 'cancel2', args: { cmd: 'exec sleep 700' } }, { signal: ac.signal }).catch((e) => e);
  let id = null;
  while (!id) {
    const h = await wk.rpc(A, { op: 'getHistory', project: 'cancel2', args: { limit: 1 } });
    if (h.status === 200 && h.body.result.items[0]?.status === 'running') id = h.body.result.items[0].id;
  }
  ac.abort();
  assert.equal((await pending).name, 'AbortError');
  const ps = ok(await wk.rpc(A, { op: 'listProcesses', project: 'cancel2' }));
  assert.ok(!ps.processes.some((p) => p.cmd.includes('sleep 700')), JSON.stringify(ps));
  assert.equal(ok(await wk.rpc(A, { op: 'getResult', args: { executionId: id } })).status, 'canceled');
});

test('setupProject writes files and runs install (plain and streamed)', async () => {
  const r = ok(await wk.rpc(A, { op: 'setupProject', project: 'setup', args: { files: [{ path: 'package.json', content: '{"name":"x"}' }, { path: 'src/a.js', content: 'console.log(1)' }], install: 'cat package.json; ls src' } }));
  assert.equal(r.ok, true);
  assert.deepEqual(r.files, ['/home/user/package.json', '/home/user/src/a.js']);
  assert.equal(r.install.stdout, '{"name":"x"}a.js\n');
  assert.equal(r.install.exitCode, 0);
  const s = await wk.rpcStream(A, { op: 'setupProject', project: 'setup', args: { files: [], install: 'echo installing; exit 1' } });
  const outs = s.lines.filter((l) => l.event === 'stdout').map((l) => l.data).join('');
  assert.equal(outs, 'installing\n');
  const fin = s.lines[s.lines.length - 1];
  assert.equal(fin.ok, true);
  assert.equal(fin.result.ok, false);
  assert.equal(fin.result.install.exitCode, 1);
});

function getVia(url, port) {
  const u = new URL(url);
  return requestWithHost(port, u.host, u.pathname);
}

test('startDevServer returns a reachable getHost URL; killProcess stops it', async () => {
  ok(await wk.rpc(A, { op: 'writeFile', project: 'dev', args: { path: 'site/index.html', content: 'dev server works' } }));
  const r = ok(await wk.rpc(A, { op: 'startDevServer', project: 'dev', args: { port: 8000, cwd: '/home/user/site' } }));
  const proj = ok(await wk.rpc(A, { op: 'getProject', project: 'dev' }));
  assert.equal(r.started, true);
  assert.equal(r.port, 8000);
  assert.equal(r.url, `http://8000-${proj.sandboxId}.localhost:${sd.port}/`);
  assert.equal(proj.port, 8000);
  const page = await getVia(r.url, sd.port);
  assert.equal(page.status, 200);
  assert.equal(page.body, 'dev server works');
  const ps = ok(await wk.rpc(A, { op: 'listProcesses', project: 'dev' }));
  assert.ok(ps.processes.some((p) => p.pid === r.pid && p.cmd.includes('http.server')), JSON.stringify(ps));
  const k = ok(await wk.rpc(A, { op: 'killProcess', project: 'dev', args: { pid: r.pid } }));
  assert.equal(k.killed, true);
  const ps2 = ok(await wk.rpc(A, { op: 'listProcesses', project: 'dev' }));
  assert.ok(!ps2.processes.some((p) => p.pid === r.pid));
  const k2 = ok(await wk.rpc(A, { op: 'killProcess', project: 'dev', args: { pid: r.pid } }));
  assert.equal(k2.killed, false);
});

test('tenancy: user B reaches none of A\'s project, sandbox, results or cache', async () => {
  const a = ok(await exec(A, 'shared-name', { cmd: 'echo secret-of-a > mine.txt; echo done' }));
  const pa = ok(await wk.rpc(A, { op: 'getProject', project: 'shared-name' }));
  for (const [op, args] of [['getProject', {}], ['getHistory', {}], ['readFile', { path: 'mine.txt' }], ['listDir', {}], ['listProcesses', {}], ['killProcess', { pid: 1 }], ['clearCache', {}], ['deleteProject', {}]]) {
    const r = await wk.rpc(B, { op, project: 'shared-name', args });
    assert.equal(r.body.error?.code, 'not_found', `${op}: ${r.text}`);
  }
  assert.equal((await wk.rpc(B, { op: 'getResult', args: { executionId: a.id } })).body.error.code, 'not_found');
  // The same projectId of B is B's own project: not cached from A, another sandbox.
  const b = ok(await exec(B, 'shared-name', { cmd: 'echo secret-of-a > mine.txt; echo done' }));
  assert.equal(b.cached, false);
  const rb = ok(await exec(B, 'shared-name', { cmd: 'cat /home/user/mine.txt; ls /home' }));
  const pb = ok(await wk.rpc(B, { op: 'getProject', project: 'shared-name' }));
  assert.notEqual(pb.sandboxId, pa.sandboxId);
  assert.ok(!JSON.stringify(ok(await wk.rpc(B, { op: 'getHistory', project: 'shared-name' }))).includes(a.id));
  assert.equal(rb.exitCode, 0);
  ok(await wk.rpc(B, { op: 'deleteProject', project: 'shared-name' }));
  assert.equal(ok(await wk.rpc(A, { op: 'getProject', project: 'shared-name' })).sandboxId, pa.sandboxId);
});

test('ordering: one project runs in arrival order, another project is not blocked', async () => {
  const first = exec(A, 'order', { cmd: 'while [ ! -f /home/user/release ]; do sleep 0.05; done; echo a >> log' });
  // wait until the first command runs (it holds the project)
  let running = false;
  while (!running) {
    const h = await wk.rpc(A, { op: 'getHistory', project: 'order', args: { limit: 1 } });
    running = h.status === 200 && h.body.result.items[0]?.status === 'running';
  }
  const second = exec(A, 'order', { cmd: 'echo b >> log; cat log' });
  // another project completes while 'order' is busy
  const other = ok(await exec(A, 'order-other', { cmd: 'echo free' }));
  assert.equal(other.stdout, 'free\n');
  const pid = ok(await wk.rpc(A, { op: 'getProject', project: 'order' })).sandboxId;
  await (await sdkConnect(pid)).files.write('/home/user/release', '1');
  ok(await first);
  const s = ok(await second);
  assert.equal(s.stdout, 'a\nb\n');
});

test('in-flight cap per user: conflict (409) beyond it, other users unaffected', async () => {
  const w2 = await startWorker({ sandboxd: sd, args: ['--max-inflight-per-user', '1', '--rate-limit', '0'] });
  try {
    const t = w2.token('capped');
    const t2 = w2.token('other');
    const long = w2.rpc(t, { op: 'exec', project: 'c1', args: { cmd: 'while [ ! -f /home/user/stop ]; do sleep 0.05; done' } });
    let running = false;
    while (!running) {
      const h = await w2.rpc(t, { op: 'getHistory', project: 'c1', args: { limit: 1 } });
      running = h.status === 200 && h.body.result.items[0]?.status === 'running';
    }
    const r = await w2.rpc(t, { op: 'exec', project: 'c2', args: { cmd: 'true' } });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error.code, 'conflict');
    const o = await w2.rpc(t2, { op: 'exec', project: 'c2', args: { cmd: 'echo ok' } });
    assert.equal(o.status, 200, o.text);
    const pid = (await w2.rpc(t, { op: 'getProject', project: 'c1' })).body.result.sandboxId;
    await (await sdkConnect(pid)).files.write('/home/user/stop', '1');
    assert.equal((await long).status, 200);
  } finally {
    await w2.stop();
  }
});

test('deleteProject kills the sandbox and drops the data', async () => {
  ok(await exec(A, 'gone', { cmd: 'echo x' }));
  const p = ok(await wk.rpc(A, { op: 'getProject', project: 'gone' }));
  const d = ok(await wk.rpc(A, { op: 'deleteProject', project: 'gone' }));
  assert.equal(d.deleted, true);
  assert.equal((await wk.rpc(A, { op: 'getProject', project: 'gone' })).body.error.code, 'not_found');
  const list = await Sandbox.list({ apiKey: sd.apiKey, apiUrl: sd.url });
  const items = list.nextItems ? await list.nextItems() : list;
  assert.ok(!items.some((s) => s.sandboxId === p.sandboxId), 'sandbox killed');
});
