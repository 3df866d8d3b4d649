import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Several `serve` processes share one SQLite file (KENSHIN_PROCESSES). A transaction that reads and
 * then writes while another process commits in between must wait, not fail: with SQLite's default
 * deferred BEGIN the later writer gets SQLITE_BUSY at once (its read snapshot is stale, so
 * busy_timeout cannot help), and a renewal or a login would fail with a 500.
 */
test('a read-then-write transaction in another process waits for ours instead of failing', async () => {
  const file = path.join(tempDir(), 'shared.sqlite');
  const database = openDatabase({ url: undefined, sqliteFile: file, create: true });
  try {
    await sql`create table counter (n integer not null)`.execute(database.db);
    await sql`insert into counter (n) values (0)`.execute(database.db);

    const other = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'hold-transaction.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const inside = new Promise<void>((resolve) =>
      other.stdout.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        if (out.includes('inside')) resolve();
      }),
    );
    const exited = new Promise<void>((resolve) => other.on('exit', () => resolve()));
    await inside;
    // The other process is inside its transaction (it has read n); we read and write n meanwhile.
    await database.db.transaction().execute(async (trx) => {
      const r = await sql<{ n: number }>`select n from counter`.execute(trx);
      await sql`update counter set n = ${r.rows[0]!.n + 1}`.execute(trx);
    });
    await exited;
    assert.equal(out.trim().split('\n').at(-1), 'committed', out);
    const r = await sql<{ n: number }>`select n from counter`.execute(database.db);
    assert.equal(r.rows[0]!.n, 2, 'both increments, one after the other');
  } finally {
    await database.close();
  }
});
