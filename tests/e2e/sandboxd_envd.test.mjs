// envd 0.5.7 .. 0.6.4 in codecanvas-sandboxd, judged by the official SDK (e2b@2.51.0, which
// enables each feature by the advertised envd version, and the pinned 2.9.0), against a real
// sandboxd with real bubblewrap sandboxes:
//  - 0.5.7 application/octet-stream uploads (and gzip-encoded bodies): byte for byte, 0 B to
//    more than 1 MiB, through the SDK and raw HTTP; bad bodies get a clear 4xx;
//  - 0.6.2 file metadata: X-Metadata-* on write, stored as user.e2b.<key> extended
//    attributes, surfaced by getInfo/list (also when set inside the sandbox), replaced by
//    every upload, refused with a clear error when oversized or malformed, read with the
//    requesting user's rights;
//  - 0.6.3 / 0.6.4 watchDir includeEntry (EntryInfo on create/write/chmod events) and
//    allowNetworkMounts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync } from 'node:zlib';

import { InvalidArgumentError, Sandbox } from 'e2b-2.51';
import { Sandbox as OldSandbox } from 'e2b';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

const MAX_UPLOAD = 8 * 1024 * 1024;
const isRoot = process.getuid?.() === 0;
let sd;
let sbx;

before(async () => {
  sd = await startSandboxd({ args: ['--no-internet', '--max-upload', String(MAX_UPLOAD)] });
  useSandboxd(sd);
  sbx = await Sandbox.create({ timeoutMs: 300_000 });
});

after(async () => {
  await sbx?.kill().catch(() => {});
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

/** Deterministic bytes that are not all one value (so a shifted or truncated copy differs). */
function pattern(n, seed = 1) {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const sameBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** POST /files on the sandbox's envd with raw headers and body; resolves {status, body}. */
function rawUpload(query, headers, body) {
  const url = new URL(`/files?${query}`, sd.url);
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken ?? '', ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: json, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls cond() every 20 ms for at most ms; returns its last value. */
async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  let v = await cond();
  while (!v && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    v = await cond();
  }
  return v;
}

describe('envd version', () => {
  test('0.6.4 is advertised in create and getInfo', async () => {
    assert.equal((await sbx.getInfo()).envdVersion, '0.6.4');
    assert.equal((await Sandbox.list().nextItems()).find((s) => s.sandboxId === sbx.sandboxId).envdVersion, '0.6.4');
  });
});

describe('octet-stream uploads (envd 0.5.7)', () => {
  test('the SDK sends octet-stream bodies that round-trip byte for byte: 0 B, 1 B, 64 KiB + 1, 3 MiB + 7', async () => {
    for (const n of [0, 1, 65_537, 3 * 1024 * 1024 + 7]) {
      const data = pattern(n, n + 1);
      const info = await sbx.files.write(`oct/${n}.bin`, data, { useOctetStream: true });
      assert.deepEqual([info.name, info.type, info.path], [`${n}.bin`, 'file', `/home/user/oct/${n}.bin`]);
      const back = await sbx.files.read(`oct/${n}.bin`, { format: 'bytes' });
      assert.equal(back.length, n);
      assert.ok(sameBytes(back, data), `${n} bytes differ`);
    }
  });

  test('a stream body (the SDK switches to octet-stream for it) of 2 MiB round-trips', async () => {
    const data = pattern(2 * 1024 * 1024, 7);
    const stream = new ReadableStream({
      start(c) {
        for (let o = 0; o < data.length; o += 100_000) c.enqueue(data.subarray(o, o + 100_000));
        c.close();
      },
    });
    await sbx.files.write('oct/stream.bin', stream);
    assert.ok(sameBytes(await sbx.files.read('oct/stream.bin', { format: 'bytes' }), data));
  });

  test('gzip-encoded uploads (the SDK\'s gzip option, and a gzipped multipart body) are decoded', async () => {
    const data = pattern(1536 * 1024, 3);
    await sbx.files.write('gz/sdk.bin', data, { gzip: true });
    assert.ok(sameBytes(await sbx.files.read('gz/sdk.bin', { format: 'bytes' }), data));
    // two gzip members one after the other decode as one body (RFC 1952; Go's reader does too)
    const two = Buffer.concat([gzipSync(data.subarray(0, 1000)), gzipSync(data.subarray(1000))]);
    let r = await rawUpload('path=gz/two.bin', { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip' }, two);
    assert.equal(r.status, 200, r.text);
    assert.ok(sameBytes(await sbx.files.read('gz/two.bin', { format: 'bytes' }), data));
    const boundary = 'cc-boundary-4711';
    const mp = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="gz/mp.bin"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n'),
      Buffer.from(data.subarray(0, 200_000)),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    r = await rawUpload('', { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Encoding': 'gzip' }, gzipSync(mp));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.map((e) => e.path), ['/home/user/gz/mp.bin']);
    assert.ok(sameBytes(await sbx.files.read('gz/mp.bin', { format: 'bytes' }), data.subarray(0, 200_000)));
  });

  test('raw octet-stream: ?path= required, then the entry; bad bodies get clear errors and the server keeps serving', async () => {
    const octet = { 'Content-Type': 'application/octet-stream' };
    let r = await rawUpload('path=raw/x.bin', octet, Buffer.from([0, 255, 10, 13, 0]));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, [{ name: 'x.bin', type: 'file', path: '/home/user/raw/x.bin' }]);
    assert.ok(sameBytes(await sbx.files.read('raw/x.bin', { format: 'bytes' }), [0, 255, 10, 13, 0]));

    r = await rawUpload('', octet, 'x');
    assert.deepEqual([r.status, r.body?.message], [400, 'path query parameter is required for raw body upload']);
    r = await rawUpload('path=raw/t.txt', { 'Content-Type': 'text/plain' }, 'x');
    assert.equal(r.status, 400);
    assert.match(r.body.message, /^unsupported content type: text\/plain, expected multipart\/form-data or application\/octet-stream/);
    r = await rawUpload('path=raw/br.bin', { ...octet, 'Content-Encoding': 'br' }, 'x');
    assert.deepEqual([r.status, r.body?.message], [400, 'unsupported Content-Encoding: br, supported: [gzip]']);
    r = await rawUpload('path=raw/bad.bin', { ...octet, 'Content-Encoding': 'gzip' }, 'this is not gzip');
    assert.equal(r.status, 400);
    assert.match(r.body.message, /^error decompressing request body/);
    const cut = gzipSync(pattern(100_000));
    r = await rawUpload('path=raw/cut.bin', { ...octet, 'Content-Encoding': 'gzip' }, cut.subarray(0, cut.length - 20));
    assert.deepEqual([r.status, r.body?.message], [400, 'error decompressing request body: unexpected end of gzip data']);
    // a small gzip body that decodes past --max-upload is refused, not written out in full
    r = await rawUpload('path=raw/bomb.bin', { ...octet, 'Content-Encoding': 'gzip' }, gzipSync(Buffer.alloc(MAX_UPLOAD + 1)));
    assert.deepEqual([r.status, r.body?.message], [413, `upload larger than the limit of ${MAX_UPLOAD} bytes`]);
    // still serving
    await sbx.files.write('raw/after.txt', 'still here', { useOctetStream: true });
    assert.equal(await sbx.files.read('raw/after.txt'), 'still here');
  });
});

describe('file metadata (envd 0.6.2)', () => {
  test('write -> getInfo and list, multipart and octet-stream, keys lowercased as envd does', async () => {
    const w = await sbx.files.write('meta/a.txt', 'hello', { metadata: { Author: 'mish', purpose: 'a b=c' } });
    const want = { author: 'mish', purpose: 'a b=c' };
    assert.deepEqual(w.metadata, want);
    assert.deepEqual((await sbx.files.getInfo('meta/a.txt')).metadata, want);
    const listed = await sbx.files.list('meta');
    assert.deepEqual(listed.find((e) => e.name === 'a.txt').metadata, want);

    const bin = pattern(1024 * 1024 + 3, 9);
    const o = await sbx.files.write('meta/b.bin', bin, { useOctetStream: true, metadata: { k: 'v' } });
    assert.deepEqual(o.metadata, { k: 'v' });
    assert.deepEqual((await sbx.files.getInfo('meta/b.bin')).metadata, { k: 'v' });
    assert.ok(sameBytes(await sbx.files.read('meta/b.bin', { format: 'bytes' }), bin));

    const many = await sbx.files.write([{ path: 'meta/d/1.txt', data: '1' }, { path: 'meta/d/2.txt', data: '2' }], { metadata: { batch: '7' } });
    assert.deepEqual(many.map((e) => e.metadata), [{ batch: '7' }, { batch: '7' }]);
    assert.deepEqual((await sbx.files.list('meta/d')).map((e) => [e.name, e.metadata]), [['1.txt', { batch: '7' }], ['2.txt', { batch: '7' }]]);
    // an entry without metadata has none (the SDK maps an absent/empty map to undefined)
    assert.equal((await sbx.files.getInfo('meta')).metadata, undefined);
  });

  test('stored as user.e2b.<key> extended attributes; every upload replaces the whole set', async () => {
    await sbx.files.write('meta/r.txt', 'one', { metadata: { first: '1', keep: 'x' } });
    const py = "import os, json; p='/home/user/meta/r.txt'; print(json.dumps(sorted((n, os.getxattr(p, n).decode()) for n in os.listxattr(p))))";
    let r = await sbx.commands.run(`python3 -c "${py}"`);
    assert.deepEqual(JSON.parse(r.stdout), [['user.e2b.first', '1'], ['user.e2b.keep', 'x']]);
    await sbx.files.write('meta/r.txt', 'two', { metadata: { keep: 'y' } });
    assert.deepEqual((await sbx.files.getInfo('meta/r.txt')).metadata, { keep: 'y' });
    r = await sbx.commands.run(`python3 -c "${py}"`);
    assert.deepEqual(JSON.parse(r.stdout), [['user.e2b.keep', 'y']]);
    await sbx.files.write('meta/r.txt', 'three');
    assert.equal((await sbx.files.getInfo('meta/r.txt')).metadata, undefined);
    assert.equal(await sbx.files.read('meta/r.txt'), 'three');
  });

  test('an attribute set inside the sandbox shows up in getInfo, list and on directories', async () => {
    await sbx.files.write('inside/f.txt', 'x');
    const r = await sbx.commands.run(`python3 -c "
import os
os.setxattr('/home/user/inside/f.txt', 'user.e2b.fromInside', b'yes')
os.setxattr('/home/user/inside/f.txt', 'user.other', b'not envd metadata')
os.setxattr('/home/user/inside/f.txt', 'user.e2b.binary', b'\\xff\\xfe')
os.setxattr('/home/user/inside', 'user.e2b.dir', b'd')
"`);
    assert.equal(r.exitCode, 0, r.stderr);
    // envd's map only holds keys under user.e2b. with valid UTF-8 values
    assert.deepEqual((await sbx.files.getInfo('inside/f.txt')).metadata, { fromInside: 'yes' });
    assert.deepEqual((await sbx.files.list('inside')).map((e) => e.metadata), [{ fromInside: 'yes' }]);
    assert.deepEqual((await sbx.files.getInfo('inside')).metadata, { dir: 'd' });
  });

  test('oversized or malformed metadata is refused with a clear error and nothing is written', async () => {
    await assert.rejects(sbx.files.write('bad/big.txt', 'x', { metadata: { k: 'v'.repeat(4096) } }), (e) => {
      assert.ok(e instanceof InvalidArgumentError, String(e));
      assert.match(e.message, /total metadata size exceeds 4096 bytes/);
      return true;
    });
    await assert.rejects(sbx.files.write('bad/key.txt', 'x', { metadata: { ['k'.repeat(247)]: 'v' }, useOctetStream: true }), (e) => {
      assert.ok(e instanceof InvalidArgumentError, String(e));
      assert.match(e.message, /exceeds 246 bytes/);
      return true;
    });
    const octet = { 'Content-Type': 'application/octet-stream' };
    let r = await rawUpload('path=bad/tab.txt', { ...octet, 'X-Metadata-k': 'a\tb' }, 'x');
    assert.equal(r.status, 400);
    assert.match(r.body.message, /^invalid metadata: metadata value for key k contains a non-printable-ASCII byte at offset 1/);
    r = await rawUpload('path=bad/empty.txt', { ...octet, 'X-Metadata-': 'v' }, 'x');
    assert.deepEqual([r.status, r.body?.message], [400, 'invalid metadata: metadata key must not be empty']);
    // the same key twice (header names are case-insensitive): refused, not one silently kept
    r = await new Promise((resolve, reject) => {
      const req = http.request(new URL('/files?path=bad/twice.txt', sd.url), {
        method: 'POST',
        headers: ['E2b-Sandbox-Id', sbx.sandboxId, 'X-Access-Token', sbx.envdAccessToken ?? '',
          'Content-Type', 'application/octet-stream', 'X-Metadata-Key', '1', 'x-metadata-key', '2'],
      }, (res) => {
        let t = '';
        res.on('data', (d) => { t += d; });
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(t) }));
      });
      req.on('error', reject);
      req.end('x');
    });
    assert.deepEqual([r.status, r.body.message], [400, 'invalid metadata: metadata key key given twice']);
    for (const f of ['big', 'key', 'tab', 'empty', 'twice']) assert.equal(await sbx.files.exists(`bad/${f}.txt`), false, f);
    // still serving
    assert.deepEqual((await sbx.files.write('bad/ok.txt', 'x', { metadata: { ok: '1' } })).metadata, { ok: '1' });
  });

  test('metadata follows the requesting user: a file user may not read shows none to user', { skip: !isRoot && 'needs a root inside (sandboxd as root)' }, async () => {
    await sbx.files.write('/tmp/secret.txt', 's', { user: 'root', metadata: { secret: '1' } });
    const r = await sbx.commands.run('sudo chmod 600 /tmp/secret.txt && stat -c %U:%a /tmp/secret.txt');
    assert.equal(r.stdout.trim(), 'root:600');
    assert.deepEqual((await sbx.files.getInfo('/tmp/secret.txt', { user: 'root' })).metadata, { secret: '1' });
    const asUser = await sbx.files.getInfo('/tmp/secret.txt');
    assert.equal(asUser.owner, 'root');
    assert.equal(asUser.metadata, undefined);
    // nor can user's commands change it
    const set = await sbx.commands.run(`python3 -c "import os; os.setxattr('/tmp/secret.txt', 'user.e2b.secret', b'2')"`).catch((e) => e);
    assert.match(set.stderr ?? String(set), /PermissionError/);
    assert.deepEqual((await sbx.files.getInfo('/tmp/secret.txt', { user: 'root' })).metadata, { secret: '1' });
    // an upload as user writes with root's rights as E2B's envd does, and gives the file to user
    const up = await sbx.files.write('/tmp/secret.txt', 'x', { metadata: { secret: '2' } });
    assert.deepEqual(up.metadata, { secret: '2' });
    const after = await sbx.files.getInfo('/tmp/secret.txt');
    assert.deepEqual([after.owner, after.metadata], ['user', { secret: '2' }]);
  });

  test('the pinned SDK 2.9.0 reads entries that carry metadata, and its uploads replace the set', async () => {
    const old = await OldSandbox.connect(sbx.sandboxId);
    await sbx.files.write('old/m.txt', 'x', { metadata: { k: 'v' } });
    const info = await old.files.getInfo('old/m.txt');
    assert.deepEqual([info.name, info.size], ['m.txt', 1]);
    assert.deepEqual((await old.files.list('old')).map((e) => e.name), ['m.txt']);
    await old.files.write('old/m.txt', 'new');
    assert.equal((await sbx.files.getInfo('old/m.txt')).metadata, undefined);
    assert.equal(await old.files.read('old/m.txt'), 'new');
  });
});

describe('watchDir options (envd 0.6.3, 0.6.4)', () => {
  test('includeEntry: create/write/chmod events carry the entry (with metadata), rename/remove none', async () => {
    await sbx.files.makeDir('w1');
    const events = [];
    const h = await sbx.files.watchDir('w1', (e) => events.push(e), { includeEntry: true });
    await sbx.files.write('w1/f.txt', 'abc', { metadata: { tag: 'one' } });
    await sbx.commands.run('chmod 600 w1/f.txt');
    // each step waits for its event, so the entry is still there when sandboxd stats it
    const chmodded = (e) => e.type === 'chmod' && e.name === 'f.txt' && e.entry?.mode === 0o600;
    assert.ok(await until(() => events.some(chmodded)), JSON.stringify(events));
    await sbx.commands.run('mv w1/f.txt w1/g.txt');
    assert.ok(await until(() => events.some((e) => e.type === 'create' && e.name === 'g.txt')), JSON.stringify(events));
    await sbx.commands.run('rm w1/g.txt');
    assert.ok(await until(() => events.some((e) => e.type === 'remove' && e.name === 'g.txt')), JSON.stringify(events));
    await h.stop();
    const create = events.find((e) => e.type === 'create' && e.name === 'f.txt');
    assert.deepEqual([create.entry.name, create.entry.path, create.entry.type], ['f.txt', '/home/user/w1/f.txt', 'file']);
    assert.ok(events.some((e) => e.type === 'write' && e.name === 'f.txt' && e.entry?.name === 'f.txt'), JSON.stringify(events));
    assert.deepEqual(events.find(chmodded).entry.metadata, { tag: 'one' });
    const moved = events.find((e) => e.type === 'create' && e.name === 'g.txt');
    assert.deepEqual([moved.entry.path, moved.entry.size, moved.entry.metadata], ['/home/user/w1/g.txt', 3, { tag: 'one' }]);
    const gone = events.filter((x) => x.type === 'rename' || x.type === 'remove');
    assert.deepEqual(gone.map((e) => `${e.type} ${e.name}`), ['rename f.txt', 'remove g.txt']);
    for (const e of gone) assert.equal(e.entry, undefined);
  });

  test('without includeEntry events carry no entry; allowNetworkMounts is accepted and watches', async () => {
    await sbx.files.makeDir('w2');
    const plain = [];
    const net = [];
    const h1 = await sbx.files.watchDir('w2', (e) => plain.push(e));
    const h2 = await sbx.files.watchDir('w2', (e) => net.push(e), { allowNetworkMounts: true, recursive: true });
    await sbx.files.write('w2/x.txt', 'x');
    assert.ok(await until(() => plain.some((e) => e.type === 'write') && net.some((e) => e.type === 'write')));
    await h1.stop();
    await h2.stop();
    assert.ok(plain.every((e) => e.entry === undefined), JSON.stringify(plain));
    assert.deepEqual(net.filter((e) => e.type === 'create').map((e) => e.name), ['x.txt']);
  });
});
