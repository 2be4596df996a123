// tests/browser/page.test.mjs: the page (web/) in a real browser against the real system.
//
// Debian's Chromium driven by playwright-core, headless, on a fresh profile; a live
// codecanvas-sandboxd (bubblewrap sandboxes) and codecanvas-worker on 127.0.0.1, the worker
// serving web/ and the wasm client from build/web. The steps run in order on one profile,
// as a user would: wrong token, connect, create a project, edit a file, run a command that
// streams, run it again (cached), reload with the network held back (first paint from
// IndexedDB), project settings, a dev server preview, worker stopped (offline) and started
// again (recovery without reload), the processes panel (a dev server listed and stopped), project
// setup (a dropped folder, a picked folder, a template whose install output streams and whose
// dev server is offered). Nothing sleeps: every wait is for a page state or for an
// event the test causes. Screenshots of each main state go to tests/out/page/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const SRC = process.env.CC_SOURCE_DIR ?? path.resolve(import.meta.dirname, '../..');
const WEB = process.env.CC_WEB_DIR ?? path.join(SRC, 'build/web');
const OUT = path.join(SRC, 'tests/out/page');
const require = createRequire(path.join(SRC, 'tests/package.json'));
const { chromium } = require('playwright-core');
const { Sandbox } = require('e2b');
const { startSandboxd } = await import(path.join(SRC, 'tests/lib/sandboxd.mjs'));
const { startWorker } = await import(path.join(SRC, 'tests/lib/worker.mjs'));

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = { timeout: 60_000 };

// A program that prints, then waits until the test creates the file `go` in its sandbox, so the
// test can look at the page while the command is still running.
const PROGRAM = [
  'import os, time',
  'print("\\x1b[32mstep one\\x1b[0m", flush=True)',
  'def released():',
  '    try:',
  '        return open("go").read().strip()',
  '    except OSError:',
  '        return ""',
  'for _ in range(6000):',
  '    if released():',
  '        break',
  '    time.sleep(0.02)',
  'print("done:", released() or "gave up")',
  '',
].join('\n');

async function shot(page, name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

test('the page, in Chromium, against a live worker and sandboxd', { timeout: 300_000 }, async (t) => {
  fs.rmSync(OUT, { recursive: true, force: true });
  // Cleanup in one hook, in order: browser, worker, sandboxd, then the directories.
  let sandboxd = null, first = null, worker = null, ctx = null, profile = null;
  t.after(async () => {
    if (ctx) await ctx.close().catch(() => {});
    if (worker) await worker.stop().catch(() => {});
    if (sandboxd) await sandboxd.stop().catch(() => {});
    if (first) first.cleanup();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
  });
  sandboxd = await startSandboxd();
  // the worker serves the page (web/) and the wasm client (build/web) side by side at /
  const workerOpts = { sandboxd, args: ['--web', path.join(SRC, 'web'), '--web', WEB] };
  first = await startWorker(workerOpts);
  worker = first;
  const token = worker.token('alice');
  const origin = worker.url.replace(/\/$/, '');

  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const rpcCalls = [];
  const foreign = []; // requests to anywhere but the worker and sandbox previews (*.localhost)
  ctx.on('request', (r) => {
    const u = new URL(r.url());
    if (r.url().endsWith('/v1/rpc')) rpcCalls.push(r);
    if (u.protocol !== 'data:' && u.protocol !== 'about:' && u.hostname !== '127.0.0.1' && !u.hostname.endsWith('.localhost'))
      foreign.push(r.url());
  });

  // The steps build on each other: once one fails, the rest are skipped instead of each
  // waiting out its timeouts.
  let failed = null;
  const step = (name, fn) => t.test(name, async (st) => {
    if (failed) { st.skip(`after the failure of "${failed}"`); return; }
    try { await fn(st); } catch (e) {
      failed = name;
      await shot(page, `failed-${name.replace(/[^a-z0-9]+/gi, '-')}`).catch(() => {});
      throw e;
    }
  });

  // Writes a file into the project's sandbox through sandboxd with the official SDK: a second
  // channel the test controls, independent of the worker's per-project queue.
  async function writeInSandbox(file, content) {
    const opts = { apiKey: sandboxd.apiKey, apiUrl: sandboxd.url, sandboxUrl: sandboxd.url };
    const items = await Sandbox.list(opts).nextItems();
    assert.equal(items.length, 1, 'one sandbox: the project\'s');
    const sbx = await Sandbox.connect(items[0].sandboxId, opts);
    await sbx.files.write(file, content);
  }

  await step('wrong token: a clear message and nothing else', async () => {
    await page.goto(`${origin}/#token=not-a-real-token`);
    await page.locator('#banner[data-kind="auth"]').waitFor(WAIT);
    assert.match(await page.locator('#banner').innerText(), /rejected this token/);
    assert.equal(await page.locator('#conn').innerText(), 'Wrong token');
    assert.equal(await page.locator('#app').getAttribute('data-connected'), 'false');
    assert.equal(await page.locator('.project-btn').count(), 0);
    assert.ok(await page.locator('#token').isVisible(), 'the token field is offered again');
    assert.equal(new URL(page.url()).hash, '', 'the token is removed from the address bar');
    // exactly one request went out (the client's hello), and the worker refused it
    assert.equal(rpcCalls.length, 1);
    assert.equal((await rpcCalls[0].response()).status(), 401);
    assert.deepEqual(JSON.parse(rpcCalls[0].postData()).op, 'hello');
    await shot(page, '01-wrong-token');
  });

  await step('connect and create a project', async () => {
    await page.getByLabel('Token').fill(token); // controls are found by their labels
    await page.getByLabel('Token').press('Enter');
    await page.locator('#conn[data-state="online"]').waitFor(WAIT);
    assert.ok(await page.locator('#banner').isHidden());
    await page.locator('#new-project').fill('demo');
    await page.locator('#new-project').press('Enter');
    await page.locator('.project-btn[aria-current="true"][data-project="demo"]').waitFor(WAIT);
    await page.locator('#history[data-source="worker"]').waitFor({ state: 'attached', ...WAIT });
    assert.ok(await page.locator('#history-source').isHidden());
    assert.ok(await page.locator('#stop-btn').isHidden());
    await shot(page, '02-connected');
  });

  await step('every control has a label', async () => {
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, textarea, select, button')]
      .filter((c) => !(c.labels?.length || c.getAttribute('aria-label') || c.getAttribute('aria-labelledby')
        || (c.tagName === 'BUTTON' && c.textContent.trim())))
      .map((c) => c.outerHTML.slice(0, 80)));
    assert.deepEqual(unlabelled, []);
  });

  await step('write a file in the editor', async () => {
    await page.getByLabel('File', { exact: true }).fill('main.py');
    await page.getByLabel('File content').fill(PROGRAM);
    await page.getByLabel('File content').press('Control+s');
    await page.locator('#file-status', { hasText: 'Saved main.py' }).waitFor(WAIT);
    await page.locator('#file-tree .tree-file[data-path$="main.py"]').waitFor(WAIT);
    // read back through the page: clear the editor, open the file from the tree
    await page.locator('#editor').fill('');
    await page.locator('#file-tree .tree-file[data-path$="main.py"]').click();
    await page.locator('#file-status', { hasText: /^[^ ]*main\.py$/ }).waitFor(WAIT);
    assert.equal(await page.locator('#editor').inputValue(), PROGRAM);
  });

  await step('run a command: output streams before it ends, history shows its status', async () => {
    await page.getByLabel('Command', { exact: true }).fill('python3 main.py');
    await page.getByLabel('Command', { exact: true }).press('Enter');
    // the first line is on screen, in colour, while the command is still running
    await page.locator('#terminal .ansi-fg2', { hasText: 'step one' }).waitFor(WAIT);
    assert.equal(await page.locator('#run-status').getAttribute('data-status'), 'running');
    assert.doesNotMatch(await page.locator('#terminal').innerText(), /done:/);
    await shot(page, '03-streaming');
    await writeInSandbox('/home/user/go', 'released');
    await page.locator('#run-status[data-status="success"]').waitFor(WAIT);
    assert.match(await page.locator('#terminal').innerText(), /step one\ndone: released/);
    assert.match(await page.locator('#run-status').innerText(), /exit 0/);
    assert.equal(await page.locator('#run-status .cached').count(), 0);
    const entry = page.locator('#history .hist-item', { hasText: 'python3 main.py' }).first();
    await entry.waitFor(WAIT);
    assert.equal(await entry.getAttribute('data-status'), 'success');
    assert.match(await entry.innerText(), /exit 0/);
  });

  await step('run it again: served from the cache and marked cached', async () => {
    await page.locator('#command').press('Enter');
    await page.locator('#run-status .cached').waitFor(WAIT);
    assert.equal(await page.locator('#run-status').getAttribute('data-status'), 'success');
    assert.match(await page.locator('#terminal').innerText(), /done: released/);
    // the history shows the rerun on top, marked cached, beside the original run
    const top = page.locator('#history .hist-item').first();
    await page.locator('#history .hist-item[data-cached="true"]').first().waitFor(WAIT);
    assert.equal(await top.getAttribute('data-cached'), 'true');
    assert.match(await top.innerText(), /python3 main\.py[\s\S]*cached/);
    assert.equal(await page.locator('#history .hist-item:not([data-cached])', { hasText: 'python3 main.py' }).count(), 1);
    await shot(page, '04-cached');
  });

  await step('clear the cache: the next run executes again', async () => {
    await page.getByRole('button', { name: 'Clear cache' }).click();
    await page.locator('#history-status', { hasText: 'Cache cleared' }).waitFor(WAIT);
    await page.getByLabel('Command', { exact: true }).press('Enter');
    await page.locator('#run-status[data-status="success"]').waitFor(WAIT);
    assert.equal(await page.locator('#run-status .cached').count(), 0, 'not served from a cache');
    await page.locator('#history .hist-item:not([data-cached])', { hasText: 'python3 main.py' }).nth(1).waitFor(WAIT);
  });

  await step('reload: history and last output come from IndexedDB before any network answer', async () => {
    let release;
    const gate = new Promise((r) => { release = r; });
    let answered = 0;
    await page.route('**/v1/rpc', async (route) => {
      await gate;
      answered++;
      await route.continue();
    });
    try {
      await page.reload();
      await page.locator('#history .hist-item[data-status="success"]', { hasText: 'python3 main.py' }).first().waitFor(WAIT);
      await page.locator('#terminal', { hasText: 'done: released' }).waitFor(WAIT);
      await page.locator('.project-btn[aria-current="true"][data-project="demo"]').waitFor(WAIT);
      assert.equal(await page.locator('#history').getAttribute('data-source'), 'saved');
      assert.equal(answered, 0, 'nothing reached the worker yet');
      await shot(page, '05-reload-from-cache');
    } finally {
      release();
    }
    await page.locator('#conn[data-state="online"]').waitFor(WAIT);
    await page.unroute('**/v1/rpc');
    assert.ok(answered > 0);
  });

  await step('project settings', async () => {
    await page.locator('#set-name').fill('Demo app');
    await page.locator('#set-port').fill('8000');
    await page.locator('#set-json').fill('{"framework": "none", "tabs": 4}');
    await page.locator('#set-json').press('Tab');
    await page.locator('#settings-btn').click();
    await page.locator('#settings-status', { hasText: 'Saved.' }).waitFor(WAIT);
    await page.locator('.project-btn[data-project="demo"]', { hasText: 'Demo app' }).waitFor(WAIT);
    const res = await fetch(`${origin}/v1/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ v: 1, id: 't1', op: 'getProject', project: 'demo', args: {} }),
    }).then((r) => r.json());
    assert.equal(res.ok, true);
    assert.equal(res.result.name, 'Demo app');
    assert.equal(res.result.port, 8000);
    assert.deepEqual(res.result.settings, { framework: 'none', tabs: 4 });
  });

  await step('start a dev server and load its preview', async () => {
    await page.locator('#dev-port').fill('8000');
    const popupP = ctx.waitForEvent('page', WAIT);
    await page.locator('#dev-btn').click();
    const popup = await popupP;
    await page.locator('#preview-wrap:not([hidden])').waitFor(WAIT);
    const href = await page.locator('#preview-link').getAttribute('href');
    assert.match(href, /^http:\/\/8000-[a-z0-9]+\.localhost:\d+\/?$/);
    await popup.waitForURL(href, WAIT);
    await popup.locator('a', { hasText: 'main.py' }).waitFor(WAIT); // python's directory listing
    assert.equal(await popup.evaluate(() => window.opener), null, 'the preview cannot reach the page');
    await shot(popup, '06-preview');
    await popup.close();
    await shot(page, '07-dev-server');
  });

  // The processes panel: a <details>, closed until the user opens it; while open it refreshes.
  const processItem = (cmd) => page.locator('#process-list .proc-item', { has: page.locator('.proc-cmd', { hasText: cmd }) });

  // Stops the process listed as `cmd` with its Stop button: killProcess succeeds (the page says
  // "Stopped" only for an answer with killed: true, and the worker's record of the call says
  // so too), the row goes away, and the worker no longer lists the process.
  async function stopProcess(cmd, project) {
    const item = processItem(cmd);
    await item.waitFor(WAIT);
    const pid = Number(await item.getAttribute('data-pid'));
    assert.ok(pid > 0);
    await page.getByRole('button', { name: `Stop process ${pid}: ${cmd}` }).click();
    await page.locator('#processes-status', { hasText: `Stopped ${pid}` }).waitFor(WAIT);
    await page.locator(`#process-list .proc-item[data-pid="${pid}"]`).waitFor({ state: 'detached', ...WAIT });
    const hist = (await worker.rpc(token, { op: 'getHistory', project, args: { limit: 20 } })).body.result.items;
    const rec = hist.find((r) => r.op === 'killProcess' && r.input?.pid === pid);
    assert.equal(rec?.status, 'success', JSON.stringify(hist.slice(0, 3)));
    assert.equal(rec.killed ?? rec.result?.killed, true, JSON.stringify(rec));
    const procs = (await worker.rpc(token, { op: 'listProcesses', project })).body.result.processes;
    assert.ok(!procs.some((p) => p.pid === pid), JSON.stringify(procs));
    return pid;
  }

  await step('processes: the dev server is listed, Stop ends it, the list refreshes by itself', async () => {
    assert.equal(await page.locator('#processes-panel').getAttribute('open'), null, 'closed at first');
    await page.locator('#processes-panel > summary').click();
    await processItem('python3 -m http.server 8000').waitFor(WAIT);
    await shot(page, '07b-processes');
    await stopProcess('python3 -m http.server 8000', 'demo');
    await page.locator('#dev-status', { hasText: 'Stopped' }).waitFor(WAIT);
    assert.ok(await page.locator('#preview-wrap').isHidden(), 'no preview link to a stopped server');
    // a process started behind the page's back shows up by itself while the panel is open
    const r = await worker.rpc(token, { op: 'startDevServer', project: 'demo', args: { port: 8001 } });
    assert.equal(r.body.ok, true, JSON.stringify(r.body));
    await processItem('python3 -m http.server 8001').waitFor(WAIT);
    await stopProcess('python3 -m http.server 8001', 'demo');
    // closed: no more refreshes (later steps count on a quiet project queue)
    await page.locator('#processes-panel > summary').click();
    assert.equal(await page.locator('#processes-panel').getAttribute('open'), null);
  });

  await step('worker stopped: offline state with cached data', async () => {
    await page.evaluate(() => { window.__sameDocument = true; });
    await worker.stop({ keep: true }); // keep its database for the restart
    await page.locator('#history-refresh').click();
    await page.locator('#conn[data-state="offline"]').waitFor(WAIT);
    assert.match(await page.locator('#banner').innerText(), /Offline/);
    // the history was answered by the client's cache (SQLite in IndexedDB), marked stale
    await page.locator('#history[data-source="cache"]').waitFor({ state: 'attached', ...WAIT });
    assert.ok(await page.locator('#history-source').isVisible());
    await page.locator('#project-meta', { hasText: 'cached (offline)' }).waitFor(WAIT);
    assert.ok(await page.locator('#history .hist-item', { hasText: 'python3 main.py' }).count() > 0);
    assert.equal(await page.locator('#set-name').inputValue(), 'Demo app');
    assert.match(await page.locator('#terminal').innerText(), /done: released/);
    await shot(page, '08-offline');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, '09-offline-390');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('worker back: the page recovers without a reload', async () => {
    // same port (the page's origin) and same database
    worker = await startWorker({ ...workerOpts, port: first.port, db: first.db });
    await page.locator('#conn[data-state="online"]').waitFor(WAIT);
    assert.ok(await page.locator('#banner').isHidden());
    await page.locator('#history[data-source="worker"]').waitFor({ state: 'attached', ...WAIT });
    assert.ok(await page.locator('#history-source').isHidden(), 'no "cached copy" badge when online');
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
    await page.locator('#command').fill('printf "\\033[1;35mback\\033[0m\\n"');
    await page.locator('#command').press('Enter');
    await page.locator('#run-status[data-status="success"]').waitFor(WAIT);
    await page.locator('#terminal .ansi-fg5.ansi-bold', { hasText: 'back' }).waitFor(WAIT);
    await shot(page, '10-recovered');
  });

  await step('Esc stops a running command', async () => {
    const cmd = page.getByLabel('Command', { exact: true });
    await cmd.fill('echo waiting; exec sleep 300');
    await cmd.press('Enter');
    await page.locator('#terminal', { hasText: 'waiting' }).waitFor(WAIT);
    assert.equal(await page.locator('#run-status').getAttribute('data-status'), 'running');
    await cmd.press('Escape');
    await page.locator('#run-status[data-status="canceled"]').waitFor(WAIT);
    assert.ok(await page.locator('#run-btn').isEnabled(), 'the command box is free again');
    // the next command runs at once: the canceled one no longer holds the project's queue
    await cmd.fill('echo next');
    await cmd.press('Enter');
    await page.locator('#run-status[data-status="success"]').waitFor(WAIT);
    assert.match(await page.locator('#terminal').innerText(), /\$ echo next\nnext/);
    // ↑ recalls earlier commands, ↓ goes back
    await cmd.fill('');
    await cmd.press('ArrowUp');
    assert.equal(await cmd.inputValue(), 'echo next');
    await cmd.press('ArrowUp');
    assert.equal(await cmd.inputValue(), 'echo waiting; exec sleep 300');
    await cmd.press('ArrowDown');
    assert.equal(await cmd.inputValue(), 'echo next');
  });

  await step('390 px wide: one column, nothing wider than the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = await page.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      terminal: document.getElementById('terminal').getBoundingClientRect().width,
      history: document.getElementById('history').getBoundingClientRect().width,
    }));
    assert.ok(widths.doc <= 390, `page is ${widths.doc} px wide`);
    assert.ok(widths.terminal > 300 && widths.history > 300, JSON.stringify(widths));
    await shot(page, '11-narrow-390');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('a lost sandbox: the files come back, and the page says from when', async () => {
    // the worker keeps a snapshot of the project's files once it is quiet
    let info;
    for (let i = 0; i < 300; i++) {
      info = (await worker.rpc(token, { op: 'getProject', project: 'demo' })).body.result;
      if (info.snapshot?.takenAt && !info.snapshot.pending) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(info.snapshot?.takenAt && !info.snapshot.pending, JSON.stringify(info));
    const files = (await worker.rpc(token, { op: 'listDir', project: 'demo', args: {} })).body.result;
    // the sandbox disappears behind the worker's back
    const del = await fetch(`${sandboxd.url}/sandboxes/${info.sandboxId}`, { method: 'DELETE', headers: { 'X-API-KEY': sandboxd.apiKey } });
    assert.equal(del.status, 204);
    const cmd = page.getByLabel('Command', { exact: true });
    await cmd.fill('ls -A');
    await cmd.press('Enter');
    await page.locator('#banner[data-kind="restored"]').waitFor(WAIT);
    assert.match(await page.locator('#banner').innerText(), /Your files were restored from /);
    await page.locator('#run-status', { hasText: 'files restored from' }).waitFor(WAIT);
    await page.locator('#project-meta', { hasText: 'restored' }).waitFor(WAIT);
    const after = (await worker.rpc(token, { op: 'listDir', project: 'demo', args: {} })).body.result;
    assert.deepEqual(after.entries?.map((e) => e.name).sort(), files.entries?.map((e) => e.name).sort());
    await shot(page, '12-restored');
  });

  await step('set up: a dropped folder appears in the file tree', async () => {
    await page.getByLabel('New project id').fill('starter');
    await page.getByLabel('New project id').press('Enter');
    await page.locator('.project-btn[aria-current="true"][data-project="starter"]').waitFor(WAIT);
    // A drop as Chromium delivers one for a folder: a DataTransfer item whose
    // webkitGetAsEntry() is a directory entry, read in batches. (A real drag from the desktop
    // cannot be made in headless Chromium; these are the same FileSystemEntry calls.)
    const drop = (types) => page.evaluate((types) => {
      const file = (fullPath, parts) => ({
        isFile: true, isDirectory: false, name: fullPath.split('/').pop(), fullPath,
        file: (ok) => setTimeout(() => ok(new File(parts, fullPath.split('/').pop()))),
      });
      const dir = (fullPath, kids) => ({
        isFile: false, isDirectory: true, name: fullPath.split('/').pop(), fullPath,
        createReader() {
          let i = 0;
          return { readEntries: (ok) => setTimeout(() => { ok(kids.slice(i, i + 2)); i += 2; }) };
        },
      });
      const root = dir('/dropped', [
        file('/dropped/README.md', ['# dropped\n']),
        dir('/dropped/src', [
          file('/dropped/src/app.py', ['print("from a dropped folder")\n']),
          file('/dropped/src/logo.bin', [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 0xff])]),
        ]),
        dir('/dropped/node_modules', [file('/dropped/node_modules/left-out.js', ['x'])]),
        file('/dropped/latin1.txt', [new Uint8Array([0x63, 0x61, 0x66, 0xe9])]),
      ]);
      const dt = { types: ['Files'], items: [{ kind: 'file', webkitGetAsEntry: () => root }], files: [], dropEffect: 'none' };
      for (const type of types) {
        const ev = new Event(type, { bubbles: true, cancelable: true });
        Object.defineProperty(ev, 'dataTransfer', { value: dt });
        document.getElementById('editor').dispatchEvent(ev);
        if (!ev.defaultPrevented) throw new Error(`${type} was not taken by the page`);
      }
    }, types);
    await drop(['dragenter', 'dragover']);
    await page.locator('#drop-overlay[data-allowed="true"]', { hasText: 'add them to starter' }).waitFor(WAIT);
    await shot(page, '13-drop-overlay');
    await drop(['drop']);
    assert.ok(await page.locator('#drop-overlay').isHidden());
    await page.locator('#setup-status', { hasText: 'Wrote 4 files (folder dropped)' }).waitFor(WAIT);
    assert.match(await page.locator('#setup-status').innerText(), /left out dropped\/node_modules\//);
    // in the tree: the folder, and inside it what was dropped
    await page.locator('#file-tree .tree-dir[data-path="/home/user/dropped"]').click();
    await page.locator('#file-tree .tree-file[data-path="/home/user/dropped/README.md"]').waitFor(WAIT);
    await page.locator('#file-tree .tree-dir[data-path="/home/user/dropped/src"]').click();
    await page.locator('#file-tree .tree-file[data-path="/home/user/dropped/src/app.py"]').waitFor(WAIT);
    await page.locator('#file-tree .tree-file[data-path="/home/user/dropped/src/logo.bin"]').waitFor(WAIT);
    assert.equal(await page.locator('#file-tree [data-path*="node_modules"]').count(), 0);
    // text went as text, the rest as bytes (base64), unchanged
    const read = async (p, encoding) => (await worker.rpc(token, { op: 'readFile', project: 'starter', args: { path: p, encoding } })).body.result.content;
    assert.equal(await read('dropped/src/app.py', 'utf8'), 'print("from a dropped folder")\n');
    assert.equal(await read('dropped/src/logo.bin', 'base64'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 0xff]).toString('base64'));
    assert.equal(await read('dropped/latin1.txt', 'base64'), Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString('base64'));
    await shot(page, '14-dropped-folder');
  });

  await step('set up: a folder picked with "Add folder…" (and the overwrite question)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-pick-'));
    try {
      fs.mkdirSync(path.join(dir, 'picked/sub'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'picked/index.html'), '<h1>picked</h1>\n');
      fs.writeFileSync(path.join(dir, 'picked/sub/data.txt'), 'data\n');
      await page.getByLabel('Add folder…').setInputFiles(path.join(dir, 'picked'));
      await page.locator('#setup-status', { hasText: 'Wrote 2 files (folder picked)' }).waitFor(WAIT);
      await page.locator('#file-tree .tree-dir[data-path="/home/user/picked"]').click();
      await page.locator('#file-tree .tree-file[data-path="/home/user/picked/index.html"]').waitFor(WAIT);
      // the same folder again: asked first; Cancel changes nothing
      await page.getByLabel('Add folder…').setInputFiles(path.join(dir, 'picked'));
      const confirm = page.getByRole('group', { name: 'Confirm overwriting files' });
      await confirm.waitFor(WAIT);
      assert.match(await confirm.innerText(), /picked exists already/);
      await confirm.getByRole('button', { name: 'Cancel' }).click();
      await page.locator('#setup-status', { hasText: 'Nothing was changed.' }).waitFor(WAIT);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  await step('set up: a template\'s install output streams, then its dev server is offered, listed and stopped', async () => {
    // every change of the output area, with the status line at that moment
    await page.evaluate(() => {
      window.__outputSeen = [];
      const status = document.getElementById('run-status');
      new MutationObserver(() => window.__outputSeen.push({
        text: document.getElementById('terminal').innerText, status: status.dataset.status,
      })).observe(document.getElementById('terminal'), { childList: true, subtree: true, characterData: true });
    });
    await page.getByLabel('Template').selectOption('node');
    await page.getByRole('button', { name: 'Apply template' }).click();
    await page.locator('#terminal .prompt-line', { hasText: 'npm install' }).waitFor(WAIT);
    await page.locator('#run-status[data-status="success"]').waitFor(WAIT);
    await page.locator('#setup-status', { hasText: 'Wrote 2 files (template Node + dev server); installed.' }).waitFor(WAIT);
    assert.match(await page.locator('#terminal').innerText(), /up to date/);
    // npm's output was on screen while the install was still running (streamed, not at the end)
    const seen = await page.evaluate(() => window.__outputSeen);
    assert.ok(seen.some((x) => /up to date/.test(x.text) && x.status === 'running'), JSON.stringify(seen));
    await page.locator('#file-tree .tree-file[data-path="/home/user/package-lock.json"]').waitFor(WAIT);
    await page.locator('#file-status', { hasText: 'server.js' }).waitFor(WAIT);
    assert.match(await page.locator('#editor').inputValue(), /createServer/);
    await page.locator('#history .hist-item', { hasText: 'setup (2 files): npm install' }).first().waitFor(WAIT);
    // the offer starts the dev server; its preview is the template's page
    const offer = page.getByRole('button', { name: 'Start the dev server: node server.js on port 3000' });
    await offer.waitFor(WAIT);
    await shot(page, '15-template-installed');
    const popupP = ctx.waitForEvent('page', WAIT);
    await offer.click();
    const popup = await popupP;
    await page.locator('#preview-wrap:not([hidden])').waitFor(WAIT);
    const href = await page.locator('#preview-link').getAttribute('href');
    assert.match(href, /^http:\/\/3000-[a-z0-9]+\.localhost:\d+\/?$/);
    await popup.waitForURL(href, WAIT);
    await popup.locator('h1', { hasText: 'Hello from Node' }).waitFor(WAIT);
    await popup.close();
    // listed in the processes panel, and stopped from there
    await page.locator('#processes-panel > summary').click();
    await processItem('node server.js').waitFor(WAIT);
    await shot(page, '16-template-processes');
    await stopProcess('node server.js', 'starter');
    await page.locator('#processes-panel > summary').click();
    // done with this project
    await page.getByRole('button', { name: 'Delete project starter' }).click();
    await page.getByRole('group', { name: 'Confirm deleting starter' }).getByRole('button', { name: 'Delete' }).click();
    await page.locator('.project-btn[data-project="starter"]').waitFor({ state: 'detached', ...WAIT });
  });

  await step('the interactive terminal: python3, Ctrl-C, resize, the end of the shell', async () => {
    await page.getByRole('button', { name: 'Open terminal' }).click();
    const panel = page.locator('#shell-panel');
    await page.locator('#shell-panel[data-state="connected"]').waitFor(WAIT);
    const screen = page.locator('#shell .xterm-rows');
    const typeLine = async (s) => { await page.keyboard.type(s); await page.keyboard.press('Enter'); };
    // Typing ahead of a program that is not reading yet is racy in any terminal: wait for
    // the shell's prompt (counted) or the program's own prompt before each line.
    const prompts = () => page.evaluate(() =>
      (document.querySelector('#shell .xterm-rows')?.innerText.match(/user@e2b:~\$/g) ?? []).length);
    const waitPrompts = (n) => page.waitForFunction((k) =>
      (document.querySelector('#shell .xterm-rows')?.innerText.match(/user@e2b:~\$/g) ?? []).length >= k, n, WAIT);
    await waitPrompts(1);
    await page.locator('#shell .xterm-helper-textarea').focus();
    await typeLine('python3');
    await screen.filter({ hasText: '>>>' }).waitFor(WAIT);
    await typeLine('print(6*7)');
    await page.waitForFunction(() => /\n42\n/.test(document.querySelector('#shell .xterm-rows').innerText), null, WAIT);
    let n = await prompts();
    await typeLine('exit()');
    await waitPrompts(n + 1);
    n = await prompts();
    await typeLine('sleep 100');
    await screen.filter({ hasText: 'sleep 100' }).waitFor(WAIT);
    await page.keyboard.press('Control+C');
    await waitPrompts(n + 1); // Ctrl-C gave the prompt back
    await typeLine('echo after-ctrl-c');
    await page.waitForFunction(() => /echo after-ctrl-c\s*\nafter-ctrl-c/.test(document.querySelector('#shell .xterm-rows').innerText), null, WAIT);
    assert.match(await screen.innerText(), /sleep 100\s*\n\^C[\s\S]*after-ctrl-c/);
    // the size follows the window: stty sees what xterm shows
    const before = await panel.getAttribute('data-cols');
    await page.setViewportSize({ width: 1000, height: 800 });
    await page.waitForFunction((b) => document.getElementById('shell-panel').dataset.cols !== b, before, WAIT);
    const cols = await panel.getAttribute('data-cols');
    const rows = await panel.getAttribute('data-rows');
    await typeLine('stty size');
    await screen.filter({ hasText: `${rows} ${cols}` }).waitFor(WAIT);
    await shot(page, '13-terminal');
    await page.setViewportSize({ width: 1280, height: 800 });
    await typeLine('exit');
    await page.locator('#shell-panel[data-state="ended"]').waitFor(WAIT);
    assert.match(await page.locator('#shell-status').innerText(), /The shell ended/);
  });

  await step('two tabs share cached results: the local cache images are merged', async () => {
    const execs = (calls) => calls.filter((r) => JSON.parse(r.postData() || '{}').op === 'exec').length;
    const savedAfter = async (p, before) => p.waitForFunction((b) => document.getElementById('app').dataset.cacheSavedAt !== b, before, WAIT);
    const run = async (p, cmd) => {
      const box = p.getByLabel('Command', { exact: true });
      await box.fill(cmd);
      await box.press('Enter');
      await p.locator('#run-status[data-status="success"]').waitFor(WAIT);
    };
    // tab A (this page) runs a command in 'demo'; its local cache is saved
    let before = await page.locator('#app').getAttribute('data-cache-saved-at');
    await run(page, 'echo from-tab-a');
    await savedAfter(page, before);
    // tab B: the same user in a second tab of the browser
    const b = await ctx.newPage();
    const bCalls = [];
    b.on('request', (r) => { if (r.url().endsWith('/v1/rpc')) bCalls.push(r); });
    await b.goto(`${origin}/#token=${token}`);
    await b.locator('#conn[data-state="online"]').waitFor(WAIT);
    await b.locator('.project-btn[data-project="demo"]').click();
    await b.locator('.project-btn[aria-current="true"][data-project="demo"]').waitFor(WAIT);
    let sent = execs(bCalls);
    await b.getByLabel('Command', { exact: true }).fill('echo from-tab-a');
    await b.getByLabel('Command', { exact: true }).press('Enter');
    await b.locator('#run-status .cached').waitFor(WAIT);
    assert.match(await b.locator('#terminal').innerText(), /from-tab-a/);
    assert.equal(execs(bCalls), sent, 'a local hit in tab B: no exec request');
    // the reverse: tab B caches a command of another project; tab A sees it after a reload
    await b.getByLabel('New project id').fill('tabb');
    await b.getByLabel('New project id').press('Enter');
    await b.locator('.project-btn[aria-current="true"][data-project="tabb"]').waitFor(WAIT);
    before = await b.locator('#app').getAttribute('data-cache-saved-at');
    await run(b, 'echo from-tab-b');
    await savedAfter(b, before);
    const aCalls = [];
    const onReq = (r) => { if (r.url().endsWith('/v1/rpc')) aCalls.push(r); };
    page.on('request', onReq);
    await page.reload();
    await page.locator('#conn[data-state="online"]').waitFor(WAIT);
    await page.locator('.project-btn[data-project="tabb"]').click();
    await page.locator('.project-btn[aria-current="true"][data-project="tabb"]').waitFor(WAIT);
    sent = execs(aCalls);
    await page.getByLabel('Command', { exact: true }).fill('echo from-tab-b');
    await page.getByLabel('Command', { exact: true }).press('Enter');
    await page.locator('#run-status .cached').waitFor(WAIT);
    assert.equal(execs(aCalls), sent, 'a local hit in tab A: no exec request');
    page.off('request', onReq);
    await b.close();
    await page.getByRole('button', { name: 'Delete project tabb' }).click();
    await page.getByRole('group', { name: 'Confirm deleting tabb' }).getByRole('button', { name: 'Delete' }).click();
    await page.locator('.project-btn[data-project="tabb"]').waitFor({ state: 'detached', ...WAIT });
    await page.locator('.project-btn[data-project="demo"]').click();
    await page.locator('.project-btn[aria-current="true"][data-project="demo"]').waitFor(WAIT);
  });

  await step('delete a project', async () => {
    await page.getByLabel('New project id').fill('scratch');
    await page.getByLabel('New project id').press('Enter');
    await page.locator('.project-btn[aria-current="true"][data-project="scratch"]').waitFor(WAIT);
    await page.getByRole('button', { name: 'Delete project scratch' }).click();
    await page.getByRole('group', { name: 'Confirm deleting scratch' }).getByRole('button', { name: 'Delete' }).click();
    await page.locator('.project-btn[data-project="scratch"]').waitFor({ state: 'detached', ...WAIT });
    await page.locator('.project-btn[aria-current="true"][data-project="demo"]').waitFor(WAIT);
    const res = await worker.rpc(token, { op: 'listProjects', args: {} });
    assert.deepEqual(res.body.result.projects.map((p) => p.projectId), ['demo']);
  });

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  assert.deepEqual(foreign, [], 'no external network resources');
  assert.ok(rpcCalls.length > 0);
});
