// codecanvas-worker: what a user sees when the sandbox side refuses or fails (docs/protocol.md,
// "Upstream errors").  Against a real codecanvas-sandboxd: a path the sandbox user may not
// read or write (a symlink to /etc/shadow, a mode-000 file, a read-only file, a locked
// directory) is `forbidden`, not retryable, with a message naming the path, and the record
// says so; a missing path is not_found, a directory read as a file bad_request, a full disk
// too_large.  Against a real small HTTP server standing in for E2B: our credentials refused,
// E2B rate limiting, E2B unreachable; each through the whole worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';
import { upstreamServer } from '../lib/upstream.mjs';

let sd;
let wk;
let tok;

before(async () => {
  // An 8 MiB home, so that a disk can be filled quickly.
  sd = await startSandboxd({ args: ['--no-internet', '--disk-mb', '8'] });
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  tok = wk.token('alice');
  const r = await wk.rpc(tok, {
    op: 'exec',
    project: 'p',
    args: { cmd: 'ln -s /etc/shadow shadow && echo s > secret && chmod 000 secret && echo r > ro && chmod 444 ro && mkdir d locked && chmod 000 locked && test ! -r /etc/shadow' },
  });
  assert.equal(r.body?.result?.exitCode, 0, `setup: ${r.text}`);
});

after(async () => {
  await wk?.stop();
  await sd?.stop();
});

/* Sends msg; asserts the error code, HTTP status, retryable flag and message; returns the error. */
async function expectError(msg, code, http, message) {
  const r = await wk.rpc(tok, msg);
  assert.equal(r.status, http, `${JSON.stringify(msg).slice(0, 120)}: ${r.text}`);
  assert.equal(r.body.ok, false);
  assert.equal(r.body.error.code, code, r.text);
  assert.equal(r.body.error.retryable, ['rate_limited', 'timeout', 'sandbox_unavailable', 'upstream_error'].includes(code), r.text);
  if (message) assert.match(r.body.error.message, message, r.text);
  return r.body.error;
}

test('a path the sandbox user may not read or write is forbidden, names the path, is not retryable', async () => {
  // The case: a symlink in the project pointing to /etc/shadow (HTTP 403 from envd).
  const e = await expectError({ op: 'readFile', project: 'p', args: { path: 'shadow' } }, 'forbidden', 403,
    /reading \/home\/user\/shadow: .*[Pp]ermission denied/);
  // The record of the failed operation says the same.
  const rec = await wk.rpc(tok, { op: 'getResult', args: { executionId: e.executionId } });
  assert.equal(rec.body.result.status, 'error');
  assert.equal(rec.body.result.error.code, 'forbidden');
  assert.match(rec.body.result.error.message, /\/home\/user\/shadow/);

  await expectError({ op: 'readFile', project: 'p', args: { path: 'secret' } }, 'forbidden', 403, /\/home\/user\/secret/);
  // Connect RPC (permission_denied) and a process start in a directory it may not enter.
  await expectError({ op: 'listDir', project: 'p', args: { path: 'locked' } }, 'forbidden', 403, /listing \/home\/user\/locked: /);
  await expectError({ op: 'exec', project: 'p', args: { cmd: 'pwd', cwd: 'locked', useCache: false } }, 'forbidden', 403);
  // setupProject names the file that failed (here a directory where a file should go).
  await expectError({ op: 'setupProject', project: 'p', args: { files: [{ path: 'ok.txt', content: '1' }, { path: 'd', content: '2' }] } },
    'bad_request', 400, /\/home\/user\/d\b/);
});

test('writes have root\'s rights, as E2B\'s envd gives them: a read-only file and a locked directory are written, and become the user\'s', async () => {
  const setup = await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: 'mkdir w && cd w && echo r > ro && chmod 444 ro && mkdir locked && chmod 000 locked', useCache: false } });
  assert.equal(setup.body?.result?.exitCode, 0, setup.text);
  for (const path of ['w/ro', 'w/locked/new.txt']) {
    const r = await wk.rpc(tok, { op: 'writeFile', project: 'p', args: { path, content: 'x' } });
    assert.equal(r.status, 200, r.text);
  }
  const r = await wk.rpc(tok, { op: 'exec', project: 'p', args: { cmd: 'cd w && sudo stat -c "%n %U %a" ro locked/new.txt && cat ro', useCache: false } });
  assert.equal(r.body.result.stdout, 'ro user 444\nlocked/new.txt user 644\nx');
});

test("the user's own mistakes: missing paths, a directory read as a file, a missing cwd", async () => {
  await expectError({ op: 'readFile', project: 'p', args: { path: 'missing.txt' } }, 'not_found', 404,
    /reading \/home\/user\/missing\.txt: .*does not exist/);
  await expectError({ op: 'listDir', project: 'p', args: { path: 'nowhere' } }, 'not_found', 404, /\/home\/user\/nowhere/);
  await expectError({ op: 'readFile', project: 'p', args: { path: 'd' } }, 'bad_request', 400, /\/home\/user\/d.*directory/);
  await expectError({ op: 'exec', project: 'p', args: { cmd: 'pwd', cwd: 'nowhere', useCache: false } }, 'bad_request', 400,
    /\/home\/user\/nowhere/);
  // The sandbox was fine all along: it was not re-created.
  const r = await wk.rpc(tok, { op: 'readFile', project: 'p', args: { path: 'ro' } });
  assert.equal(r.body.result.content, 'r\n');
  assert.equal(r.body.result.sandboxRecreated, undefined);
});

test('a full disk in the sandbox is too_large (HTTP 507 from envd), naming the file', async () => {
  const fill = await wk.rpc(tok, { op: 'exec', project: 'full', args: { cmd: 'head -c 20000000 /dev/zero > fill' } });
  assert.equal(fill.status, 200, fill.text);
  assert.notEqual(fill.body.result.exitCode, 0, 'the 8 MiB home cannot take 20 MB');
  await expectError({ op: 'writeFile', project: 'full', args: { path: 'more.bin', content: 'x'.repeat(1 << 20) } },
    'too_large', 413, /writing \/home\/user\/more\.bin: .*disk space/);
});

test('E2B refusing our key, rate limiting us, unreachable: upstream_error, rate_limited, sandbox_unavailable', async () => {
  const up = await upstreamServer(http);
  const cases = [
    // the control plane refuses the worker's own credentials: never the user's "unauthorized"
    { api: 's401-json', sbx: 'ok', code: 'upstream_error', http: 502, message: /HTTP 401/ },
    { api: 's429-json', sbx: 'ok', code: 'rate_limited', http: 429 },
    { api: 's503-json', sbx: 'ok', code: 'sandbox_unavailable', http: 503 },
    // the sandbox is created, then envd answers a status about the user's path
    { api: 'ok', sbx: 's403-json', code: 'forbidden', http: 403, message: /writing \/home\/user\/f\.txt: / },
    { api: 'ok', sbx: 's500-json', code: 'upstream_error', http: 502 },
  ];
  try {
    for (const c of cases) {
      const w = await startWorker({
        args: ['--rate-limit', '0'],
        env: { E2B_API_URL: `${up.url}/${c.api}`, E2B_SANDBOX_URL: `${up.url}/${c.sbx}`, E2B_API_KEY: 'e2b_upstream_test' },
      });
      try {
        const r = await w.rpc(w.token('bob'), { op: 'writeFile', project: 'p', args: { path: 'f.txt', content: 'x' } });
        assert.equal(r.status, c.http, `${c.api}/${c.sbx}: ${r.text}`);
        assert.equal(r.body.error.code, c.code, r.text);
        assert.equal(r.body.error.retryable, c.code !== 'forbidden', r.text);
        if (c.message) assert.match(r.body.error.message, c.message, r.text);
        assert.ok(!r.text.includes('e2b_upstream_test'), 'the API key never reaches the user');
      } finally {
        await w.stop();
      }
    }
    // Nobody listening at all.
    const gone = up.url;
    await up.close();
    const w = await startWorker({ args: ['--rate-limit', '0'], env: { E2B_API_URL: gone, E2B_SANDBOX_URL: gone } });
    try {
      const r = await w.rpc(w.token('bob'), { op: 'exec', project: 'p', args: { cmd: 'true' } });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.error.code, 'sandbox_unavailable');
      assert.equal(r.body.error.retryable, true);
    } finally {
      await w.stop();
    }
  } finally {
    await up.close();
  }
});
