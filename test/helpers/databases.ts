import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, migrate, type Database, type Dialect } from '../../src/db/database.js';

/**
 * The suite runs every database test on SQLite (a real file in a temp dir) and, when
 * KENSHIN_TEST_DATABASE_URL points at a PostgreSQL server, on a fresh PostgreSQL database too.
 */
export function testDialects(): Dialect[] {
  return process.env.KENSHIN_TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** A fresh database URL for PostgreSQL, or undefined for SQLite (whose file lives in dataDir). */
export async function freshDatabaseUrl(dialect: Dialect): Promise<{ url: string | undefined; drop(): Promise<void> }> {
  if (dialect === 'sqlite') return { url: undefined, drop: async () => {} };
  const admin = process.env.KENSHIN_TEST_DATABASE_URL!;
  const name = `kenshin_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        // An autovacuum worker on the database cannot be ended by a role without pg_signal_backend
        // (.ci/run grants it); it finishes within moments, so a few retries cover other setups.
        for (let attempt = 1; ; attempt++) {
          try {
            await c.query(`drop database if exists ${name} with (force)`);
            break;
          } catch (e) {
            if ((e as { code?: string }).code !== '42501' || attempt === 20) throw e;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}

export async function openTestDatabase(dialect: Dialect, dir: string): Promise<Database & { drop(): Promise<void> }> {
  const fresh = await freshDatabaseUrl(dialect);
  const database = openDatabase({ url: fresh.url, sqliteFile: path.join(dir, 'test.sqlite'), create: true });
  await migrate(database);
  return {
    ...database,
    async drop() {
      await database.close();
      await fresh.drop();
    },
  };
}
