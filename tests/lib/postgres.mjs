// tests/lib/postgres.mjs: a real PostgreSQL server of its own for a test or a benchmark.
//
//   const pg = await startPostgres();          // initdb + pg_ctl start in a temporary directory
//   const uri = pg.createDatabase();           // a fresh database: postgresql://postgres@127.0.0.1:PORT/cc_N
//   pg.stop(); pg.start(); pg.kill();          // fault tests: stop (fast), start again, SIGKILL
//   pg.destroy();                              // stop and remove the directory (also at exit)
//
// Debian's server binaries (package postgresql; pg_config --bindir).  Run as root, the server
// runs as the `postgres` user (initdb refuses root).  It listens on 127.0.0.1 on a free port
// (trust authentication, loopback only) and on a socket in its own directory.  pg_ctl -w waits
// until the server accepts connections: no sleeps.
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bindir = () => execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pgUser() {
  if (process.getuid() !== 0) return null;
  const out = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
  const gid = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
  return { uid: Number(out), gid: Number(gid) };
}

const live = new Set();
process.on('exit', () => {
  for (const pg of live) pg.destroy();
});

export async function startPostgres(opts = {}) {
  const bin = bindir();
  const dir = mkdtempSync(join(opts.tmpDir ?? tmpdir(), 'cc-pg-'));
  const data = join(dir, 'data');
  const owner = pgUser();
  if (owner) chownSync(dir, owner.uid, owner.gid);
  // As root, every server binary runs as postgres (runuser); otherwise as ourselves.
  const run = (prog, args, extra = {}) => {
    const file = owner ? 'runuser' : join(bin, prog);
    const argv = owner ? ['-u', 'postgres', '--', join(bin, prog), ...args] : args;
    return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...extra });
  };
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions', '-N']);
  const port = opts.port ?? (await freePort());
  appendFileSync(
    join(data, 'postgresql.conf'),
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      `max_connections = ${opts.maxConnections ?? 300}`,
      `shared_buffers = 64MB`,
      `fsync = ${opts.fsync === false ? 'off' : 'on'}`,
      `logging_collector = off`,
      '',
    ].join('\n'),
  );
  const log = join(dir, 'server.log');
  writeFileSync(log, '');
  if (owner) chownSync(log, owner.uid, owner.gid);
  let dbn = 0;
  let running = false;
  const pg = {
    dir,
    port,
    log,
    base: `postgresql://postgres@127.0.0.1:${port}`,
    uri(db = 'postgres') {
      return `${pg.base}/${db}`;
    },
    start() {
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
      running = true;
    },
    /** Fast shutdown: clients are disconnected, the server is down until start(). */
    stop() {
      if (!running) return;
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      running = false;
    },
    /** SIGKILL of the postmaster (a crash): start() recovers from the WAL. */
    kill() {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      let kids = [];
      try {
        kids = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
      } catch {
        /* no children */
      }
      for (const p of [pid, ...kids]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      // Wait until every one of them is gone (tail --pid returns when the process exits).
      for (const p of [pid, ...kids]) execFileSync('timeout', ['20', 'tail', `--pid=${p}`, '-f', '/dev/null']);
      running = false;
    },
    /** psql -c SQL against db; returns stdout (tuples only, unaligned). */
    sql(query, db = 'postgres') {
      return execFileSync(join(bin, 'psql'), ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', pg.uri(db), '-c', query], {
        encoding: 'utf8',
      });
    },
    /** A fresh, empty database; returns its URI. */
    createDatabase(name) {
      const db = name ?? `cc_${process.pid}_${++dbn}`;
      pg.sql(`CREATE DATABASE ${db}`);
      return pg.uri(db);
    },
    destroy() {
      live.delete(pg);
      try {
        pg.stop();
      } catch {
        /* already down */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(pg);
  pg.start();
  return pg;
}
