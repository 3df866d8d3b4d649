import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { Refusal } from '../errors.js';
import { sha256File } from './files.js';

/**
 * The manifest of a backup directory: what it holds, the SHA-256 of every file (so a damaged
 * backup is refused before anything is restored), and what the database looked like (audit head
 * and counts), so a restore can prove it brought back exactly that.
 */
export const MANIFEST_FILE = 'manifest.json';
export const FORMAT = 'kenshin-backup';
export const FORMAT_VERSION = 1;
/** The SQLite copy inside a backup, at the same relative path as in the data directory. */
export const SQLITE_FILE = 'kenshin.sqlite';
/** Where the README tells PostgreSQL operators to put their pg_dump. */
export const PG_DUMP_FILE = 'kenshin.pgdump';

export interface ManifestFile {
  /** Relative to the backup directory and to the data directory (the layout is the same). */
  path: string;
  bytes: number;
  sha256: string;
  /** Written 0600 (keys, passphrases, the database); otherwise a public certificate. */
  secret: boolean;
}

export interface DatabaseCounts {
  tenants: number;
  institutions: number;
  users: number;
  certificates: number;
  revokedCertificates: number;
  renewals: number;
  auditEvents: number;
}

export interface DatabaseSnapshot {
  /** Applied migrations: a restore into an older Kenshin, which does not know them all, is refused. */
  migrations: string[];
  /** The audit head row: the chain's last hash and how many events were ever appended. */
  audit: { head: string; count: number };
  counts: DatabaseCounts;
}

/** The audit chain of the SQLite copy, verified when the backup was taken. */
export type AuditChainState = { ok: true } | { ok: false; message: string };

export type ManifestDatabase =
  | { dialect: 'sqlite'; file: string; auditChain: AuditChainState }
  /** Not in the backup: the operator dumps it with pg_dump (the manifest says how). */
  | { dialect: 'postgres'; dumpFile: string; dumpCommand: string };

export interface BackupManifest {
  format: typeof FORMAT;
  formatVersion: number;
  kenshinVersion: string;
  createdAt: string;
  database: ManifestDatabase;
  /** For SQLite, the copy in the backup; for PostgreSQL, the live database when the files were copied. */
  snapshot: DatabaseSnapshot;
  files: ManifestFile[];
  /** Secrets that live in the environment and therefore are not in the backup. */
  notIncluded: string[];
}

const TABLES = { tenants: 'tenants', institutions: 'institutions', users: 'users', certificates: 'certificates', renewals: 'renewals', auditEvents: 'audit_events' } as const;

/** Reads counts and the audit head in one transaction, so they describe one moment of the database. */
export async function snapshotDatabase(db: Db): Promise<DatabaseSnapshot> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const count = async (table: string, where = sql``) => Number((await sql<{ n: number }>`select count(*) as n from ${sql.table(table)} ${where}`.execute(trx)).rows[0]!.n);
      const counts = {} as DatabaseCounts;
      for (const [key, table] of Object.entries(TABLES)) counts[key as keyof typeof TABLES] = await count(table);
      counts.revokedCertificates = await count('certificates', sql`where status = 'revoked'`);
      const head = await trx.selectFrom('audit_head').select(['hash', 'count']).where('id', '=', 1).executeTakeFirstOrThrow();
      const migrations = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(trx)).rows.map((r) => r.name);
      return { migrations, audit: { head: head.hash, count: Number(head.count) }, counts };
    });
}

export function kenshinVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

const damaged = (file: string, why: string) => new Refusal('backup_damaged', `${file} ${why}; refusing to restore from a damaged backup`, { field: file });

/** A manifest path must stay inside the backup: a crafted one must not write outside the data directory. */
function safeRelative(p: unknown): p is string {
  if (typeof p !== 'string' || p === '' || path.isAbsolute(p) || p.includes('\\')) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** Reads and checks the manifest's shape; refuses anything that is not a backup this version can restore. */
export function readManifest(dir: string): BackupManifest {
  const file = path.join(dir, MANIFEST_FILE);
  let m: BackupManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as BackupManifest;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw damaged(file, code === 'ENOENT' ? 'is missing (not a Kenshin backup directory?)' : 'is not valid JSON');
  }
  if (m?.format !== FORMAT) throw damaged(file, 'is not a Kenshin backup manifest');
  if (m.formatVersion !== FORMAT_VERSION) {
    throw new Refusal('backup_damaged', `${file} has backup format ${String(m.formatVersion)}; this Kenshin (${kenshinVersion()}) restores format ${FORMAT_VERSION}`, { field: file });
  }
  const dialect = m.database?.dialect;
  if ((dialect !== 'sqlite' && dialect !== 'postgres') || !m.snapshot?.counts || !m.snapshot.audit || !Array.isArray(m.snapshot.migrations) || !Array.isArray(m.files)) throw damaged(file, 'is incomplete');
  for (const f of m.files) {
    if (!safeRelative(f?.path) || typeof f.sha256 !== 'string' || typeof f.bytes !== 'number' || f.path === MANIFEST_FILE) throw damaged(file, `lists an invalid file entry (${JSON.stringify(f?.path)})`);
  }
  if (dialect === 'sqlite' && !m.files.some((f) => f.path === SQLITE_FILE)) throw damaged(file, `does not list the database ${SQLITE_FILE}`);
  return m;
}

/** Checks every listed file against its size and SHA-256; names the first that does not match. */
export async function verifyFiles(dir: string, m: BackupManifest): Promise<void> {
  for (const f of m.files) {
    const file = path.join(dir, ...f.path.split('/'));
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      throw damaged(file, 'is missing');
    }
    if (!st.isFile()) throw damaged(file, 'is not a file');
    if (st.size !== f.bytes || (await sha256File(file)) !== f.sha256) throw damaged(file, 'does not match the SHA-256 in the manifest');
  }
}
