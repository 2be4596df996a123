// Every row of the upstream status mapping (docs/protocol.md, "Upstream errors"), each one
// answered by a real HTTP server: the native E2B client (native/e2b/, through
// tests/e2e/e2b_status_test.c, exactly as the worker calls it) must turn each E2B control-plane
// or envd answer, and each transport failure (refused, no connection in time, no answer in
// time, cut mid-answer, TLS), into the protocol code the table promises.  The worker's side of
// the same table (messages that name the path, retryable) is in worker_errors.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upstreamServer } from '../lib/upstream.mjs';

let up; // the HTTP upstream (scenario in the first path segment)
let tls; // the same upstream over TLS with a self-signed certificate
let dir;

before(async () => {
  up = await upstreamServer(http);
  dir = mkdtempSync(join(tmpdir(), 'cc-e2b-status-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  tls = await upstreamServer(https, { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
});

after(async () => {
  await up?.close();
  await tls?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/* Runs the rows through one e2b_status_test process; returns one {code, http, gone, message}
 * per row. */
function runRows(rows) {
  return new Promise((resolve, reject) => {
    const child = spawn(join(process.env.CC_BIN_DIR, 'e2b_status_test'), [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`e2b_status_test exited ${code}\n${err}`));
      const lines = out.split('\n').filter(Boolean);
      if (lines.length !== rows.length) return reject(new Error(`${lines.length} results for ${rows.length} rows\n${out}\n${err}`));
      resolve(lines.map((l) => {
        const [code, httpStatus, gone, ...msg] = l.split(' ');
        return { code, http: Number(httpStatus), gone: gone === '1', message: msg.join(' ') };
      }));
    });
    for (const r of rows) child.stdin.write(`${r.call} ${r.api} ${r.sbx} ${r.connectMs ?? 2000} ${r.requestMs ?? 3000}\n`);
    child.stdin.end();
  });
}

/* A row against the control plane (api) or envd (sbx) answering `scenario` (see upstream.mjs). */
const api = (call, scenario, code, extra = {}) => ({ call, api: `${up.url}/${scenario}`, sbx: `${up.url}/ok`, code, ...extra });
const envd = (call, scenario, code, extra = {}) => ({ call, api: `${up.url}/ok`, sbx: `${up.url}/${scenario}`, code, ...extra });

async function check(rows) {
  const got = await runRows(rows);
  const bad = [];
  rows.forEach((r, i) => {
    const g = got[i];
    const name = `${r.call} ${r.name ?? (r.api.includes('/ok') ? r.sbx : r.api).replace(/^.*\/\/[^/]+/, '')}`;
    if (g.code !== r.code) bad.push(`${name}: ${g.code} (${g.message}), want ${r.code}`);
    if ((r.gone ?? false) !== g.gone) bad.push(`${name}: sandbox_gone ${g.gone}, want ${r.gone ?? false}`);
    if (r.status !== undefined && g.http !== r.status) bad.push(`${name}: HTTP ${g.http} in the error, want ${r.status}`);
    if (r.message && !r.message.test(g.message)) bad.push(`${name}: message "${g.message}" does not match ${r.message}`);
    if (g.message.includes('e2b_status_test_key') || g.message.includes('envd-token')) bad.push(`${name}: a secret in "${g.message}"`);
  });
  assert.deepEqual(bad, []);
}

test('control plane (E2B API): every status maps as the table says', async () => {
  await check([
    api('create', 's400-json', 'upstream_error', { status: 400 }), // our own request refused
    api('create', 's401-json', 'upstream_error', { status: 401 }), // our API key
    api('create', 's403-json', 'upstream_error', { status: 403 }),
    api('create', 's404-json', 'upstream_error', { status: 404 }), // unknown template: configuration
    api('connect', 's404-json', 'not_found', { gone: true }), // the sandbox is gone: re-create
    api('kill', 's404-json', 'not_found', { gone: true }),
    api('info', 's404-json', 'not_found', { gone: true }),
    api('timeout', 's404-json', 'not_found', { gone: true }),
    api('connect', 's409-json', 'sandbox_unavailable'), // a sandbox in transition
    api('create', 's413-json', 'too_large'),
    api('create', 's429-json', 'rate_limited', { message: /HTTP 429/ }),
    api('create', 's500-json', 'upstream_error'),
    api('create', 's500-empty', 'upstream_error'),
    api('create', 's502-text', 'sandbox_unavailable'),
    api('create', 's503-json', 'sandbox_unavailable'),
    api('create', 's504-text', 'timeout'),
    api('create', 's507-json', 'too_large'),
    api('create', 's418-text', 'upstream_error', { message: /teapot/ }),
  ]);
});

test('envd: /files, unary RPCs and process streams map as the table says', async () => {
  await check([
    // GET /files (readFile): numeric codes, the status decides
    envd('read', 's400-json', 'bad_request'), // a directory, a bad path
    envd('read', 's401-json', 'upstream_error'), // our envd token or user
    envd('read', 's403-json', 'forbidden', { message: /\/home\/user\/link.*permission denied/ }),
    envd('read', 's404-json', 'not_found', { gone: false }), // the user's file
    envd('read', 's404-text', 'upstream_error'), // no such endpoint (not envd's JSON)
    envd('read', 's409-json', 'conflict'),
    envd('read', 's413-json', 'too_large'),
    envd('read', 's429-json', 'rate_limited'),
    envd('read', 's500-json', 'upstream_error'),
    envd('read', 's500-perm', 'forbidden'), // envd's own "permission denied" as a 500
    envd('read', 's502-gone', 'not_found', { gone: true }), // the proxy: sandbox not found
    envd('read', 's502-port', 'sandbox_unavailable'), // the proxy: envd not reachable
    envd('read', 's503-json', 'sandbox_unavailable'),
    envd('read', 's504-text', 'timeout'),
    // POST /files (writeFile)
    envd('write', 's403-json', 'forbidden'),
    envd('write', 's507-json', 'too_large', { message: /not enough disk space/ }), // disk full
    envd('write', 's413-json', 'too_large'),
    // Connect unary RPCs: the string code decides
    envd('list', 's403-connect-permission_denied', 'forbidden'),
    envd('list', 's404-connect-not_found', 'not_found', { gone: false }),
    envd('stat', 's400-connect-invalid_argument', 'bad_request'),
    envd('stat', 's400-connect-failed_precondition', 'bad_request'),
    envd('list', 's409-connect-already_exists', 'conflict'),
    envd('list', 's401-connect-unauthenticated', 'upstream_error'),
    envd('list', 's429-connect-resource_exhausted', 'too_large'),
    envd('list', 's500-connect-internal', 'upstream_error'),
    envd('list', 's501-connect-unimplemented', 'upstream_error'),
    envd('list', 's503-connect-unavailable', 'sandbox_unavailable'),
    envd('list', 's504-connect-deadline_exceeded', 'timeout'),
    envd('signal', 's404-connect-not_found', 'not_found', { gone: false }), // no such process
    // process.Process/Start: an HTTP error before the stream, or an end-of-stream error
    envd('exec', 's401-connect-unauthenticated', 'upstream_error'),
    envd('exec', 's502-gone', 'not_found', { gone: true }),
    envd('exec', 's503-json', 'sandbox_unavailable'),
    envd('exec', 'eos-permission_denied', 'forbidden'),
    envd('exec', 'eos-invalid_argument', 'bad_request'),
    envd('exec', 'eos-not_found', 'not_found'),
    envd('exec', 'eos-deadline_exceeded', 'timeout'),
    envd('exec', 'eos-unavailable', 'sandbox_unavailable'),
  ]);
});

test('transport failures: refused, no connection in time, no answer in time, cut short, TLS', async () => {
  const plainAsTls = up.url.replace('http://', 'https://');
  await check([
    { call: 'create', api: '@refused', sbx: '@refused', code: 'sandbox_unavailable', name: 'refused' },
    { call: 'read', api: '@refused', sbx: '@refused', code: 'sandbox_unavailable', name: 'refused' },
    { call: 'exec', api: '@refused', sbx: '@refused', code: 'sandbox_unavailable', name: 'refused' },
    // A listener whose accept queue is full never completes the handshake: connect timeout.
    { call: 'create', api: '@backlog', sbx: '@backlog', code: 'sandbox_unavailable', connectMs: 300, name: 'connect timeout' },
    { call: 'read', api: '@backlog', sbx: '@backlog', code: 'sandbox_unavailable', connectMs: 300, name: 'connect timeout' },
    { call: 'exec', api: '@backlog', sbx: '@backlog', code: 'sandbox_unavailable', connectMs: 300, name: 'connect timeout' },
    // Connected, request sent, no answer: timeout.
    api('create', 'hang', 'timeout', { requestMs: 400 }),
    envd('read', 'hang', 'timeout', { requestMs: 400 }),
    envd('exec', 'hang', 'timeout', { requestMs: 400 }), // no start event in time
    // The answer is cut short: the connection broke.
    api('create', 'cut', 'sandbox_unavailable'),
    envd('read', 'cut', 'sandbox_unavailable'),
    // TLS: a handshake with a server that does not speak TLS; a certificate nobody signed.
    { call: 'create', api: `${plainAsTls}/ok`, sbx: `${up.url}/ok`, code: 'upstream_error', message: /TLS/, name: 'TLS handshake' },
    { call: 'create', api: `${tls.url}/ok`, sbx: `${up.url}/ok`, code: 'upstream_error', message: /TLS/, name: 'TLS certificate' },
    { call: 'read', api: `${up.url}/ok`, sbx: `${tls.url}/ok`, code: 'upstream_error', message: /TLS/, name: 'TLS certificate' },
  ]);
});
