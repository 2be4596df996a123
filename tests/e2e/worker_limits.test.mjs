// codecanvas-worker: a request body over max_body_bytes gets the documented 413 with its JSON
// error, whatever the client: Node's own fetch (undici, which fails with EPIPE when a server
// answers and closes while it is still sending), a chunked upload without Content-Length, and
// curl.  The worker drains the rest of such a body for at most body_linger_ms and
// body_linger_bytes (lingering close); a sender that never stops is cut off at either bound
// while the worker keeps serving everyone else.  Real worker over 127.0.0.1, no sandbox needed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWorker } from '../lib/worker.mjs';

const MiB = 1024 * 1024;
const LIMIT = 8 * MiB; /* the default max_body_bytes */

let wk;
let tok;
let dir;

before(async () => {
  wk = await startWorker({ args: ['--rate-limit', '0'] });
  tok = wk.token('alice');
  dir = mkdtempSync(join(tmpdir(), 'cc-limits-'));
});

after(async () => {
  await wk?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/* The documented answer: HTTP 413, a protocol error message with code too_large. */
function assertTooLarge(status, text, what) {
  assert.equal(status, 413, `${what}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.v, 1, what);
  assert.equal(body.ok, false, what);
  assert.equal(body.id, null, what);
  assert.equal(body.error.code, 'too_large', what);
  assert.equal(body.error.retryable, false, what);
  assert.match(body.error.message, /request body larger than 8388608 bytes/, what);
}

/* A writeFile request whose JSON body is exactly `bytes` long. */
function writeFileBody(bytes) {
  const head = '{"v":1,"id":"big","op":"writeFile","project":"p","args":{"path":"a","content":"';
  const tail = '"}}';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
}

async function stillServing(w = wk) {
  assert.equal((await fetch(`${w.url}/healthz`)).status, 200);
  const r = await w.rpc(w === wk ? tok : w.token('bob'), { op: 'hello' });
  assert.equal(r.status, 200, r.text);
}

test("Node's fetch sees the 413 JSON for a body of 8 MiB + 1 byte and of 64 MiB", async () => {
  for (const bytes of [LIMIT + 1, 64 * MiB]) {
    const body = writeFileBody(bytes);
    assert.equal(Buffer.byteLength(body), bytes);
    // Before lingering close this rejected with TypeError: fetch failed (cause EPIPE).
    const r = await fetch(`${wk.url}/v1/rpc`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` },
      body,
    });
    assertTooLarge(r.status, await r.text(), `fetch ${bytes} bytes`);
  }
  // A body of exactly the limit is read and served (JSON may be padded with whitespace).
  const hello = '{"v":1,"id":"at-limit","op":"hello"}';
  const r = await wk.rpc(tok, hello + ' '.repeat(LIMIT - hello.length));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.result.user, 'alice');
  await stillServing();
});

test('a chunked upload without Content-Length sees the 413 JSON', async () => {
  for (const total of [LIMIT + 1, 9 * MiB, 64 * MiB]) {
    const piece = new Uint8Array(256 * 1024).fill(0x78);
    let sent = 0;
    const stream = new ReadableStream({
      pull(ctl) {
        if (sent >= total) return ctl.close();
        const n = Math.min(piece.length, total - sent);
        sent += n;
        ctl.enqueue(n === piece.length ? piece : piece.subarray(0, n));
      },
    });
    // A stream body of unknown length goes out with Transfer-Encoding: chunked.
    const r = await fetch(`${wk.url}/v1/rpc`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` },
      body: stream,
      duplex: 'half',
    });
    assertTooLarge(r.status, await r.text(), `chunked ${total} bytes`);
    assert.equal(sent, total, 'the whole chunked body was sent (and drained by the worker)');
  }
  await stillServing();
});

test('curl sees the 413 JSON, with and without Expect: 100-continue', async () => {
  const file = join(dir, 'big.json');
  writeFileSync(file, writeFileBody(9 * MiB));
  for (const extra of [[], ['-H', 'Expect:'], ['-H', 'Transfer-Encoding: chunked']]) {
    const { stdout } = await promisify(execFile)('curl', [
      '-sS', '-o', '-', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${tok}`,
      '-H', 'Content-Type: application/json', '--data-binary', `@${file}`, ...extra, `${wk.url}/v1/rpc`,
    ], { encoding: 'utf8' });
    const nl = stdout.lastIndexOf('\n');
    assertTooLarge(Number(stdout.slice(nl + 1)), stdout.slice(0, nl), `curl ${extra.join(' ')}`);
  }
  await stillServing();
});

/*
 * A raw sender that never stops: POST /v1/rpc with a Content-Length of 1 TiB (or chunked),
 * writing `chunk` bytes every `everyMs` ms (0: as fast as the socket takes them) and ignoring
 * whatever the worker answers, with half-open sockets so that the worker's FIN does not end
 * our side.  Resolves `closed` when the worker cuts the connection.
 */
function endlessSender(port, { chunked = false, chunk = 16 * 1024, everyMs = 0 }) {
  const s = {
    t0: performance.now(),
    answerAt: null, /* when the whole HTTP answer had arrived */
    closedAt: null,
    endedAt: null, /* the worker's FIN (or the close, whichever came first) */
    response: '',
    written: 0,
  };
  let answered;
  s.answered = new Promise((resolve) => (answered = resolve)); /* true, or false when cut first */
  const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const data = Buffer.alloc(chunk, 0x78);
  const piece = chunked ? Buffer.concat([Buffer.from(`${chunk.toString(16)}\r\n`), data, Buffer.from('\r\n')]) : data;
  sock.on('data', (d) => {
    s.response += d.toString('latin1');
    const m = /\r\n\r\n/.exec(s.response);
    const len = /content-length: *(\d+)/i.exec(s.response);
    if (s.answerAt === null && m && len && s.response.length >= m.index + 4 + Number(len[1])) {
      s.answerAt = performance.now();
      answered(true);
    }
  });
  sock.on('error', () => {}); // EPIPE / ECONNRESET: the cut we are waiting for
  s.ended = new Promise((resolve) => {
    const mark = () => {
      if (s.endedAt === null) s.endedAt = performance.now();
      resolve();
    };
    sock.on('end', mark);
    sock.on('close', mark);
  });
  s.closed = new Promise((resolve) => sock.on('close', () => {
    s.closedAt = performance.now();
    clearInterval(timer);
    answered(false);
    resolve();
  }));
  let timer = null;
  const write = () => {
    if (sock.destroyed || sock.writableEnded) return false;
    s.written += chunk;
    return sock.write(piece);
  };
  sock.on('connect', () => {
    sock.write(`POST /v1/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${
      chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${2 ** 40}`}\r\n\r\n`);
    if (everyMs > 0) {
      timer = setInterval(write, everyMs);
    } else {
      const pump = () => {
        while (write());
      };
      sock.on('drain', pump);
      pump();
    }
  });
  s.socket = sock;
  return s;
}

test('a sender that never stops is cut off at the documented bounds; everyone else is served meanwhile', async () => {
  // Small bounds so that the test is quick: 3 s of lingering, at most 4 MiB dropped; a 64 KiB
  // body limit so that a slow chunked sender passes it at once.
  const LINGER_MS = 3000;
  const w = await startWorker({
    args: ['--rate-limit', '0', '--max-body-bytes', '65536', '--body-linger', String(LINGER_MS),
      '--body-linger-bytes', String(4 * MiB)],
  });
  try {
    // 1. Declared Content-Length, slow (about 0.8 MB/s): the 413 arrives at once, then the
    //    worker drains for body_linger_ms and cuts the connection.
    const slow = endlessSender(w.port, { chunk: 8192, everyMs: 10 });
    // 2. Declared Content-Length, as fast as possible: cut at body_linger_bytes.
    const fast = endlessSender(w.port, {});
    // 3. Chunked, slow: the worker cannot answer before the body ends (MHD), so it drops what
    //    comes for body_linger_ms after the limit was passed, then closes without an answer.
    const chunked = endlessSender(w.port, { chunked: true, chunk: 8192, everyMs: 10 });

    // (It may never read the 413: a client that sends past body_linger_bytes can get the reset
    // before it reads the answer.  Clients that read while they send stop long before.)
    await fast.closed;
    assert.ok(fast.closedAt - fast.t0 < LINGER_MS, 'the byte bound, not the time bound, cut it');
    assert.ok(fast.written >= 4 * MiB, `it could send at least body_linger_bytes (${fast.written})`);

    // While the slow senders are being drained, the worker serves others.
    assert.equal(await slow.answered, true, 'the slow sender got its answer before anything else');
    await stillServing(w);
    assert.equal(slow.closedAt, null, 'the slow sender is still connected while others are served');
    assert.equal(chunked.closedAt, null, 'so is the chunked one');

    await Promise.all([slow.closed, chunked.closed]);
    assert.match(slow.response, /^HTTP\/1\.1 413 /);
    const slowLinger = slow.closedAt - slow.answerAt;
    assert.ok(slowLinger >= LINGER_MS - 500 && slowLinger < LINGER_MS + 5000,
      `the slow sender was cut after body_linger_ms (${slowLinger.toFixed(0)} ms)`);
    assert.equal(chunked.response, '', 'no answer before a chunked body ends');
    const chunkedLife = chunked.closedAt - chunked.t0;
    assert.ok(chunkedLife >= LINGER_MS - 500 && chunkedLife < LINGER_MS + 5000,
      `the chunked sender was cut after body_linger_ms (${chunkedLife.toFixed(0)} ms)`);
    await stillServing(w);
  } finally {
    await w.stop();
  }
});

test('a chunked sender that stalls past the limit is dropped by the same time bound', async () => {
  const w = await startWorker({ args: ['--rate-limit', '0', '--max-body-bytes', '65536', '--body-linger', '1000'] });
  let s;
  try {
    s = endlessSender(w.port, { chunked: true, chunk: 128 * 1024, everyMs: 60000 });
    s.socket.once('connect', () => s.socket.write(`${(256 * 1024).toString(16)}\r\n${'x'.repeat(256 * 1024)}\r\n`));
    await s.ended; // the worker's FIN: it has closed the connection on its side
    const life = s.endedAt - s.t0;
    // MHD's idle timeout is set to ceil(body_linger_ms) + 1 s once the limit is passed.
    assert.ok(life >= 900 && life < 10000, `dropped after ${life.toFixed(0)} ms`);
    assert.equal(s.response, '');
    await stillServing(w);
  } finally {
    s?.socket.destroy();
    await w.stop();
  }
});
