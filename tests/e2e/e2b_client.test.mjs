// The native E2B client (native/e2b/) against a real codecanvas-sandboxd: starts sandboxd on
// an ephemeral port and runs tests/e2e/e2b_client_test.c (built as $CC_BIN_DIR/e2b_client_test),
// which exercises every client call over real HTTP on 127.0.0.1.  The C program prints one
// line per group and exits with its number of failed checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startSandboxd } from '../lib/sandboxd.mjs';

let sd;

before(async () => {
  sd = await startSandboxd();
});

after(async () => {
  await sd?.stop();
});

function run(bin, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

test('cc_e2b against sandboxd: sandboxes, streamed exec, cancel, stdin, files, fs RPCs, errors', async () => {
  const bin = join(process.env.CC_BIN_DIR, 'e2b_client_test');
  const r = await run(bin, [sd.url, sd.apiKey], 240000);
  const report = `exit ${r.code ?? r.signal}\n${r.out}\n${r.err}`;
  assert.equal(r.code, 0, report);
  for (const group of ['test_create', 'test_streaming_before_end', 'test_cancel', 'test_files',
    'test_threads', 'test_kill_and_gone', 'test_bad_credentials_and_unreachable']) {
    assert.match(r.out, new RegExp(`^ok +${group}$`, 'm'), report);
  }
  // The API key never shows up in anything the client printed (messages, errors).
  assert.ok(!r.out.includes(sd.apiKey) && !r.err.includes(sd.apiKey), 'API key leaked');
});
