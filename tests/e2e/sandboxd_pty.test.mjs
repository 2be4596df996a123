// PTYs: the official E2B SDK 2.51.0 (unchanged, `sandbox.pty.*`) against a real
// codecanvas-sandboxd with real bubblewrap sandboxes.  Every wait is on terminal output (a
// marker the shell computes, e.g. `echo M_$((40+2))` prints M_42 while the terminal's echo of
// the typed line shows only the expression), never on time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { CommandExitError, Sandbox } from 'e2b-2.51';

import { startSandboxd } from '../lib/sandboxd.mjs';
import { useSandboxd } from '../lib/sdk.mjs';

let sd;
let sbx;

before(async () => {
  sd = await startSandboxd();
  useSandboxd(sd);
  sbx = await Sandbox.create({ timeoutMs: 300_000 });
});

after(async () => {
  await sbx?.kill().catch(() => {});
  // a clean exit also means no AddressSanitizer/LeakSanitizer report in the sanitizer build
  const r = await sd?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, sd.stderr);
});

/** Terminal output collected from onData, with waits for text to appear in it.  `text` is
 * the output without escape sequences (bash's bracketed-paste switches) and without the \r
 * the terminal adds before each \n (ONLCR); `raw` is what arrived. */
function terminal() {
  const decoder = new TextDecoder();
  const t = {
    raw: '',
    get text() {
      return t.raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
    },
    /** A position to search from for output that comes next (a little early: an escape
     * sequence split across chunks is only stripped once complete). */
    mark() {
      return Math.max(0, t.text.length - 16);
    },
    waiters: [],
    onData(bytes) {
      assert.ok(bytes instanceof Uint8Array);
      t.raw += decoder.decode(bytes, { stream: true });
      t.waiters = t.waiters.filter((w) => !w());
    },
    /** Resolves once `what` (string or RegExp) occurs after offset `from`; fails the test
     * (never hangs it) if it has not after 30 s. */
    waitFor(what, from = 0) {
      const found = () => {
        const text = t.text;
        return typeof what === 'string' ? text.indexOf(what, from) >= 0 : what.test(text.slice(from));
      };
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`terminal never showed ${what}; it shows:\n${JSON.stringify(t.raw)}`)),
          30_000,
        );
        const check = () => {
          if (!found()) return false;
          clearTimeout(timer);
          resolve(t.text);
          return true;
        };
        if (!check()) t.waiters.push(check);
      });
    },
  };
  t.onData = t.onData.bind(t);
  return t;
}

const enc = new TextEncoder();
const type = (pid, s) => sbx.pty.sendInput(pid, enc.encode(s));

/** A pty shell, ready for input (it answered a first command). */
async function shell(opts = {}) {
  const term = terminal();
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData, ...opts });
  await type(h.pid, 'echo READY_$((20+1))\n');
  await term.waitFor('READY_21');
  return { h, term };
}

describe('pty', () => {
  test('tty is /dev/pts/N, job control works, stty size follows create and resize', async () => {
    const { h, term } = await shell({ cols: 100, rows: 30, envs: { FOO: 'bar' } });
    try {
      assert.ok(h.pid > 1);
      let from = term.mark();
      await type(h.pid, 'tty; stty size; echo "$TERM $FOO"; echo M_$((40+2))\n');
      const out = (await term.waitFor('M_42', from)).slice(from);
      assert.match(out, /\n\/dev\/pts\/\d+\n/);
      assert.match(out, /\n30 100\n/);
      assert.match(out, /\nxterm-256color bar\n/);
      assert.match(term.raw, /\/dev\/pts\/\d+\r\n/); // ONLCR: a real terminal's line discipline
      assert.doesNotMatch(term.text, /no job control/);

      await sbx.pty.resize(h.pid, { cols: 132, rows: 50 });
      from = term.mark();
      await type(h.pid, 'stty size; echo N_$((40+3))\n');
      const out2 = (await term.waitFor('N_43', from)).slice(from);
      assert.match(out2, /\n50 132\n/);

      // the SDK lists it like any process: bash -i -l with the envs it sent (TERM etc.)
      const listed = (await sbx.commands.list()).find((p) => p.pid === h.pid);
      assert.ok(listed, 'pty listed');
      assert.equal(listed.cmd, '/bin/bash');
      assert.deepEqual(listed.args, ['-i', '-l']);
      assert.equal(listed.envs.TERM, 'xterm-256color');
      assert.equal(listed.envs.FOO, 'bar');
    } finally {
      await h.kill();
    }
  });

  test('typed input reaches the process; Ctrl-C interrupts a running sleep', async () => {
    const { h, term } = await shell();
    try {
      let from = term.mark();
      await type(h.pid, 'echo hi\n');
      await term.waitFor(/echo hi\nhi\n/, from); // the terminal's echo, then the output

      // input read by a program, not only by the shell
      from = term.mark();
      await type(h.pid, 'read -r v; echo "got:$v"\n');
      await type(h.pid, 'typed words\n');
      await term.waitFor('got:typed words', from);

      // The marker is printed by the foreground job itself, so it owns the terminal when
      // Ctrl-C arrives; the shell is back (and answers) long before 1000 s.
      from = term.mark();
      await type(h.pid, "bash -c 'echo RUNNING_$((6*7)); exec sleep 1000'\n");
      await term.waitFor('RUNNING_42', from);
      await type(h.pid, '\x03');
      await term.waitFor('^C', from);
      await type(h.pid, 'echo "status $?"; echo BACK_$((3+4))\n');
      const out = (await term.waitFor('BACK_7', from)).slice(from);
      assert.match(out, /status 130/); // 128 + SIGINT
      const sleeping = await sbx.commands.run('pgrep -x sleep || echo none');
      assert.equal(sleeping.stdout.trim(), 'none');
    } finally {
      await h.kill();
    }
  });

  test('a 3 MB flood through the terminal arrives complete (back-pressure, nothing lost)', async () => {
    // Counted as bytes, with only a short tail kept as text (the text of 3 MB is not needed).
    let zs = 0;
    let tail = '';
    let done;
    const finished = new Promise((resolve) => (done = resolve));
    const decoder = new TextDecoder();
    const h = await sbx.pty.create({
      cols: 80,
      rows: 24,
      onData: (bytes) => {
        for (const b of bytes) if (b === 0x5a) zs++; // 'Z', typed below only as \132
        tail = (tail + decoder.decode(bytes, { stream: true })).slice(-64);
        if (tail.includes('DONE_4')) done();
      },
    });
    try {
      await type(h.pid, "head -c 3000000 /dev/zero | tr '\\0' '\\132'; echo; echo DONE_$((2+2))\n");
      await finished;
      assert.equal(zs, 3_000_000);
    } finally {
      await h.kill();
    }
  });

  test('pty.kill ends it with signal: killed; a second kill finds nothing', async () => {
    const { h } = await shell();
    assert.equal(await sbx.pty.kill(h.pid), true);
    await assert.rejects(h.wait(), (e) => {
      assert.ok(e instanceof CommandExitError, String(e));
      assert.equal(e.exitCode, -1);
      assert.match(e.error, /signal: killed/);
      return true;
    });
    assert.ok(!(await sbx.commands.list()).some((p) => p.pid === h.pid));
    assert.equal(await sbx.pty.kill(h.pid), false);
  });

  test('exit ends the stream with its exit code', async () => {
    const { h } = await shell();
    await type(h.pid, 'exit 3\n');
    await assert.rejects(h.wait(), (e) => e instanceof CommandExitError && e.exitCode === 3);
  });

  test('pty.connect reattaches and gets later output', async () => {
    const first = await shell();
    const pid = first.h.pid;
    try {
      await first.h.disconnect();
      const again = terminal();
      const h2 = await sbx.pty.connect(pid, { onData: again.onData });
      assert.equal(h2.pid, pid);
      await type(pid, 'echo LATER_$((5*5))\n');
      await again.waitFor('LATER_25');
      assert.ok(!first.term.text.includes('LATER_25'), 'the disconnected handle got no more output');
      // the reattached handle also sees the end
      assert.equal(await sbx.pty.kill(pid), true);
      await assert.rejects(h2.wait(), (e) => e instanceof CommandExitError && e.exitCode === -1);
    } finally {
      await sbx.pty.kill(pid);
    }
  });

  test('resize and pty input on a process without a pty fail as envd does', async () => {
    const h = await sbx.commands.run('sleep 1000', { background: true });
    try {
      await assert.rejects(sbx.pty.resize(h.pid, { cols: 10, rows: 10 }), /tty not assigned to process/);
      await assert.rejects(type(h.pid, 'x'), /tty not assigned to process/);
      await assert.rejects(sbx.pty.resize(999999, { cols: 10, rows: 10 }), /process with pid 999999 not found/);
    } finally {
      await h.kill();
    }
  });
});
