// The wasm client as a package: it loads as an ES module in Node 20, connects offline when
// the worker is unreachable, turns failures into CodeCanvasError with protocol codes, and
// rejects invalid input locally without sending anything.  No worker needed.
import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const webDir = process.env.CC_WEB_DIR;
const mod = await import(pathToFileURL(join(webDir, 'codecanvas.js')));
const { CodeCanvas, CodeCanvasError } = mod;

// A port on 127.0.0.1 with nothing listening.
async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

function countingFetch() {
  const f = (...a) => { f.calls++; return fetch(...a); };
  f.calls = 0;
  return f;
}

test('exports the API and the raw factory', () => {
  assert.equal(typeof CodeCanvas.connect, 'function');
  assert.equal(typeof mod.default, 'function');
  assert.ok(new CodeCanvasError({ code: 'timeout', message: 'x' }) instanceof Error);
});

test('unreachable worker: connect works offline, calls fail with upstream_error', async () => {
  const before = process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection');
  const c = await CodeCanvas.connect({ workerUrl: `http://127.0.0.1:${await closedPort()}`, token: 't', cacheName: 'load-1' });
  assert.equal(c.online, false);
  assert.equal(c.persistent, true);
  await assert.rejects(c.executeCommand('ls', 'p1'), (e) =>
    e instanceof CodeCanvasError && e.code === 'upstream_error' && e.retryable === true);
  // Nothing cached yet: an offline read has nothing to fall back on.
  await assert.rejects(c.getProjectInfo('p1'), { code: 'upstream_error' });
  await c.close();
  // -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0: no process-wide handlers left behind.
  assert.equal(process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection'), before);
});

test('invalid input is rejected locally with its reason, and nothing is sent', async () => {
  const f = countingFetch();
  const c = await CodeCanvas.connect({ workerUrl: `http://127.0.0.1:${await closedPort()}`, token: 't', fetch: f, persist: false });
  const sent = f.calls; // the hello of connect
  await assert.rejects(c.executeCommand('ls', 'bad project!'), { code: 'bad_request', reason: 'bad_project' });
  await assert.rejects(c.readFile('../../etc/passwd', 'p1'), { code: 'bad_request', reason: 'bad_path' });
  await assert.rejects(c.executeCommand('', 'p1'), { code: 'bad_request' });
  assert.equal(f.calls, sent);
  await c.close();
  await assert.rejects(c.getProjectInfo('p1'), { code: 'bad_request' });
});

test('an aborted signal ends the call with code canceled', async () => {
  const c = await CodeCanvas.connect({ workerUrl: `http://127.0.0.1:${await closedPort()}`, token: 't', persist: false });
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(c.executeCommand('sleep 5', 'p1', { signal: ac.signal }), { code: 'canceled' });
  await c.close();
});

test('a worker that accepts but never answers: calls end with code timeout', async () => {
  const held = [];
  const srv = net.createServer((s) => held.push(s)); // accepts, reads nothing, answers nothing
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const c = await CodeCanvas.connect({ workerUrl: `http://127.0.0.1:${srv.address().port}`, token: 't',
      persist: false, requestTimeoutMs: 300 });
    assert.equal(c.online, false); // hello timed out: the client starts offline
    await assert.rejects(c.getProjectInfo('p1'), (e) => e instanceof CodeCanvasError && e.code === 'timeout' && e.retryable);
    await c.close();
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => srv.close(r));
  }
});
