// The wasm client end to end: build/web/codecanvas.js in Node 20 (fake-indexeddb for
// IndexedDB) against a live codecanvas-worker + codecanvas-sandboxd on 127.0.0.1, with real
// bubblewrap sandboxes.  Every public API method is exercised, plus the local cache rules
// (hits send no request, changes seen through generations, persistence across module
// instances, offline reads marked stale), streaming and cancellation.
import 'fake-indexeddb/auto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

const { CodeCanvas, CodeCanvasError } = await import(pathToFileURL(join(process.env.CC_WEB_DIR, 'codecanvas.js')));

let sd, wk, token;
const clients = [];

before(async () => {
  sd = await startSandboxd();
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  token = wk.token('alice');
});

after(async () => {
  for (const c of clients) await c.close();
  if (wk) await wk.stop();
  if (sd) await sd.stop();
});

// A fetch that counts the requests it sends.
function countingFetch() {
  const f = (...a) => { f.calls++; return fetch(...a); };
  f.calls = 0;
  return f;
}

async function connect(opts = {}) {
  const c = await CodeCanvas.connect({ workerUrl: wk.url, token, ...opts });
  clients.push(c);
  return c;
}

test('executeCommand twice: the second is cached, faster, and sends no request', async () => {
  const f = countingFetch();
  const c = await connect({ fetch: f, cacheName: 'exec-twice' });
  assert.equal(c.online, true);
  const first = await c.executeCommand('npm list', 'p-npm');
  assert.equal(first.cached, false);
  assert.equal(typeof first.id, 'string');
  for (const k of ['stdout', 'stderr']) assert.equal(typeof first[k], 'string');
  assert.equal(typeof first.exitCode, 'number');
  const sent = f.calls;
  const second = await c.executeCommand('npm list', 'p-npm');
  assert.equal(second.cached, true);
  assert.equal(f.calls, sent, 'a local hit must not send a request');
  assert.equal(second.stdout, first.stdout);
  assert.equal(second.exitCode, first.exitCode);
  assert.ok(second.duration < first.duration, `${second.duration} < ${first.duration}`);
  // useCache: false goes to the worker and runs again.
  const third = await c.executeCommand('npm list', 'p-npm', false);
  assert.equal(third.cached, false);
  assert.equal(f.calls, sent + 1);
});

test('history, results, project info: newest first, failures recorded with input', async () => {
  const c = await connect({ cacheName: 'history' });
  await c.executeCommand('echo one', 'p-hist');
  const two = await c.executeCommand('echo two; exit 3', 'p-hist');
  assert.equal(two.exitCode, 3);
  assert.equal(two.status, 'failed');
  const err = await c.readFile('missing.txt', 'p-hist').catch((e) => e);
  assert.ok(err instanceof CodeCanvasError);
  assert.equal(err.code, 'not_found');
  assert.equal(typeof err.executionId, 'string');

  const h = await c.getExecutionHistory('p-hist', 50);
  assert.ok(Array.isArray(h.items) && h.items.length === 3 && h.items.length <= 50);
  assert.deepEqual(h.items.map((r) => r.op), ['readFile', 'exec', 'exec']);
  assert.equal(h.items[1].id, two.id);
  assert.equal(h.stale, undefined);

  const rec = await c.getExecutionResult(err.executionId);
  assert.equal(rec.status, 'error');
  assert.equal(rec.error.code, 'not_found');
  assert.equal(rec.input.path, 'missing.txt');
  const ok = await c.getExecutionResult(two.id);
  assert.equal(ok.status, 'failed');
  assert.equal(ok.input.cmd, 'echo two; exit 3');

  const updated = await c.updateProjectInfo('p-hist', { name: 'History', settings: { theme: 'dark', n: 1 } });
  assert.equal(updated.name, 'History');
  await c.updateProjectInfo('p-hist', { settings: { n: null } });
  const info = await c.getProjectInfo('p-hist');
  assert.equal(info.projectId, 'p-hist');
  assert.equal(info.name, 'History');
  assert.deepEqual(info.settings, { theme: 'dark' });
});

test('files: write, read (text and binary), list; setupProject with a streamed install', async () => {
  const c = await connect({ persist: false });
  assert.deepEqual(await c.writeFile('src/a.txt', 'héllo', 'p-files'), { path: '/home/user/src/a.txt', size: 6 });
  assert.equal(await c.readFile('src/a.txt', 'p-files'), 'héllo');
  const bytes = new Uint8Array([0, 1, 2, 255, 254, 10]);
  await c.writeFile('bin.dat', bytes, 'p-files');
  assert.deepEqual(await c.readFile('bin.dat', 'p-files', { binary: true }), bytes);
  const names = (await c.listFiles('/home/user', 'p-files')).map((e) => e.name).sort();
  assert.ok(names.includes('src') && names.includes('bin.dat'), names.join(','));

  const out = [];
  const r = await c.setupProject({ 'app/index.js': 'console.log(1)', 'app/b.txt': 'b' }, 'p-files',
    { install: 'ls app && echo installed', onStdout: (t) => out.push(t) });
  assert.equal(r.ok, true);
  assert.equal(r.install.exitCode, 0);
  assert.match(out.join(''), /installed/);
  assert.equal(await c.readFile('app/b.txt', 'p-files'), 'b');
});

test('clearCache: the next run goes to the worker again', async () => {
  const c = await connect({ persist: false });
  const a = await c.executeCommand('date +%s%N', 'p-clear');
  const b = await c.executeCommand('date +%s%N', 'p-clear');
  assert.equal(b.cached, true);
  assert.equal(b.stdout, a.stdout);
  const cleared = await c.clearCache('date +%s%N', 'p-clear');
  assert.equal(typeof cleared.cleared, 'number');
  const d = await c.executeCommand('date +%s%N', 'p-clear');
  assert.equal(d.cached, false);
  assert.notEqual(d.stdout, a.stdout);
});

test('a change by another client is seen once its generation reaches this client', async () => {
  // A and B: two module instances of one user in one process (two tabs); they share
  // generations over BroadcastChannel.  C does not listen and learns from a response.
  const fromTab = []; // generations of p-gen that reached A from another instance
  let wake = () => {};
  const A = await connect({ cacheName: 'gen-a', onGeneration: (p, g, src) => {
    if (src === 'tab' && p === 'p-gen') { fromTab.push(g); wake(); }
  } });
  let bGeneration = 0; // the newest generation B got in a response
  const B = await connect({ cacheName: 'gen-b', onGeneration: (p, g, src) => {
    if (src === 'worker' && p === 'p-gen') bGeneration = g;
  } });
  const cf = countingFetch();
  const C = await connect({ cacheName: 'gen-c', broadcast: false, fetch: cf });
  await B.writeFile('f.txt', 'v1', 'p-gen');
  for (const x of [A, C]) {
    assert.equal((await x.executeCommand('cat f.txt', 'p-gen')).stdout, 'v1');
    assert.equal((await x.executeCommand('cat f.txt', 'p-gen')).cached, true);
  }
  await B.writeFile('f.txt', 'v2', 'p-gen');
  const target = bGeneration;
  assert.ok(target > 0);
  // Wait (event-driven, no sleep) until B's new generation has reached A through the channel.
  while (!fromTab.some((g) => g >= target)) await new Promise((r) => { wake = r; });
  const a = await A.executeCommand('cat f.txt', 'p-gen');
  assert.equal(a.cached, false);
  assert.equal(a.stdout, 'v2');
  // C still has the old generation: until a response tells it otherwise, a local hit
  // (within maxStaleMs) is allowed.  Any answer about the project carries the generation.
  assert.equal((await C.executeCommand('cat f.txt', 'p-gen')).stdout, 'v1');
  await C.getProjectInfo('p-gen');
  const sent = cf.calls;
  const c2 = await C.executeCommand('cat f.txt', 'p-gen');
  assert.equal(cf.calls, sent + 1, 'no local hit after the newer generation arrived');
  assert.equal(c2.stdout, 'v2'); // (the worker may answer from its own, current, cache)
});

test('a fresh module instance over the same IndexedDB reads what the first wrote; offline reads are stale', async () => {
  const first = await connect({ cacheName: 'persist' });
  const r = await first.executeCommand('echo persisted', 'p-persist');
  await first.updateProjectInfo('p-persist', { name: 'Kept' });
  await first.getProjectInfo('p-persist');
  await first.getExecutionHistory('p-persist', 10);
  await first.getExecutionResult(r.id);
  await first.close(); // saves to IndexedDB

  const f = countingFetch();
  const second = await connect({ cacheName: 'persist', fetch: f });
  const sent = f.calls;
  const again = await second.executeCommand('echo persisted', 'p-persist');
  assert.equal(again.cached, true);
  assert.equal(again.stdout, 'persisted\n');
  assert.equal(f.calls, sent);

  // The worker unreachable (network down): reads come from the cache, marked stale.
  const down = () => Promise.reject(new TypeError('fetch failed'));
  const offline = await connect({ cacheName: 'persist', fetch: down });
  assert.equal(offline.online, false);
  const info = await offline.getProjectInfo('p-persist');
  assert.equal(info.stale, true);
  assert.equal(info.name, 'Kept');
  const h = await offline.getExecutionHistory('p-persist', 10);
  assert.equal(h.stale, true);
  assert.ok(h.items.some((x) => x.id === r.id));
  const rec = await offline.getExecutionResult(r.id);
  assert.equal(rec.stale, true);
  assert.equal(rec.stdout, 'persisted\n');
  await assert.rejects(offline.getProjectInfo('never-seen'), { code: 'upstream_error' });
  await assert.rejects(offline.writeFile('x', 'y', 'p-persist'), { code: 'upstream_error' });
});

test('streaming callbacks get output before the promise resolves', async () => {
  const c = await connect({ persist: false });
  let resolved = false;
  const seen = [];
  const p = c.executeCommand('echo first; sleep 0.5; echo >&2 second; sleep 0.5; echo third', 'p-stream', {
    onStdout: (t) => seen.push(['out', t, resolved]),
    onStderr: (t) => seen.push(['err', t, resolved]),
  }).then((r) => { resolved = true; return r; });
  const r = await p;
  assert.equal(r.stdout, 'first\nthird\n');
  assert.equal(r.stderr, 'second\n');
  assert.deepEqual(seen.map((s) => s[1]).join(''), 'first\nsecond\nthird\n');
  assert.ok(seen.every((s) => s[2] === false), 'every chunk arrived before resolution');
});

test('abort kills the command', async () => {
  const c = await connect({ persist: false });
  const ac = new AbortController();
  const p = c.executeCommand('echo started; sleep 30; echo finished > /home/user/finished.txt', 'p-abort', {
    useCache: false, signal: ac.signal, onStdout: (t) => { if (t.includes('started')) ac.abort(); },
  });
  await assert.rejects(p, (e) => e instanceof CodeCanvasError && e.code === 'canceled');
  // Operations of a project run one at a time: this runs after the canceled command ended.
  const ps = await c.executeCommand("cat /proc/[0-9]*/cmdline | tr '\\0' ' '; ls /home/user", 'p-abort', { useCache: false });
  assert.doesNotMatch(ps.stdout, /sleep 30/);
  assert.doesNotMatch(ps.stdout, /finished\.txt/);
  const h = await c.getExecutionHistory('p-abort', 5);
  assert.equal(h.items.find((x) => x.input && /sleep 30/.test(x.input.cmd)).status, 'canceled');
});

test('dev server, processes, projects: start, list, kill, list projects, delete', async () => {
  const c = await connect({ persist: false });
  await c.writeFile('www/index.html', '<h1>hi</h1>', 'p-dev');
  const d = await c.startDevServer(8000, 'p-dev', { cmd: 'python3 -m http.server 8000', cwd: '/home/user/www' });
  assert.equal(d.started, true);
  assert.equal(d.port, 8000);
  assert.match(d.url, /^https?:\/\/8000-/);
  assert.equal(typeof d.pid, 'number');
  const procs = await c.listProcesses('p-dev');
  assert.ok(procs.some((p) => p.pid === d.pid), JSON.stringify(procs));
  assert.equal((await c.killProcess(d.pid, 'p-dev')).killed, true);

  assert.ok((await c.listProjects()).some((p) => p.projectId === 'p-dev'));
  assert.equal((await c.deleteProject('p-dev')).deleted, true);
  assert.ok(!(await c.listProjects()).some((p) => p.projectId === 'p-dev'));
  await assert.rejects(c.getProjectInfo('p-dev'), { code: 'not_found' });
});

test('a wrong token is refused at connect', async () => {
  await assert.rejects(CodeCanvas.connect({ workerUrl: wk.url, token: 'not-a-token', persist: false }),
    (e) => e instanceof CodeCanvasError && e.code === 'unauthorized');
});

test("the seed's examples, verbatim: history is an Array, updateProjectInfo with worker-owned fields", async () => {
  const client = await connect({ cacheName: 'seed-examples' });
  const projectId = 'p-seed';
  await client.executeCommand('echo one', projectId);
  await client.executeCommand('echo two', projectId, false);

  // the seed's history example
  const history = await client.getExecutionHistory(projectId, 50);
  assert.ok(Array.isArray(history));
  assert.equal(history.length, 2);
  const lines = history.map((r) => `${r.status} ${r.input.cmd}`);
  assert.deepEqual(lines, ['success echo two', 'success echo one']); // newest first
  assert.equal(typeof history[0].id, 'string');
  assert.equal(history.next, undefined); // one page
  assert.equal(history.stale, undefined);
  assert.equal(JSON.stringify(history), JSON.stringify([...history])); // a plain array in JSON
  const page1 = await client.getExecutionHistory(projectId, 1);
  assert.equal(page1.length, 1);
  assert.equal(typeof page1.next, 'string');
  const page2 = await client.getExecutionHistory(projectId, 1, { before: page1.next });
  assert.deepEqual(page2.map((r) => r.id), [history[1].id]);

  // the seed's updateProjectInfo example
  const now = Date.now();
  const info = await client.updateProjectInfo(projectId, {
    name: 'My App',
    port: 3000,
    sandboxId: 'sandbox-123',
    lastExecution: now,
  });
  assert.equal(info.name, 'My App');
  assert.equal(info.port, 3000);
  assert.equal(info.lastExecution, now);
  assert.deepEqual(info.ignored, ['sandboxId']);
  assert.notEqual(info.sandboxId, 'sandbox-123'); // a tenant never points a project at a sandbox
  const again = await client.getProjectInfo(projectId);
  assert.equal(again.name, 'My App');
  assert.notEqual(again.sandboxId, 'sandbox-123');
  assert.equal(again.lastRecord.status, 'success');
});

test('several tabs of one user: their cache images are merged, not last-writer-wins', async () => {
  // two client instances on one IndexedDB image (two tabs), each caching a command in its own
  // project (a command in the same project would, rightly, make the other's entry stale)
  const a = await connect({ cacheName: 'two-tabs', broadcast: false });
  const b = await connect({ cacheName: 'two-tabs', broadcast: false });
  const ra = await a.executeCommand('echo tab-a', 'p-tab-a');
  const rb = await b.executeCommand('echo tab-b', 'p-tab-b');
  assert.equal(ra.cached, false);
  assert.equal(rb.cached, false);
  await a.flush();
  await b.flush(); // b saves last: without a merge, tab a's entry would be gone
  await a.executeCommand('true', 'p-other'); // a saves again after b: b's entry must survive too
  await a.flush();
  // a reload (a new instance on the same image): both tabs' results are local hits
  const f = countingFetch();
  const c = await connect({ cacheName: 'two-tabs', broadcast: false, fetch: f });
  const sent = f.calls;
  const ha = await c.executeCommand('echo tab-a', 'p-tab-a');
  const hb = await c.executeCommand('echo tab-b', 'p-tab-b');
  assert.equal(ha.cached, true);
  assert.equal(hb.cached, true);
  assert.equal(ha.stdout, 'tab-a\n');
  assert.equal(hb.stdout, 'tab-b\n');
  assert.equal(f.calls, sent, 'both answered from the merged local cache');
});
