// codecanvas-worker without sandboxes: CLI tokens, auth, hello, health, metrics, CORS,
// static files, the bad-input catalogue and graceful shutdown.  Real worker process, real
// SQLite file, real HTTP over 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { startWorker, checkDatabase, dumpDatabase } from '../lib/worker.mjs';

let wk, webDir, clientDir, tokA, tokB;

before(async () => {
  webDir = mkdtempSync(join(tmpdir(), 'cc-web-'));
  clientDir = mkdtempSync(join(tmpdir(), 'cc-client-'));
  writeFileSync(join(webDir, 'index.html'), '<!doctype html><title>page</title>');
  writeFileSync(join(webDir, 'app.mjs'), 'export const x = 1;');
  writeFileSync(join(webDir, 'style.css'), 'body{}');
  mkdirSync(join(webDir, 'sub'));
  writeFileSync(join(webDir, 'sub', 'index.html'), 'sub index');
  writeFileSync(join(clientDir, 'codecanvas.js'), 'export default 1;');
  writeFileSync(join(clientDir, 'codecanvas.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  writeFileSync(join(tmpdir(), 'cc-secret-outside.txt'), 'outside');
  wk = await startWorker({
    args: ['--web', webDir, '--web', `/client/=${clientDir}`, '--web', clientDir,
           '--cors-origins', 'http://allowed.example, http://other.example',
           '--rate-limit', '0'],
  });
  tokA = wk.token('alice');
  tokB = wk.token('bob');
});

after(async () => {
  await wk?.stop();
  rmSync(webDir, { recursive: true, force: true });
  rmSync(clientDir, { recursive: true, force: true });
});

async function healthy() {
  const r = await fetch(`${wk.url}/healthz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { ok: true });
}

test('token create prints a token that authenticates; only its hash is stored', async () => {
  assert.match(tokA, /^cct_[A-Za-z0-9_-]{43}$/);
  const r = await wk.rpc(tokA, { op: 'hello' });
  assert.equal(r.status, 200);
  assert.equal(r.body.ok, true);
  assert.equal(r.body.result.server, 'codecanvas-worker');
  assert.equal(r.body.result.protocol, 1);
  assert.equal(r.body.result.user, 'alice');
  assert.equal(typeof r.body.result.limits.maxBodyBytes, 'number');
  const list = JSON.parse(wk.cli('token', 'list', '--user', 'alice'));
  assert.equal(list.length, 1);
  assert.ok(!JSON.stringify(list).includes(tokA), 'token list must not show the token');
  const dump = dumpDatabase(wk.db);
  assert.ok(!dump.includes(tokA), 'the token itself must not be stored');
});

test('missing, malformed and unknown tokens get 401 unauthorized', async () => {
  for (const headers of [{}, { Authorization: 'Basic abc' }, { Authorization: 'Bearer cct_nope' }]) {
    const res = await fetch(`${wk.url}/v1/rpc`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ v: 1, id: 'x', op: 'hello' }),
    });
    assert.equal(res.status, 401);
    const body = await res.json();
    assert.equal(body.ok, false);
    assert.equal(body.error.code, 'unauthorized');
  }
  await healthy();
});

test('a revoked token gets 401 while other tokens keep working', async () => {
  const tok = wk.token('carol', 'laptop');
  assert.equal((await wk.rpc(tok, { op: 'hello' })).status, 200);
  const [entry] = JSON.parse(wk.cli('token', 'list', '--user', 'carol'));
  wk.cli('token', 'revoke', '--user', 'carol', '--id', String(entry.id));
  const r = await wk.rpc(tok, { op: 'hello' });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'unauthorized');
  assert.equal((await wk.rpc(tokA, { op: 'hello' })).status, 200);
});

test('one keep-alive connection carrying several users\' tokens: each request is its own token\'s', async () => {
  // The worker remembers a connection's last token and its hash (a proxy may carry several
  // users' requests on one connection): every request must still be its own token's user,
  // and a wrong or revoked token must be refused on that same connection.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const hello = (auth) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ v: 1, id: 'k', op: 'hello' });
      const req = http.request(
        { host: '127.0.0.1', port: new URL(wk.url).port, path: '/v1/rpc', method: 'POST', agent,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: auth } },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const b = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve({ status: res.statusCode, user: b.result?.user ?? b.error?.code, reused: req.reusedSocket });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const carol = wk.token('carol2', 'shared-connection');
  const wrong = tokA.slice(0, -1) + (tokA.endsWith('A') ? 'B' : 'A');
  const steps = [
    [`Bearer ${tokA}`, 200, 'alice'],
    [`Bearer ${tokB}`, 200, 'bob'],
    [`Bearer ${tokA}`, 200, 'alice'],
    [`Bearer ${wrong}`, 401, 'unauthorized'], // differs from the remembered one in its last byte
    [`Bearer ${tokA}  `, 200, 'alice'],        // trailing spaces are trimmed
    [`Bearer ${tokA}x`, 401, 'unauthorized'], // the remembered token plus a byte
    [`Bearer ${tokA.slice(0, -1)}`, 401, 'unauthorized'], // ... minus one
    [`Bearer ${carol}`, 200, 'carol2'],
  ];
  try {
    let n = 0;
    for (const [auth, status, user] of steps) {
      const r = await hello(auth);
      assert.deepEqual([r.status, r.user], [status, user], `request ${n}: ${auth.slice(0, 12)}...`);
      if (n++ > 0) assert.equal(r.reused, true, 'every request after the first rides the same connection');
    }
    const [entry] = JSON.parse(wk.cli('token', 'list', '--user', 'carol2'));
    wk.cli('token', 'revoke', '--user', 'carol2', '--id', String(entry.id));
    const revoked = await hello(`Bearer ${carol}`);
    assert.deepEqual([revoked.status, revoked.user, revoked.reused], [401, 'unauthorized', true]);
    const after = await hello(`Bearer ${tokB}`);
    assert.deepEqual([after.status, after.user, after.reused], [200, 'bob', true]);
  } finally {
    agent.destroy();
  }
});

test('updateProject then getProject; listProjects; user B sees none of it', async () => {
  const up = await wk.rpc(tokA, { op: 'updateProject', project: 'alpha', args: { patch: { name: 'Alpha', settings: { theme: 'dark', n: 1 } } } });
  assert.equal(up.status, 200, up.text);
  assert.equal(up.body.result.name, 'Alpha');
  const up2 = await wk.rpc(tokA, { op: 'updateProject', project: 'alpha', args: { patch: { settings: { n: null, lang: 'js' } } } });
  assert.deepEqual(up2.body.result.settings, { theme: 'dark', lang: 'js' });
  const get = await wk.rpc(tokA, { op: 'getProject', project: 'alpha' });
  assert.equal(get.body.result.projectId, 'alpha');
  assert.equal(get.body.result.name, 'Alpha');
  assert.deepEqual(get.body.result.settings, { theme: 'dark', lang: 'js' });
  assert.equal(typeof get.body.generation, 'number');
  const list = await wk.rpc(tokA, { op: 'listProjects' });
  assert.deepEqual(list.body.result.projects.map((p) => p.projectId), ['alpha']);

  for (const op of ['getProject', 'getHistory', 'clearCache', 'deleteProject', 'readFile', 'listDir', 'listProcesses']) {
    const args = op === 'readFile' ? { path: 'a.txt' } : {};
    const r = await wk.rpc(tokB, { op, project: 'alpha', args });
    assert.equal(r.status, 404, `${op}: ${r.text}`);
    assert.equal(r.body.error.code, 'not_found', op);
  }
  const lb = await wk.rpc(tokB, { op: 'listProjects' });
  assert.deepEqual(lb.body.result.projects, []);
  const ga = await wk.rpc(tokA, { op: 'getProject', project: 'alpha' });
  assert.equal(ga.body.result.name, 'Alpha', 'A still has the project');
});

test('bad input catalogue: each class its code, and the worker keeps serving', async () => {
  const cases = [
    { name: 'not JSON', body: '{nope', status: 400, code: 'bad_request' },
    { name: 'wrong type', body: JSON.stringify({ v: 1, id: 'x', op: 'exec', project: 'p', args: { cmd: 42 } }), status: 400, code: 'bad_request' },
    { name: 'missing field', body: JSON.stringify({ v: 1, id: 'x', op: 'exec', project: 'p', args: {} }), status: 400, code: 'bad_request' },
    { name: 'deep nesting', body: '{"v":1,"id":"x","op":"hello","args":' + '['.repeat(5000) + ']'.repeat(5000) + '}', status: 400, code: 'bad_request' },
    { name: 'bad projectId', body: JSON.stringify({ v: 1, id: 'x', op: 'getProject', project: '../etc' }), status: 400, code: 'bad_request' },
    { name: 'path escape', body: JSON.stringify({ v: 1, id: 'x', op: 'writeFile', project: 'p', args: { path: '../../etc/passwd', content: 'x' } }), status: 400, code: 'bad_request' },
    { name: 'absolute path outside home', body: JSON.stringify({ v: 1, id: 'x', op: 'readFile', project: 'p', args: { path: '/etc/shadow' } }), status: 400, code: 'bad_request' },
    { name: 'unknown op', body: JSON.stringify({ v: 1, id: 'x', op: 'formatDisk', project: 'p' }), status: 400, code: 'bad_request' },
    { name: 'wrong version', body: JSON.stringify({ v: 2, id: 'x', op: 'hello' }), status: 400, code: 'bad_request' },
  ];
  for (const c of cases) {
    const r = await wk.rpc(tokA, c.body);
    assert.equal(r.status, c.status, `${c.name}: ${r.text}`);
    assert.equal(r.body.ok, false, c.name);
    assert.equal(r.body.error.code, c.code, c.name);
    await healthy();
  }
  // 10 MB body: too_large (413), refused from Content-Length before it is read; the worker
  // drains the rest (lingering close), so fetch reads the answer (worker_limits has the rest).
  const big = 'x'.repeat(10 * 1024 * 1024);
  const r = await fetch(`${wk.url}/v1/rpc`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokA}` },
    body: JSON.stringify({ v: 1, id: 'big', op: 'writeFile', project: 'p', args: { path: 'a', content: big } }),
  });
  assert.equal(r.status, 413);
  assert.equal((await r.json()).error.code, 'too_large');
  await healthy();
  assert.equal((await wk.rpc(tokA, { op: 'hello' })).status, 200);
  const m = await (await fetch(`${wk.url}/metrics`)).text();
  assert.match(m, /codecanvas_requests_total\{op="other",code="bad_request"\} \d+/);
});

test('per-user rate limit: 429 rate_limited beyond the burst, other users unaffected', async () => {
  const w2 = await startWorker({ args: ['--rate-limit', '1', '--rate-limit-burst', '3'] });
  try {
    const t1 = w2.token('u1');
    const t2 = w2.token('u2');
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await w2.rpc(t1, { op: 'hello' })).status);
    assert.deepEqual(codes.slice(0, 3), [200, 200, 200]);
    assert.ok(codes.slice(3).includes(429), `codes ${codes}`);
    const r = await w2.rpc(t1, { op: 'hello' });
    if (r.status === 429) {
      assert.equal(r.body.error.code, 'rate_limited');
      assert.equal(r.body.error.retryable, true);
    }
    assert.equal((await w2.rpc(t2, { op: 'hello' })).status, 200);
    assert.equal((await fetch(`${w2.url}/healthz`)).status, 200);
  } finally {
    await w2.stop();
  }
});

test('CORS: allowed origins get headers and preflight 204, others do not', async () => {
  const pre = await fetch(`${wk.url}/v1/rpc`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://allowed.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'http://allowed.example');
  assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  const bad = await fetch(`${wk.url}/v1/rpc`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(bad.status, 403);
  assert.equal(bad.headers.get('access-control-allow-origin'), null);
  const r = await wk.rpc(tokA, { op: 'hello' }, { headers: { Origin: 'http://other.example' } });
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://other.example');
  const r2 = await wk.rpc(tokA, { op: 'hello' }, { headers: { Origin: 'http://evil.example' } });
  assert.equal(r2.headers.get('access-control-allow-origin'), null);
});

test('static files: page and wasm client with the right types, no escapes', async () => {
  const get = async (p) => {
    const r = await fetch(`${wk.url}${p}`);
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  };
  let r = await get('/');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/html/);
  assert.match(r.text, /<title>page/);
  assert.match((await get('/app.mjs')).type, /^text\/javascript/);
  assert.match((await get('/style.css')).type, /^text\/css/);
  assert.equal((await get('/sub/')).text, 'sub index');
  r = await get('/client/codecanvas.js');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/javascript/);
  assert.equal((await get('/client/codecanvas.wasm')).type, 'application/wasm');
  assert.equal((await get('/codecanvas.wasm')).type, 'application/wasm', 'second root at /');
  for (const p of ['/../cc-secret-outside.txt', '/%2e%2e/cc-secret-outside.txt', '/client/../../etc/passwd', '/nope.js']) {
    const x = await get(p);
    assert.equal(x.status, 404, p);
    assert.ok(!x.text.includes('outside') && !x.text.includes('root:'), p);
  }
});

test('metrics: Prometheus text with requests by op and code, in-flight, latency histogram', async () => {
  const r = await fetch(`${wk.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  const t = await r.text();
  assert.match(t, /# TYPE codecanvas_requests_total counter/);
  assert.match(t, /codecanvas_requests_total\{op="hello",code="ok"\} \d+/);
  assert.match(t, /codecanvas_requests_total\{op="other",code="unauthorized"\} \d+/);
  assert.match(t, /codecanvas_requests_in_flight \d+/);
  assert.match(t, /codecanvas_request_duration_seconds_bucket\{le="\+Inf"\} \d+/);
  assert.match(t, /codecanvas_cache_hits_total \d+/);
  assert.match(t, /codecanvas_sandboxes_created_total \d+/);
});

/* The access log's JSON lines in `text`. */
const logRecords = (text) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

/* Polls `get` until it returns something truthy, for at most ms. */
async function eventually(get, ms, what) {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
    const v = get();
    if (v) return v;
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
  }
}

test('access log: one JSON object per request, with the user but never the token', async () => {
  // Lines are buffered for at most access_log_flush_ms (1 s by default).
  const hello = await eventually(
    () => logRecords(wk.stderr).find((x) => x.op === 'hello' && x.user === 'alice'), 5000,
    'a hello of alice is logged');
  // the earlier tests' requests too (a later flush may carry them)
  await eventually(() => logRecords(wk.stderr).length > 10, 5000, 'the earlier requests are logged');
  assert.equal(hello.status, 200);
  assert.equal(typeof hello.durationMs, 'number');
  for (const t of [tokA, tokB]) assert.ok(!wk.stderr.includes(t), 'the token is never logged');
});

test('access log buffering: a line is written within access_log_flush_ms, every line by SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-alog-'));
  const file = join(dir, 'access.log');
  const w2 = await startWorker({ args: ['--access-log', file, '--access-log-flush', '300', '--rate-limit', '0'] });
  try {
    const t = w2.token('erin');
    assert.equal((await w2.rpc(t, { op: 'hello' })).status, 200);
    const read = () => (existsSync(file) ? logRecords(readFileSync(file, 'utf8')) : []);
    // Written by the flush timer (300 ms), not held until the 64 KiB buffer fills (a few
    // hundred bytes would never fill it): the line arrives while the worker idles.
    await eventually(() => read().some((x) => x.op === 'hello' && x.user === 'erin'), 5000,
      'the hello line reaches the file');
    // 300 requests in quick succession, then SIGTERM at once: not one line is lost.
    const N = 300;
    for (let i = 0; i < N; i += 50)
      await Promise.all(Array.from({ length: 50 }, (_, k) =>
        w2.rpc(t, { op: 'hello', id: `h${i + k}` })));
    const { code } = await w2.stop({ keep: true });
    assert.equal(code, 0);
    const ids = new Set(read().filter((x) => x.op === 'hello').map((x) => x.id));
    for (let i = 0; i < N; i++) assert.ok(ids.has(`h${i}`), `line of request h${i}`);
    // whole lines only: every line parsed above, and the file ends with a newline
    assert.ok(readFileSync(file, 'utf8').endsWith('}\n'));
  } finally {
    w2.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM: graceful exit with status 0, the database stays consistent', async () => {
  const w2 = await startWorker({});
  const t = w2.token('dave');
  await w2.rpc(t, { op: 'updateProject', project: 'x', args: { patch: { name: 'X' } } });
  const { code } = await w2.stop({ keep: true });
  assert.equal(code, 0);
  assert.match(w2.stderr, /SIGTERM received, shutting down/);
  const ok = checkDatabase(w2.db);
  assert.equal(ok, 'ok');
  w2.cleanup();
});

test('settings: config file < environment < flags; unknown keys refused; --help lists every flag', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-conf-'));
  const conf = join(dir, 'worker.conf');
  writeFileSync(conf, [
    '# a comment',
    'history_limit = 10',
    'cache_ttl_s = 77',
    'cors_origins = http://cfg.example',
    'max_output_bytes = 1234',
    'e2b_api_key = e2b_fromconfigfile_secret',
    '',
  ].join('\n'));
  const w2 = await startWorker({
    args: ['--config', conf, '--history-limit', '20'],
    env: { CODECANVAS_CACHE_TTL: '88' },
  });
  try {
    const t = w2.token('eve');
    const h = await w2.rpc(t, { op: 'hello' }, { headers: { Origin: 'http://cfg.example' } });
    assert.equal(h.body.result.limits.historyLimit, 20, 'flag beats config');
    assert.equal(h.body.result.limits.cacheTtlMs, 88000, 'env beats config');
    assert.equal(h.body.result.limits.maxOutputBytes, 1234, 'config beats default');
    assert.equal(h.headers.get('access-control-allow-origin'), 'http://cfg.example');
    assert.ok(!h.text.includes('fromconfigfile'));
  } finally {
    await w2.stop();
  }
  assert.ok(!w2.stderr.includes('fromconfigfile'), 'the key from the config file is never printed');
  writeFileSync(conf, 'no_such_setting = 1\n');
  const bin = join(process.env.CC_BIN_DIR, 'codecanvas-worker');
  let err = null;
  try {
    execFileSync(bin, ['serve', '--config', conf, '--db', join(dir, 'x.db')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'an unknown config key stops the worker');
  assert.equal(err.status, 2);
  assert.match(err.stderr, /unknown key no_such_setting/);
  const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
  for (const flag of ['--listen', '--db', '--config', '--web', '--e2b-api-key-file', '--e2b-api-url', '--e2b-domain',
    '--e2b-sandbox-url', '--e2b-template', '--sandbox-timeout', '--cors-origins', '--access-log', '--rate-limit',
    '--max-body-bytes', '--max-inflight-per-user', '--command-timeout', '--shutdown-grace'])
    assert.ok(help.includes(flag), `--help mentions ${flag}`);
  assert.match(help, /E2B_API_KEY/);
  rmSync(dir, { recursive: true, force: true });
});
