// tests/lib/with-postgres.mjs: runs a command with a PostgreSQL server of its own.
//
//   node tests/lib/with-postgres.mjs -- COMMAND ARGS...
//
// Starts a server (tests/lib/postgres.mjs), runs COMMAND with CC_TEST_PG_URI set to the
// server's base URI (postgresql://postgres@127.0.0.1:PORT; the command creates its own
// databases), stops the server and exits with the command's status.
import { spawnSync } from 'node:child_process';
import { startPostgres } from './postgres.mjs';

const i = process.argv.indexOf('--');
const argv = i >= 0 ? process.argv.slice(i + 1) : [];
if (!argv.length) {
  console.error('usage: with-postgres.mjs -- COMMAND ARGS...');
  process.exit(2);
}
const pg = await startPostgres();
const r = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit', env: { ...process.env, CC_TEST_PG_URI: pg.base } });
pg.destroy();
process.exit(r.status ?? 1);
