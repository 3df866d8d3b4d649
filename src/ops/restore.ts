import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { dataPaths, type DataPaths } from '../config.js';
import type { Clock } from '../clock.js';
import { MIGRATIONS, migrate, openDatabase, type Database } from '../db/database.js';
import { appendAudit } from '../audit/log.js';
import { verifyAuditChain, type AuditVerification } from '../audit/verify.js';
import { loadAuthorityMaterial } from '../ca/hierarchy.js';
import { invalidInput, isRefusal, Refusal } from '../errors.js';
import { copyFileDurably, DIR_MODE, fsyncPath, fsyncTree, SECRET_MODE, shellQuote } from './files.js';
import { PG_DUMP_FILE, readManifest, snapshotDatabase, SQLITE_FILE, verifyFiles, type BackupManifest, type DatabaseCounts } from './manifest.js';
import type { OpsSettings } from './backup.js';

/**
 * `kenshin restore`: brings a backup back into a data directory that has no installation yet.
 *
 * Order, so that a failure leaves the data directory as it was:
 * 1. the manifest and every file's SHA-256 are checked (a damaged backup is refused, named);
 * 2. nothing of the backup may exist in the target (the operator moves an old installation away);
 * 3. everything is assembled in a hidden staging directory: files, the database (migrated to this
 *    version), the CA key opened with the passphrase the service will use, the audit chain verified;
 * 4. only then is it moved into place: one rename when the data directory did not exist, else one
 *    rename per entry with the database last (rolled back if a rename fails).
 */

export interface RestoreDeps extends OpsSettings {
  clock: Clock;
  actor: string;
}

export interface RestoreResult {
  dataDir: string;
  from: string;
  backupCreatedAt: string;
  dialect: 'sqlite' | 'postgres';
  /** `awaiting_pg_restore`: PostgreSQL database still empty; the files are restored, the dump is the operator's next step. */
  database: 'restored' | 'verified' | 'awaiting_pg_restore';
  pgRestoreCommand: string | undefined;
  /** The audit chain after the restore (null while the PostgreSQL database is still empty). */
  audit: AuditVerification | null;
  counts: DatabaseCounts | null;
  /** What the manifest recorded when the backup was taken. */
  backupCounts: DatabaseCounts;
  files: number;
}

const DATABASE_ENTRIES = [SQLITE_FILE, `${SQLITE_FILE}-wal`, `${SQLITE_FILE}-shm`];

export async function restoreBackup(deps: RestoreDeps, fromDir: string): Promise<RestoreResult> {
  const from = path.resolve(fromDir);
  if (!fs.statSync(from, { throwIfNoEntry: false })?.isDirectory()) throw invalidInput('from', `${from} is not a directory`);
  const manifest = readManifest(from);
  await verifyFiles(from, manifest);
  const dialect = manifest.database.dialect;
  assertSameDialect(dialect, deps.databaseUrl);
  // A newer Kenshin's schema would fail to migrate half-way through; say so before touching anything.
  const unknown = manifest.snapshot.migrations.filter((m) => !(m in MIGRATIONS));
  if (unknown.length) throw invalidInput('from', `${from} was made by a newer Kenshin (${manifest.kenshinVersion}; migration ${unknown.join(', ')} is unknown here): restore it with that version`);

  const dataDir = deps.paths.dataDir;
  const existed = fs.existsSync(dataDir);
  if (existed && !fs.statSync(dataDir).isDirectory()) throw invalidInput('data-dir', `${dataDir} is not a directory`);
  const entries = [...new Set(manifest.files.map((f) => f.path.split('/')[0]!))];
  for (const e of [...entries, ...(dialect === 'sqlite' ? DATABASE_ENTRIES : [])]) {
    const p = path.join(dataDir, e);
    if (fs.existsSync(p)) {
      throw new Refusal('already_initialized', `${p} already exists: restore only into a data directory without an installation (move the old one away first)`, { field: p });
    }
  }

  // Staging inside an existing data directory keeps its owner and mode (it may be a service account's).
  const stageParent = existed ? dataDir : path.dirname(dataDir);
  let stage: string;
  try {
    fs.mkdirSync(stageParent, { recursive: true, mode: DIR_MODE });
    stage = fs.mkdtempSync(path.join(stageParent, '.kenshin-restore-'));
  } catch (e) {
    throw new Refusal('data_dir_not_writable', `cannot restore into ${dataDir}: ${stageParent} is not writable (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { field: 'data-dir' });
  }
  const staged = dataPaths(stage);
  let database: Database | undefined;
  const closeDatabase = async () => {
    const d = database;
    database = undefined;
    await d?.close();
  };
  try {
    for (const f of manifest.files) {
      copyFileDurably(path.join(from, ...f.path.split('/')), path.join(stage, ...f.path.split('/')), SECRET_MODE);
    }
    await assertCaKeyOpens(staged, deps, manifest, from);
    const base = { dataDir, from, backupCreatedAt: manifest.createdAt, dialect, backupCounts: manifest.snapshot.counts, files: manifest.files.length };
    database = openDatabase({ url: deps.databaseUrl, sqliteFile: staged.sqliteFile });
    if (dialect === 'postgres' && !(await hasKenshinTables(database))) {
      // Migrating now would create the tables and make pg_restore fail: leave the database alone.
      await closeDatabase();
      fsyncTree(stage);
      moveIntoPlace(stage, dataDir, existed);
      return { ...base, database: 'awaiting_pg_restore', pgRestoreCommand: pgRestoreCommand(from), audit: null, counts: null };
    }
    const checked = await checkDatabase(database, manifest, from, dialect === 'sqlite');
    // Recorded before the move (SQLite: in the staged copy, so the record and the data arrive together).
    const after = await recordRestore(database, deps, manifest, from, checked.audit);
    await closeDatabase(); // SQLite: checkpoints the WAL into the one file that is moved
    fsyncTree(stage);
    moveIntoPlace(stage, dataDir, existed);
    return { ...base, database: dialect === 'sqlite' ? 'restored' : 'verified', pgRestoreCommand: undefined, ...after };
  } catch (e) {
    fs.rmSync(stage, { recursive: true, force: true });
    throw e;
  } finally {
    await closeDatabase();
  }
}

export function pgRestoreCommand(backupDir: string): string {
  return `pg_restore --no-owner --no-acl --exit-on-error --single-transaction --dbname "$KENSHIN_DATABASE_URL" ${shellQuote(path.join(backupDir, PG_DUMP_FILE))}`;
}

function assertSameDialect(dialect: 'sqlite' | 'postgres', databaseUrl: string | undefined): void {
  if (dialect === 'sqlite' && databaseUrl) {
    throw invalidInput('KENSHIN_DATABASE_URL', 'this backup holds a SQLite database: unset KENSHIN_DATABASE_URL to restore it (moving SQLite data into PostgreSQL is not supported)');
  }
  if (dialect === 'postgres' && !databaseUrl) {
    throw invalidInput('KENSHIN_DATABASE_URL', 'this backup is of a PostgreSQL installation: set KENSHIN_DATABASE_URL to the database to restore into (its dump goes in with pg_restore)');
  }
}

/**
 * A restored installation must be able to sign: open the issuing CA key with the passphrase the
 * service will use (KENSHIN_CA_PASSPHRASE, else the passphrase file from the backup).
 */
async function assertCaKeyOpens(staged: DataPaths, deps: RestoreDeps, manifest: BackupManifest, from: string): Promise<void> {
  try {
    await loadAuthorityMaterial(staged, deps.caPassphrase, undefined);
  } catch (e) {
    if (!isRefusal(e) || e.code !== 'ca_key_unreadable') throw e;
    const hasFile = manifest.files.some((f) => f.path === 'secrets/ca-passphrase');
    const why = deps.caPassphrase
      ? 'KENSHIN_CA_PASSPHRASE is not the passphrase it was encrypted with'
      : hasFile
        ? 'the passphrase file in the backup does not open it'
        : 'the backup holds no CA passphrase (it came from KENSHIN_CA_PASSPHRASE): set it and run the restore again';
    throw new Refusal('ca_key_unreadable', `the CA key in ${path.join(from, 'ca')} cannot be opened: ${why}`, { field: 'KENSHIN_CA_PASSPHRASE' });
  }
}

/** Brings the schema to this version and verifies the audit chain; for SQLite, proves the database is the one the manifest describes. */
async function checkDatabase(database: Database, manifest: BackupManifest, from: string, exact: boolean): Promise<{ audit: AuditVerification }> {
  await migrate(database);
  const audit = await verifyAuditChain(database.db);
  if (exact) {
    const snapshot = await snapshotDatabase(database.db);
    if (JSON.stringify(snapshot.counts) !== JSON.stringify(manifest.snapshot.counts) || snapshot.audit.head !== manifest.snapshot.audit.head) {
      throw new Error(`the restored database does not match the manifest of ${from} (counts or audit head differ)`);
    }
  }
  return { audit };
}

/**
 * The restore is recorded in the restored log: it explains why the events between the backup and
 * the restore are missing. A broken chain is left as found (the evidence), and reported.
 */
async function recordRestore(database: Database, deps: RestoreDeps, manifest: BackupManifest, from: string, audit: AuditVerification): Promise<{ audit: AuditVerification; counts: DatabaseCounts }> {
  if (audit.ok) {
    await database.db.transaction().execute((trx) =>
      appendAudit(trx, deps.clock.now(), {
        actor: deps.actor,
        action: 'backup.restored',
        target: `backup:${from}`,
        details: { from, backupCreatedAt: manifest.createdAt, auditEventsInBackup: manifest.snapshot.audit.count, auditEventsRestored: audit.events },
      }),
    );
    audit = await verifyAuditChain(database.db);
  }
  return { audit, counts: (await snapshotDatabase(database.db)).counts };
}

async function hasKenshinTables(database: Database): Promise<boolean> {
  const found = await sql<{ t: string | null }>`select to_regclass('audit_head')::text as t`.execute(database.db);
  return Boolean(found.rows[0]?.t);
}

function moveIntoPlace(stage: string, dataDir: string, existed: boolean): void {
  if (!existed) {
    fs.renameSync(stage, dataDir);
    fsyncPath(path.dirname(dataDir));
    return;
  }
  // The database last: until it is in place, the data directory is not an installation.
  const entries = fs.readdirSync(stage).sort((a, b) => Number(DATABASE_ENTRIES.includes(a)) - Number(DATABASE_ENTRIES.includes(b)));
  const moved: string[] = [];
  try {
    for (const e of entries) {
      const target = path.join(dataDir, e);
      if (fs.existsSync(target)) throw new Refusal('already_initialized', `${target} appeared during the restore; nothing was restored`, { field: target });
      fs.renameSync(path.join(stage, e), target);
      moved.push(e);
    }
  } catch (err) {
    for (const e of moved.reverse()) fs.renameSync(path.join(dataDir, e), path.join(stage, e));
    throw err;
  }
  fs.rmdirSync(stage);
  fsyncPath(dataDir);
}
