// The E2B API key never leaves the worker towards its clients: after a run with successes
// and failures (bad input, missing files, timeouts, a wrong key, sandboxd down), no HTTP
// response body or header, no log line (stderr, access log) and no row of the SQLite
// database contains the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker, dumpDatabase } from '../lib/worker.mjs';

const KEY = 'e2b_fakeSECRETkey0123456789abcdefDONOTLEAK';
const WRONG = 'e2b_wrongSECRETkey9876543210NEVERSHOWN';

test('the E2B key appears in no response, header, log line, error or stored row', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-secrets-'));
  const seen = [];
  const record = (r) => {
    seen.push(r.text ?? '');
    for (const [k, v] of r.headers ?? []) seen.push(`${k}: ${v}`);
    for (const l of r.lines ?? []) seen.push(JSON.stringify(l));
  };
  let sd = await startSandboxd({ apiKey: KEY, args: ['--no-internet'] });
  const port = sd.port;
  const logFile = join(dir, 'access.log');
  const wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0', '--access-log', logFile, '--cors-origins', '*'] });
  const keyFile = join(dir, 'wrong.key');
  writeFileSync(keyFile, `${WRONG}\n`);
  const wrong = await startWorker({
    sandboxd: sd,
    env: { E2B_API_KEY: '' },
    args: ['--e2b-api-key-file', keyFile, '--rate-limit', '0'],
  });
  try {
    const t = wk.token('alice');
    const ops = [
      { op: 'hello' },
      { op: 'exec', project: 'p', args: { cmd: 'echo hi; env' } },
      { op: 'exec', project: 'p', args: { cmd: 'echo fail >&2; exit 7' } },
      { op: 'exec', project: 'p', args: { cmd: 'sleep 5', timeoutMs: 300 } },
      { op: 'exec', project: 'p', args: { cmd: 'cd /nonexistent' , cwd: '/home/user/nope' } },
      { op: 'readFile', project: 'p', args: { path: 'missing.txt' } },
      { op: 'writeFile', project: 'p', args: { path: 'a.txt', content: 'a' } },
      { op: 'listDir', project: 'p', args: { path: '/home/user/nope' } },
      { op: 'killProcess', project: 'p', args: { pid: 99999 } },
      { op: 'listProcesses', project: 'p' },
      { op: 'startDevServer', project: 'p', args: { port: 8123, cmd: 'exit 1' } },
      { op: 'getHistory', project: 'p' },
      { op: 'getProject', project: 'p' },
      { op: 'listProjects' },
      { op: 'getResult', args: { executionId: '0'.repeat(32) } },
      { op: 'nonsense', project: 'p' },
    ];
    for (const m of ops) record(await wk.rpc(t, m, { headers: { Origin: 'http://x.example' } }));
    record(await wk.rpc(null, { op: 'hello' }));
    record(await wk.rpc(t, '{not json'));
    record(await wk.rpcStream(t, { op: 'exec', project: 'p', args: { cmd: 'echo streamed; exit 2' } }));
    record(await wk.rpcStream(t, { op: 'setupProject', project: 'p', args: { files: [{ path: 'x', content: 'y' }], install: 'false' } }));
    // The worker holding a wrong key: E2B refuses it -> upstream_error, key not echoed.
    const tw = wrong.token('mallory');
    const bad = await wrong.rpc(tw, { op: 'exec', project: 'p', args: { cmd: 'true' } });
    record(bad);
    assert.equal(bad.body.error.code, 'upstream_error', bad.text);
    // sandboxd down: sandbox_unavailable, and the message must not carry the key either.
    sd.process.kill('SIGKILL');
    await sd.exited;
    const down = await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo down', useCache: false } });
    record(down);
    assert.equal(down.body.error.code, 'sandbox_unavailable');
    sd = await startSandboxd({ apiKey: KEY, args: ['--no-internet', '--listen', `127.0.0.1:${port}`] });
    record(await wk.rpc(t, { op: 'exec', project: 'p', args: { cmd: 'echo back' } }));
    for (const p of ['/healthz', '/metrics', '/', '/v1/rpc']) {
      const r = await fetch(`${wk.url}${p}`);
      record({ text: await r.text(), headers: r.headers });
    }
    await wk.stop({ keep: true });
    await wrong.stop({ keep: true });

    const haystacks = {
      responses: seen.join('\n'),
      'worker stderr': wk.stderr + wk.stdout,
      'wrong-key worker stderr': wrong.stderr + wrong.stdout,
      'access log': readFileSync(logFile, 'utf8'),
      'database rows': dumpDatabase(wk.db),
      'wrong-key database rows': dumpDatabase(wrong.db),
    };
    assert.ok(haystacks['access log'].split('\n').length > 20, 'the access log was written');
    assert.ok(haystacks['database rows'].includes('INSERT'), 'the database holds rows');
    for (const [name, text] of Object.entries(haystacks)) {
      for (const k of [KEY, WRONG, KEY.slice(4, 24), WRONG.slice(4, 24)])
        assert.ok(!text.includes(k), `the E2B key leaked into ${name}`);
    }
  } finally {
    await wk.stop();
    await wrong.stop();
    wk.cleanup();
    wrong.cleanup();
    await sd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
