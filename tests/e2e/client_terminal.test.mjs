// The wasm client's openTerminal (build/web/codecanvas.js) in Node 20 with its own WebSocket
// (the browser API), against a live worker and sandboxd: typed input and output, resize,
// reconnection to the same shell after the connection drops, and the end of the shell.
import 'fake-indexeddb/auto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { startWorker } from '../lib/worker.mjs';

const { CodeCanvas } = await import(pathToFileURL(join(process.env.CC_WEB_DIR, 'codecanvas.js')));

let sd, wk, client;

before(async () => {
  sd = await startSandboxd();
  wk = await startWorker({ sandboxd: sd, args: ['--rate-limit', '0'] });
  client = await CodeCanvas.connect({ workerUrl: wk.url, token: wk.token('alice'), persist: false });
});

after(async () => {
  await client?.close();
  await wk?.stop();
  await sd?.stop();
});

test('openTerminal: type, resize, reconnect to the same shell after a drop, kill', async () => {
  let out = '';
  const waiters = [];
  const events = [];
  const poke = () => { for (const w of [...waiters]) if (w()) waiters.splice(waiters.indexOf(w), 1); };
  const until = (test, what) =>
    new Promise((resolve, reject) => {
      const hit = test();
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`no ${what}; output:\n${out}\nevents: ${JSON.stringify(events)}`)), 20000);
      waiters.push(() => { const h = test(); if (h) { clearTimeout(timer); resolve(h); return true; } return false; });
    });
  // the page's WebSocket, with a handle on each connection so that the test can drop one
  const sockets = [];
  class TrackedWebSocket extends WebSocket {
    constructor(...a) { super(...a); sockets.push(this); }
  }
  const dec = new TextDecoder();
  const term = client.openTerminal('proj', {
    cols: 100,
    rows: 30,
    WebSocket: TrackedWebSocket,
    onData: (b) => { out += dec.decode(b, { stream: true }); poke(); },
    onReady: (r) => { events.push(['ready', r]); poke(); },
    onExit: (e) => { events.push(['exit', e]); poke(); },
    onClose: (c) => { events.push(['close', c]); poke(); },
  });
  const ready = await term.ready;
  assert.ok(ready.pid > 0 && term.pid === ready.pid && ready.reattached === false);
  term.write('stty size; python3 -c "print(6*7)"\r');
  await until(() => /30 100[\s\S]*\r?\n42\r?\n/.test(out), 'stty size and 42');
  term.resize(120, 40);
  term.write('stty size\r');
  await until(() => /40 120/.test(out), 'the new size');
  term.write('export KEEP=yes\r');
  // a network blip: the connection goes; the client reconnects to the same shell by its pid
  sockets[0].close(4000, 'blip');
  await until(() => events.find(([k, r]) => k === 'ready' && r.reattached), 'a reattached ready');
  assert.equal(sockets.length, 2);
  assert.deepEqual(events.find(([k]) => k === 'close')[1].willReconnect, true);
  term.write('echo after-blip:$KEEP\r');
  await until(() => /after-blip:yes/.test(out), 'the same shell after the blip');
  term.kill();
  const exit = await until(() => events.find(([k]) => k === 'exit'), 'exit');
  assert.equal(exit[1].exitCode, -1);
  await until(() => events.find(([k, c]) => k === 'close' && c.willReconnect === false), 'a final close');
});
