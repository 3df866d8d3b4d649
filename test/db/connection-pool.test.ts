import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { sql } from 'kysely';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { freshDatabaseUrl, testDialects } from '../helpers/databases.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';

/**
 * Each `serve` process holds its own PostgreSQL pool: KENSHIN_DB_POOL bounds it, its default keeps
 * the whole service at one process's 10 connections whatever KENSHIN_PROCESSES is, and `kenshin config check`
 * compares processes × pool with what the server accepts.
 */
test('KENSHIN_DB_POOL: the default shares the 10 connections of one process out over the processes; bad values name the setting', () => {
  assert.equal(loadConfig({}, { KENSHIN_PROCESSES: '1' }).dbPool, 10);
  assert.equal(loadConfig({}, { KENSHIN_PROCESSES: '2' }).dbPool, 5);
  assert.equal(loadConfig({}, { KENSHIN_PROCESSES: '4' }).dbPool, 2);
  assert.equal(loadConfig({}, { KENSHIN_PROCESSES: '64' }).dbPool, 2);
  assert.equal(loadConfig({}, { KENSHIN_PROCESSES: '64', KENSHIN_DB_POOL: '1' }).dbPool, 1);
  assert.throws(() => loadConfig({}, { KENSHIN_DB_POOL: '0' }), /KENSHIN_DB_POOL: expected a whole number from 1 to 1000, got "0"/);
});

for (const dialect of testDialects().filter((d) => d === 'postgres')) {
  describe('the PostgreSQL pool of one process', async () => {
    const fresh = await freshDatabaseUrl(dialect);
    after(() => fresh.drop());

    test('never opens more than KENSHIN_DB_POOL connections, however many queries wait', async () => {
      const database = openDatabase({ url: fresh.url, sqliteFile: '/nonexistent', poolSize: 3 });
      try {
        const pids = await Promise.all(Array.from({ length: 8 }, () => sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(0.2)`.execute(database.db).then((r) => r.rows[0]!.pid)));
        assert.equal(new Set(pids).size, 3);
      } finally {
        await database.close();
      }
    });

    test('config check: processes × pool against max_connections', async () => {
      const dataDir = path.join(tempDir(), 'data');
      const env = { KENSHIN_DATA_DIR: dataDir, KENSHIN_DATABASE_URL: fresh.url!, KENSHIN_LOG_LEVEL: 'silent' };
      assert.equal((await kenshin(['init'], { env })).code, 0);
      const fits = await kenshin(['config', 'check'], { env: { ...env, KENSHIN_PROCESSES: '2' } });
      assert.match(fits.stdout, /^ok {4}KENSHIN_DB_POOL: 2 serve process\(es\) × KENSHIN_DB_POOL 5 = up to 10 connections; the server takes \d+/m);
      const tooMany = await kenshin(['config', 'check'], { env: { ...env, KENSHIN_PROCESSES: '8', KENSHIN_DB_POOL: '1000' } });
      assert.notEqual(tooMany.code, 0);
      assert.match(tooMany.stdout, /^error KENSHIN_DB_POOL: 8 serve process\(es\) × KENSHIN_DB_POOL 1000 = up to 8000 connections; .*lower KENSHIN_DB_POOL or KENSHIN_PROCESSES, or raise max_connections/m);
    });
  });
}
