import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { DataPaths } from '../config.js';
import type { Clock } from '../clock.js';
import { openDatabase, type Db } from '../db/database.js';
import type { Schema } from '../db/schema.js';
import { appendAudit } from '../audit/log.js';
import { verifyAuditChain } from '../audit/verify.js';
import { Refusal } from '../errors.js';
import { copyFileDurably, DIR_MODE, fsyncPath, fsyncTree, isPublicFile, listFiles, SECRET_MODE, sha256File, shellQuote } from './files.js';
import {
  FORMAT,
  FORMAT_VERSION,
  kenshinVersion,
  MANIFEST_FILE,
  PG_DUMP_FILE,
  snapshotDatabase,
  SQLITE_FILE,
  type AuditChainState,
  type BackupManifest,
  type DatabaseSnapshot,
  type ManifestDatabase,
  type ManifestFile,
} from './manifest.js';

/**
 * `kenshin backup`: everything needed to bring an installation back, taken while it runs.
 *
 * - SQLite: SQLite's online backup API copies the database as of one moment, even while `kenshin
 *   serve` (or any other process) keeps writing; the copy is then checked (integrity, audit chain)
 *   and described in the manifest. A file copy could catch the main file and the WAL at different
 *   moments and yield a database that does not open.
 * - PostgreSQL: the database is the operator's pg_dump (consistent by itself); the backup holds
 *   the files, and the manifest the command to run.
 * - Files: the CA directory (certificates, encrypted keys, and any later issuing CA), the secrets
 *   (CA passphrase file, package key) and the server certificate and key.
 *
 * The backup is built in a hidden temporary directory next to the target and renamed into place
 * at the end, so an interrupted backup never leaves a directory that looks complete.
 */

export interface OpsSettings {
  paths: DataPaths;
  /** postgres://… or undefined for the SQLite file in the data directory. */
  databaseUrl: string | undefined;
  /** Set when the CA passphrase comes from the environment (then it is not in the backup). */
  caPassphrase: string | undefined;
  /** Set when the package key comes from the environment (then it is not in the backup). */
  packageKey: string | undefined;
  /**
   * Deployment files outside the data directory (settings file, a public site certificate, the client
   * CA list): they belong to the machine's configuration, so the backup names them instead of taking them.
   */
  externalFiles: { setting: string; file: string }[];
}

export interface BackupDeps extends OpsSettings {
  clock: Clock;
  actor: string;
}

export interface BackupResult {
  dir: string;
  manifest: BackupManifest;
  /** PostgreSQL only: the pg_dump the operator must run to complete the backup. */
  pgDumpCommand: string | undefined;
}

/**
 * All pages in one step: the copy is one read transaction (WAL: the writers carry on), so a
 * concurrent writer cannot restart it. In better-sqlite3's default 100-page steps every commit by
 * another connection restarts the copy from page 1 (the test's writer turned 28 steps into 103);
 * a busy server could keep it from ever finishing.
 */
const ALL_PAGES = 0x7fffffff;

/** The data-directory folders a backup carries besides the database. */
export function fileSetOf(paths: DataPaths): string[] {
  return [paths.caDir, paths.secretsDir, paths.serverDir].flatMap((dir) => listFiles(paths.dataDir, dir));
}

export async function createBackup(deps: BackupDeps, outDir: string): Promise<BackupResult> {
  const { paths } = deps;
  const out = path.resolve(outDir);
  assertFreshTarget(out);
  if (!fs.existsSync(paths.rootCert)) throw new Refusal('not_initialized', `no CA at ${paths.rootCert}: nothing to back up (wrong --data-dir?)`, { field: paths.rootCert });
  const source = openSource(deps);
  try {
    const parent = path.dirname(out);
    let tmp: string;
    try {
      fs.mkdirSync(parent, { recursive: true, mode: DIR_MODE });
      tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.partial-`));
    } catch (e) {
      throw new Refusal('output_not_writable', `cannot write a backup into ${parent} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { field: 'out' });
    }
    let manifest: BackupManifest;
    try {
      const files: ManifestFile[] = [];
      let database: ManifestDatabase;
      let snapshot: DatabaseSnapshot;
      if (source.sqlite) {
        const copy = path.join(tmp, SQLITE_FILE);
        await source.sqlite.backup(copy, { progress: () => ALL_PAGES });
        const inspected = await inspectSqliteCopy(copy);
        snapshot = inspected.snapshot;
        database = { dialect: 'sqlite', file: SQLITE_FILE, auditChain: inspected.auditChain };
        fs.chmodSync(copy, SECRET_MODE);
        fsyncPath(copy);
        files.push(await describe(tmp, SQLITE_FILE));
      } else {
        snapshot = await snapshotOrRefuse(source.db);
        database = { dialect: 'postgres', dumpFile: PG_DUMP_FILE, dumpCommand: pgDumpCommand(out) };
      }
      for (const rel of fileSetOf(paths)) {
        copyFileDurably(path.join(paths.dataDir, ...rel.split('/')), path.join(tmp, ...rel.split('/')), SECRET_MODE);
        files.push(await describe(tmp, rel));
      }
      manifest = {
        format: FORMAT,
        formatVersion: FORMAT_VERSION,
        kenshinVersion: kenshinVersion(),
        createdAt: deps.clock.now().toISOString(),
        database,
        snapshot,
        files,
        notIncluded: notIncluded(deps),
      };
      const manifestFile = path.join(tmp, MANIFEST_FILE);
      fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n', { mode: SECRET_MODE, flag: 'wx' });
      fsyncPath(manifestFile);
      fsyncTree(tmp);
      try {
        // Replaces an empty target directory, never a non-empty one (ENOTEMPTY).
        fs.renameSync(tmp, out);
      } catch (e) {
        throw new Refusal('output_not_writable', `${out} appeared while the backup was written (${(e as NodeJS.ErrnoException).code ?? 'error'}); refusing to overwrite it`, { field: 'out' });
      }
      fsyncPath(parent);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    // A full copy of the database is the largest data access there is: the live log records it.
    await source.db.transaction().execute((trx) =>
      appendAudit(trx, deps.clock.now(), {
        actor: deps.actor,
        action: 'backup.created',
        target: `backup:${out}`,
        details: { dir: out, database: manifest.database.dialect, auditEvents: manifest.snapshot.audit.count, auditHead: manifest.snapshot.audit.head, files: manifest.files.length },
      }),
    );
    return { dir: out, manifest, pgDumpCommand: manifest.database.dialect === 'postgres' ? manifest.database.dumpCommand : undefined };
  } finally {
    await source.close();
  }
}

/** The exact pg_dump line; the URL stays in the environment so the password is not echoed or kept in shell history. */
export function pgDumpCommand(backupDir: string): string {
  return `pg_dump --format=custom --file ${shellQuote(path.join(backupDir, PG_DUMP_FILE))} "$KENSHIN_DATABASE_URL"`;
}

function assertFreshTarget(out: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(out);
  } catch {
    return;
  }
  if (!st.isDirectory() || fs.readdirSync(out).length > 0) {
    throw new Refusal('output_not_writable', `${out} already exists and is not an empty directory; back up into a new directory`, { field: 'out' });
  }
}

interface Source {
  db: Db;
  /** The raw SQLite connection, for its online backup API. */
  sqlite: SqliteDatabase.Database | undefined;
  close(): Promise<void>;
}

function openSource(s: OpsSettings): Source {
  if (s.databaseUrl) {
    const database = openDatabase({ url: s.databaseUrl, sqliteFile: s.paths.sqliteFile });
    return { db: database.db, sqlite: undefined, close: () => database.close() };
  }
  if (!fs.existsSync(s.paths.sqliteFile)) throw new Refusal('not_initialized', `no database at ${s.paths.sqliteFile}: nothing to back up (wrong --data-dir?)`, { field: s.paths.sqliteFile });
  // Our own connection, not the runtime's: no migrations, no pragmas that would change the file.
  const sqlite = new SqliteDatabase(s.paths.sqliteFile, { fileMustExist: true });
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { db, sqlite, close: () => db.destroy() };
}

/**
 * Makes the copy a self-contained file (rollback journal instead of WAL, so it is one file that
 * opens read-only anywhere) and proves it is sound: SQLite's integrity check and the audit chain.
 */
async function inspectSqliteCopy(file: string): Promise<{ snapshot: DatabaseSnapshot; auditChain: AuditChainState }> {
  const copy = new SqliteDatabase(file, { fileMustExist: true });
  copy.pragma('journal_mode = DELETE');
  const integrity = copy.pragma('integrity_check', { simple: true });
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: copy }) });
  try {
    if (integrity !== 'ok') throw new Error(`the database copy failed SQLite's integrity check: ${String(integrity)}`);
    const chain = await verifyAuditChain(db);
    const snapshot = await snapshotDatabase(db);
    return { snapshot, auditChain: chain.ok ? { ok: true } : { ok: false, message: chain.message } };
  } finally {
    await db.destroy();
  }
}

async function snapshotOrRefuse(db: Db): Promise<DatabaseSnapshot> {
  try {
    return await snapshotDatabase(db);
  } catch (e) {
    // An empty database (never migrated) has no tables: there is no installation to back up.
    if ((e as { code?: string }).code === '42P01') throw new Refusal('not_initialized', 'the PostgreSQL database (KENSHIN_DATABASE_URL) holds no Kenshin tables: nothing to back up', { field: 'KENSHIN_DATABASE_URL' });
    throw e;
  }
}

async function describe(root: string, rel: string): Promise<ManifestFile> {
  const file = path.join(root, ...rel.split('/'));
  return { path: rel, bytes: fs.statSync(file).size, sha256: await sha256File(file), secret: !isPublicFile(rel) };
}

function notIncluded(s: OpsSettings): string[] {
  const out: string[] = [];
  if (s.caPassphrase) out.push('KENSHIN_CA_PASSPHRASE (environment): the CA and server keys are encrypted with it; keep it safe apart from this backup');
  if (s.packageKey) out.push('KENSHIN_PACKAGE_KEY (environment): it seals the renewal packages in the database; keep it safe apart from this backup');
  for (const f of s.externalFiles) out.push(`${f.setting} ${f.file}: outside the data directory; keep it with the machine's configuration`);
  return out;
}
