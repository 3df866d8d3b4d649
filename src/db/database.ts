import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, sql, PostgresDialect, SqliteAdapter, SqliteDialect, type DialectAdapter, type Migration, type MigrationProvider, type SqliteDatabase as SqliteDialectDatabase } from 'kysely';
import type { Schema } from './schema.js';
import * as m001 from './migrations/001_initial.js';
import * as m002 from './migrations/002_portal.js';
import * as m003 from './migrations/003_crl.js';
import * as m004 from './migrations/004_reminders.js';
import * as m005 from './migrations/005_deliveries.js';
import * as m006 from './migrations/006_revoked_index.js';
import * as m007 from './migrations/007_tenant_code_ci.js';
import * as m008 from './migrations/008_handovers.js';
import * as m009 from './migrations/009_login_window.js';
import * as m011 from './migrations/011_open_certificates_index.js';
import * as m012 from './migrations/012_certificate_imports.js';
import * as m013 from './migrations/013_onboarding.js';
import * as m014 from './migrations/014_onboarding_jobs.js';
import * as m015 from './migrations/015_save_screen_and_clients.js';
import * as m016 from './migrations/016_certificates_renewed_flag.js';
import * as m017 from './migrations/017_onboarding_runner.js';
import { Refusal } from '../errors.js';
import { ensurePrivateDir, ensurePrivateFile } from '../private-files.js';

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Schema>;

export interface Database {
  db: Db;
  dialect: Dialect;
  close(): Promise<void>;
}

/** Migrations in order. Each gets the dialect so the few dialect-specific bits stay in one file. */
export const MIGRATIONS: Record<string, { up(db: Kysely<unknown>, dialect: Dialect): Promise<void> }> = {
  '001_initial': m001,
  '002_portal': m002,
  '003_crl': m003,
  '004_reminders': m004,
  '005_deliveries': m005,
  '006_revoked_index': m006,
  '007_tenant_code_ci': m007,
  '008_handovers': m008,
  '009_login_window': m009,
  '011_open_certificates_index': m011,
  '012_certificate_imports': m012,
  '013_onboarding': m013,
  '014_onboarding_jobs': m014,
  '015_save_screen_and_clients': m015,
  '016_certificates_renewed_flag': m016,
  '017_onboarding_runner': m017,
};

class StaticProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, mig] of Object.entries(MIGRATIONS)) out[name] = { up: (db) => mig.up(db, this.dialect) };
    return out;
  }
}

export interface OpenOptions {
  /** postgres://… or undefined for SQLite. */
  url: string | undefined;
  sqliteFile: string;
  /** Create the SQLite file if it does not exist (only `init` and first start do). */
  create?: boolean;
  /** PostgreSQL: connections this process may open (config.dbPool); 10 when not said. */
  poolSize?: number;
}

export function openDatabase(opts: OpenOptions): Database {
  if (opts.url) {
    // int8 (count(*), bigint) comes back as a string from pg by default; our counts fit in a JS number.
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10 });
    // An idle connection dropped by the server (restart, failover) must not crash the process:
    // the pool discards it and the next query opens a new one.
    pool.on('error', (err) => process.emitWarning(`PostgreSQL idle connection closed: ${err.message}`));
    const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: 'postgres', close: () => db.destroy() };
  }
  if (!opts.create && !fs.existsSync(opts.sqliteFile)) {
    throw new Refusal('not_initialized', `no database at ${opts.sqliteFile}: run \`kenshin init\` first`, { field: opts.sqliteFile });
  }
  ensurePrivateDir(path.dirname(opts.sqliteFile));
  // Created 0600 before SQLite opens it: SQLite would create it 0666 minus the umask, and gives the
  // -wal and -shm files the database file's mode.
  if (opts.create) ensurePrivateFile(opts.sqliteFile);
  const sqlite = new SqliteDatabase(opts.sqliteFile);
  try {
    // WAL: readers never wait for the writer; also the first read of the file, so a damaged one is found here.
    sqlite.pragma('journal_mode = WAL');
  } catch (e) {
    sqlite.close();
    const code = (e as { code?: string }).code ?? '';
    if (!['SQLITE_NOTADB', 'SQLITE_CORRUPT'].includes(code)) throw e;
    throw new Refusal('database_unreadable', `${opts.sqliteFile} is not a readable SQLite database (${(e as Error).message}): restore the data directory from a backup (kenshin restore --from DIR, into an empty data directory)`, { field: opts.sqliteFile });
  }
  // busy_timeout: a second process (CLI beside the server) waits instead of failing.
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('synchronous = NORMAL');
  const db = new Kysely<Schema>({ dialect: new MigratingInTransactionSqliteDialect({ database: reusingStatements(sqlite) }) });
  return { db, dialect: 'sqlite', close: () => db.destroy() };
}

/**
 * Kysely runs SQLite migrations outside a transaction, for SQLite's DDL is transactional. Inside one
 * (BEGIN IMMEDIATE, see below), a migration that fails or a process killed half-way leaves the schema
 * as it was, to be migrated again at the next start — not a column added without its trigger, which
 * the next start would then fail to add again. No migration uses a PRAGMA or VACUUM, the statements
 * SQLite will not run in a transaction.
 */
class MigratingInTransactionSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new (class extends SqliteAdapter {
      override get supportsTransactionalDdl(): boolean {
        return true;
      }
    })();
  }
}

/**
 * Kysely's SQLite driver prepares every query anew, and for the lookups a request makes (one row by
 * an index) SQLite's parsing and planning cost more than the lookup itself. Statements are reused
 * by their SQL text. Texts vary mostly with the length of IN lists, so a small bound keeps the cache
 * from growing; Kysely runs a statement to completion before the next (no stream() in Kenshin), so
 * one statement is never used twice at once. SQLite re-prepares a statement itself after a schema change.
 */
export const STATEMENT_CACHE_SIZE = 200;

function reusingStatements(sqlite: SqliteDatabase.Database): SqliteDialectDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      cache.clear();
      sqlite.close();
    },
    prepare(sqlText: string) {
      // Kysely opens every transaction with a plain (deferred) BEGIN. With several `serve` processes
      // on one file (KENSHIN_PROCESSES), a deferred transaction that read first and then writes gets
      // SQLITE_BUSY at once when another process wrote in between — busy_timeout does not help there.
      // BEGIN IMMEDIATE takes the write lock up front, so the other process waits (busy_timeout) instead.
      if (sqlText === 'begin') sqlText = 'begin immediate';
      let stmt = cache.get(sqlText);
      if (!stmt) {
        // First in, first out: the statements a server runs all the time are re-prepared at most
        // once per 200 new texts, and a hit costs one lookup.
        stmt = sqlite.prepare(sqlText);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        cache.set(sqlText, stmt);
      }
      return stmt;
    },
  };
}

/**
 * Brings the schema up to date. On PostgreSQL Kysely holds a session advisory lock on one connection
 * while it reads what has run and migrates in a transaction, so instances starting at once migrate
 * once: the others wait, then find nothing to do (test/production/two-instances.test.ts holds that
 * lock to make both wait). On SQLite the whole migration is one BEGIN IMMEDIATE transaction: a second
 * process waits for the file's write lock (busy_timeout), then finds nothing to do.
 */
export async function migrate(database: Database): Promise<void> {
  // Every CLI command and every serve process opens the database: when nothing is pending, a read
  // says so, without the migrator's write lock (SQLite) or advisory lock (PostgreSQL).
  const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(database.db).then(
    (r) => new Set(r.rows.map((x) => x.name)),
    () => new Set<string>(),
  );
  // Exactly the known ones: a database a newer build migrated goes to the migrator, which refuses it.
  if (applied.size === Object.keys(MIGRATIONS).length && Object.keys(MIGRATIONS).every((name) => applied.has(name))) return;
  // Unordered: a migration written on a branch may land after a higher-numbered one that a
  // database has already run (each is self-contained: new tables, columns or indexes); Kysely
  // then runs the missing one instead of refusing to start.
  const migrator = new Migrator({ db: database.db, provider: new StaticProvider(database.dialect), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
  }
}

/** Whether a driver error is a unique-constraint violation (SQLite and PostgreSQL phrase it differently). */
export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === '23505' || err?.code === 'SQLITE_CONSTRAINT_UNIQUE' || err?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
