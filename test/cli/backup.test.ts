import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { makePortalWorld } from '../helpers/portal-world.js';
import { kenshin, kenshinProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { TlsClient } from '../helpers/client.js';
import { revokeCertificate } from '../../src/certificates/service.js';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Db } from '../../src/db/database.js';
import type { Schema } from '../../src/db/schema.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { appendAudit } from '../../src/audit/log.js';
import { startServer } from '../../src/web/server.js';
import type { BackupManifest } from '../../src/ops/manifest.js';
import { pgRestoreCommand, type RestoreResult } from '../../src/ops/restore.js';
import { freshDatabaseUrl } from '../helpers/databases.js';
import { childEnv } from '../helpers/child-env.js';

// `kenshin backup` / `kenshin restore` on real SQLite files, with `kenshin serve` running on the
// source and a second process writing to it during the backup.

const ENV = { KENSHIN_CA_PASSPHRASE: 'test-passphrase' };

/** The writer process (test/helpers/sqlite-writer.ts) and the number of changes it reported committed. */
function startWriter(dataDir: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../helpers/sqlite-writer.ts')], {
    env: childEnv({ KENSHIN_DATA_DIR: dataDir, ...ENV }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let committed = 0;
  let stderr = '';
  let waiters: { n: number; resolve(): void; reject(e: Error): void }[] = [];
  const settle = () => {
    waiters = waiters.filter((w) => (committed >= w.n ? (w.resolve(), false) : true));
  };
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    committed += (s.match(/^committed \d+$/gm) ?? []).length;
    settle();
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => void (stderr += s));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      for (const w of waiters) w.reject(new Error(`writer exited (${code}) after ${committed} commits: ${stderr}`));
      resolve(code);
    }),
  );
  return {
    get committed() {
      return committed;
    },
    waitFor: (n: number) => new Promise<void>((resolve, reject) => (waiters.push({ n, resolve, reject }), settle())),
    async stop() {
      child.stdin.end();
      assert.equal(await exited, 0, stderr);
    },
  };
}

/** Read-only, so that looking into a backup cannot change it (opening it read-write would switch it to WAL). */
async function withSqlite<T>(file: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file, { readonly: true, fileMustExist: true }) }) });
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

const countCertificates = async (db: Db) => Number((await db.selectFrom('certificates').select(db.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

/** Every file under dir with its bytes, to prove a refused command changed nothing. */
function treeOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath, e.name);
    if (e.isFile()) out[path.relative(dir, p)] = fs.readFileSync(p).toString('base64');
  }
  return out;
}

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('kenshin backup / restore on SQLite', async () => {
  const w = await makePortalWorld('sqlite');
  const db = w.runtime.database.db;
  const k = (dataDir: string, args: string[], env: Record<string, string | undefined> = ENV) => kenshin(['--data-dir', dataDir, ...args], { env, clock: w.clock });
  const backups = tempDir('kenshin-backups-');

  // The installation: two tenants with users (portal world), a certificate renewed over the API,
  // a revoked one, and one of the other tenant.
  const renewed = await w.cert(60);
  const renewalRes = await w.client(renewed).request('POST', '/api/v1/certificate/renewal', { json: {} });
  assert.equal(renewalRes.status, 201, renewalRes.text);
  const renewal = renewalRes.json<{ uri: string; pass: string; serial: string }>();
  const revoked = await w.cert(400);
  await revokeCertificate({ db, clock: w.clock }, { serial: revoked.row.serial, reason: 'keyCompromise', actor: 'test' });
  const other = await w.cert(500, { tenant: 'T0002' });
  // A log with history, so the copy takes long enough for the writer's commits to land during it.
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < 20_000; i++) await appendAudit(trx, w.clock.now(), { actor: 'test', action: 'history.padding', details: { i, note: 'x'.repeat(200) } });
  });

  test('a backup taken while another process issues and revokes certificates is one consistent moment', async () => {
    const writer = startWriter(w.dir);
    await writer.waitFor(6);
    const before = await countCertificates(db);
    const out = path.join(backups, 'under-load');
    const r = await k(w.dir, ['backup', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    await writer.waitFor(writer.committed + 3); // and it carried on after the backup
    await writer.stop();
    const after = await countCertificates(db);
    const m = r.json<{ manifest: BackupManifest }>().manifest;

    assert.ok(before <= m.snapshot.counts.certificates && m.snapshot.counts.certificates <= after, `${before} <= ${m.snapshot.counts.certificates} <= ${after}`);
    assert.ok(after > before);
    assert.deepEqual(m.database, { dialect: 'sqlite', file: 'kenshin.sqlite', auditChain: { ok: true } });

    // The copy is what the manifest says, its chain verifies, and its tables agree with each other:
    // every certificate row has its issuance event and every revocation event its revoked row.
    await withSqlite(path.join(out, 'kenshin.sqlite'), async (copy) => {
      assert.deepEqual(await verifyAuditChain(copy), { ok: true, events: m.snapshot.audit.count });
      assert.equal(m.snapshot.counts.auditEvents, m.snapshot.audit.count);
      const certs = await copy.selectFrom('certificates').select(['serial', 'status']).execute();
      assert.equal(certs.length, m.snapshot.counts.certificates);
      assert.equal(certs.filter((c) => c.status === 'revoked').length, m.snapshot.counts.revokedCertificates);
      const targets = async (action: string) => (await copy.selectFrom('audit_events').select('target').where('action', '=', action).execute()).map((e) => e.target).sort();
      assert.deepEqual(await targets('certificate.issued'), certs.map((c) => `certificate:${c.serial}`).sort());
      assert.deepEqual(await targets('certificate.revoked'), certs.filter((c) => c.status === 'revoked').map((c) => `certificate:${c.serial}`).sort());
      assert.equal((await copy.selectFrom('tenants').select('code').execute()).length, m.snapshot.counts.tenants);
    });
    // The live log records the backup, after the moment it captured.
    const logged = await db.selectFrom('audit_events').selectAll().where('action', '=', 'backup.created').executeTakeFirstOrThrow();
    assert.equal(JSON.parse(logged.details).auditEvents, m.snapshot.audit.count);
    assert.ok(logged.id > m.snapshot.audit.count);

    // And it restores: same counts, the chain verifies, plus the event recording the restore.
    const target = path.join(tempDir(), 'data');
    const restored = await k(target, ['restore', '--from', out, '--json']);
    assert.equal(restored.code, 0, restored.stderr);
    const rr = restored.json<RestoreResult>();
    assert.deepEqual(rr.counts, { ...m.snapshot.counts, auditEvents: m.snapshot.counts.auditEvents + 1 });
    assert.deepEqual(rr.audit, { ok: true, events: m.snapshot.audit.count + 1 });
    const verify = await k(target, ['audit', 'verify']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stdout, `audit chain intact: ${m.snapshot.audit.count + 1} events\n`);
  });

  test('backup layout: manifest with SHA-256 of every file, secrets 0600 in a 0700 directory', async () => {
    const out = path.join(backups, 'layout');
    fs.mkdirSync(out); // an existing empty directory is fine
    // A site certificate from a public CA lives outside the data directory: named, not copied.
    const r = await k(w.dir, ['backup', '--out', out], { ...ENV, KENSHIN_TLS_CERT: '/etc/kenshin/tls/fullchain.pem', KENSHIN_TLS_KEY: '/etc/kenshin/tls/privkey.pem' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /not included: {2}KENSHIN_TLS_CERT \/etc\/kenshin\/tls\/fullchain\.pem: outside the data directory; keep it with the machine's configuration\n/);
    assert.match(r.stdout, /^backup written to .*layout\n {2}database: {6}kenshin\.sqlite \(SQLite online backup, integrity checked\)\n {2}audit: {9}\d+ events, chain intact/);
    assert.match(r.stdout, /not included: {2}KENSHIN_CA_PASSPHRASE \(environment\)/);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as BackupManifest;
    assert.deepEqual(
      m.files.map((f) => f.path),
      ['kenshin.sqlite', 'ca/issuing.crt', 'ca/issuing.key', 'ca/root.crt', 'ca/root.key', 'secrets/gateway-signing-key', 'secrets/package-key', 'server/server.crt', 'server/server.key'],
    );
    assert.equal(m.createdAt, w.clock.now().toISOString());
    assert.equal(m.format, 'kenshin-backup');
    assert.deepEqual(m.snapshot.migrations.slice(0, 2), ['001_initial', '002_portal']);
    assert.equal(mode(out), 0o700);
    for (const d of ['ca', 'secrets', 'server']) assert.equal(mode(path.join(out, d)), 0o700, d);
    for (const f of m.files) {
      assert.equal(mode(path.join(out, f.path)), 0o600, f.path);
      assert.equal(f.secret, !f.path.endsWith('.crt'));
      if (f.path !== 'kenshin.sqlite') assert.deepEqual(fs.readFileSync(path.join(out, f.path)), fs.readFileSync(path.join(w.dir, f.path)), f.path);
    }
    // The database copy is one self-contained file: no WAL beside it.
    assert.deepEqual(fs.readdirSync(out).sort(), ['ca', 'kenshin.sqlite', 'manifest.json', 'secrets', 'server']);
    assert.deepEqual(fs.readdirSync(backups).filter((n) => n.startsWith('.')), []);
  });

  test('restore into a fresh directory brings back tenants, certificates and the audit chain; its certificates authenticate over mTLS', async () => {
    const out = path.join(backups, 'quiet');
    const b = await k(w.dir, ['backup', '--out', out, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const m = b.json<{ manifest: BackupManifest }>().manifest;
    const target = path.join(tempDir(), 'restored');
    const r = await k(target, ['restore', '--from', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^restored .*quiet \(taken .*\) into .*restored\n {2}files: {9}9, SHA-256 verified\n {2}audit: {9}chain intact, \d+ events/);

    for (const args of [['tenant', 'list', '--json'], ['cert', 'list', '--json'], ['cert', 'show', renewed.row.serial, '--json']]) {
      const [a, z] = [await k(w.dir, args), await k(target, args)];
      assert.equal(z.code, 0, z.stderr);
      assert.deepEqual(z.json(), a.json(), args.join(' '));
    }
    assert.equal((await k(target, ['audit', 'verify'])).code, 0);
    // The restored log is the source's up to the backup, then the restore.
    const source = await db.selectFrom('audit_events').select(['id', 'hash', 'action']).orderBy('id').execute();
    const copy = await withSqlite(path.join(target, 'kenshin.sqlite'), (d) => d.selectFrom('audit_events').select(['id', 'hash', 'action']).orderBy('id').execute());
    assert.deepEqual(copy.slice(0, -1), source.slice(0, m.snapshot.audit.count));
    assert.equal(copy.at(-1)!.action, 'backup.restored');
    assert.equal(mode(path.join(target, 'secrets', 'package-key')), 0o600);
    assert.equal(mode(path.join(target, 'ca', 'issuing.key')), 0o600);

    // A server on the restored directory: same CA, same server certificate, same package key.
    const serverCrt = fs.readFileSync(path.join(target, 'server', 'server.crt'), 'utf8');
    const server = await startServer({ ...w.config, dataDir: target }, { clock: w.clock });
    try {
      assert.equal(fs.readFileSync(path.join(target, 'server', 'server.crt'), 'utf8'), serverCrt, 'the restored server key opened, so the certificate was kept');
      const client = (cert?: { file: Uint8Array; password: string }) => new TlsClient(server.url, w.ca, cert);
      const mine = await client(renewed).get('/api/v1/certificate');
      assert.equal(mine.status, 200, mine.text);
      assert.equal(mine.json<{ serial: string; successor: { serial: string } }>().successor.serial, renewal.serial);
      assert.equal((await client(other).get('/api/v1/certificate')).json().serial, other.row.serial);
      const refused = await client(revoked).get('/api/v1/certificate');
      assert.equal(refused.status, 403);
      assert.equal(refused.json().error, 'certificate_revoked');
      // The renewal package sealed before the backup opens after the restore, and its certificate works.
      const p12 = await client(renewed).get(new URL(renewal.uri).pathname);
      assert.equal(p12.status, 200, p12.text);
      const successor = await client({ file: p12.body, password: renewal.pass }).get('/api/v1/certificate');
      assert.equal(successor.status, 200, successor.text);
      assert.equal(successor.json().serial, renewal.serial);
    } finally {
      await server.close();
    }
  });

  test('restore into an existing empty data directory keeps the directory and its mode', async () => {
    const target = path.join(tempDir(), 'data');
    fs.mkdirSync(target, { mode: 0o750 });
    fs.chmodSync(target, 0o750);
    const r = await k(target, ['restore', '--from', path.join(backups, 'quiet'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<RestoreResult>().database, 'restored');
    assert.equal(mode(target), 0o750);
    assert.deepEqual(fs.readdirSync(target).sort(), ['ca', 'kenshin.sqlite', 'secrets', 'server']);
    assert.equal((await k(target, ['audit', 'verify'])).code, 0);
  });

  test('a damaged, foreign or too new backup is refused, naming the file, and nothing is restored', async () => {
    for (const file of ['kenshin.sqlite', 'ca/issuing.key', 'secrets/package-key']) {
      const damaged = path.join(backups, `damaged-${file.replace(/\W/g, '-')}`);
      fs.cpSync(path.join(backups, 'quiet'), damaged, { recursive: true });
      const p = path.join(damaged, file);
      const bytes = fs.readFileSync(p);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      fs.writeFileSync(p, bytes);
      const target = path.join(tempDir(), 'data');
      const r = await k(target, ['restore', '--from', damaged]);
      assert.equal(r.code, 2, file);
      assert.equal(r.stderr, `kenshin: ${p} does not match the SHA-256 in the manifest; refusing to restore from a damaged backup\n`);
      assert.ok(!fs.existsSync(target));
      assert.deepEqual(fs.readdirSync(path.dirname(target)), []);
    }
    const missing = path.join(backups, 'missing-file');
    fs.cpSync(path.join(backups, 'quiet'), missing, { recursive: true });
    fs.rmSync(path.join(missing, 'server', 'server.key'));
    const r = await k(path.join(tempDir(), 'data'), ['restore', '--from', missing]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /server\.key is missing; refusing to restore from a damaged backup\n$/);

    const escaping = path.join(backups, 'escaping');
    fs.cpSync(path.join(backups, 'quiet'), escaping, { recursive: true });
    const m = JSON.parse(fs.readFileSync(path.join(escaping, 'manifest.json'), 'utf8')) as BackupManifest;
    m.files[1]!.path = '../../etc/cron.d/x';
    fs.writeFileSync(path.join(escaping, 'manifest.json'), JSON.stringify(m));
    const e = await k(path.join(tempDir(), 'data'), ['restore', '--from', escaping]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /manifest\.json lists an invalid file entry \("\.\.\/\.\.\/etc\/cron\.d\/x"\)/);

    const future = path.join(backups, 'future');
    fs.cpSync(path.join(backups, 'quiet'), future, { recursive: true });
    const fm = JSON.parse(fs.readFileSync(path.join(future, 'manifest.json'), 'utf8')) as BackupManifest;
    fm.snapshot.migrations.push('999_future');
    fm.kenshinVersion = '9.0.0';
    fs.writeFileSync(path.join(future, 'manifest.json'), JSON.stringify(fm));
    const f = await k(path.join(tempDir(), 'data'), ['restore', '--from', future]);
    assert.equal(f.code, 2);
    assert.equal(f.stderr, `kenshin: from: ${future} was made by a newer Kenshin (9.0.0; migration 999_future is unknown here): restore it with that version\n`);

    const notBackup = await k(path.join(tempDir(), 'data'), ['restore', '--from', tempDir()]);
    assert.equal(notBackup.code, 2);
    assert.match(notBackup.stderr, /manifest\.json is missing \(not a Kenshin backup directory\?\)/);
  });

  test('a SQLite backup is not restored into PostgreSQL', async () => {
    const target = path.join(tempDir(), 'data');
    const r = await k(target, ['restore', '--from', path.join(backups, 'quiet')], { ...ENV, KENSHIN_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^kenshin: KENSHIN_DATABASE_URL: this backup holds a SQLite database: unset KENSHIN_DATABASE_URL to restore it/);
    assert.ok(!fs.existsSync(target));
  });

  test('restore refuses a data directory that already has a database or a CA, and changes nothing', async () => {
    const before = treeOf(w.dir);
    const r = await k(w.dir, ['restore', '--from', path.join(backups, 'quiet')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `kenshin: ${path.join(w.dir, 'kenshin.sqlite')} already exists: restore only into a data directory without an installation (move the old one away first)\n`);
    assert.deepEqual(Object.keys(treeOf(w.dir)).sort(), Object.keys(before).sort());
    assert.deepEqual(fs.readdirSync(w.dir).filter((n) => n.startsWith('.kenshin-restore')), []);

    const caOnly = tempDir();
    fs.mkdirSync(path.join(caOnly, 'ca'));
    const c = await k(caOnly, ['restore', '--from', path.join(backups, 'quiet')]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, new RegExp(`${path.join(caOnly, 'ca')} already exists`));
    assert.deepEqual(fs.readdirSync(caOnly), ['ca']);
  });

  test('restore without the CA passphrase the keys need is refused before anything is in place', async () => {
    const parent = tempDir();
    const target = path.join(parent, 'data');
    const r = await k(target, ['restore', '--from', path.join(backups, 'quiet')], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^kenshin: the CA key in .*quiet\/ca cannot be opened: the backup holds no CA passphrase \(it came from KENSHIN_CA_PASSPHRASE\): set it and run the restore again\n$/);
    assert.deepEqual(fs.readdirSync(parent), []);
    const wrong = await k(target, ['restore', '--from', path.join(backups, 'quiet')], { KENSHIN_CA_PASSPHRASE: 'not it' });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /KENSHIN_CA_PASSPHRASE is not the passphrase it was encrypted with/);
    // An existing data directory is left exactly as empty as it was.
    fs.mkdirSync(target);
    assert.equal((await k(target, ['restore', '--from', path.join(backups, 'quiet')], {})).code, 2);
    assert.deepEqual(fs.readdirSync(target), []);
  });

  test('backup refuses a non-empty --out and a missing installation, and writes nothing', async () => {
    const full = path.join(backups, 'quiet');
    const before = treeOf(full);
    const r = await k(w.dir, ['backup', '--out', full]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `kenshin: ${full} already exists and is not an empty directory; back up into a new directory\n`);
    assert.deepEqual(treeOf(full), before);
    const file = path.join(backups, 'a-file');
    fs.writeFileSync(file, 'x');
    assert.equal((await k(w.dir, ['backup', '--out', file])).code, 2);

    const empty = tempDir();
    const none = await k(empty, ['backup', '--out', path.join(backups, 'nothing')]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no CA at .*root\.crt: nothing to back up/);
    assert.ok(!fs.existsSync(path.join(backups, 'nothing')));
    const usage = await k(w.dir, ['backup']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /required option '--out <DIR>'/);
  });

  test('restore into a directory the operator cannot write to is refused with one line', () => {
    const parent = tempDir();
    fs.chmodSync(parent, 0o555);
    const r = kenshinProcess(['--data-dir', path.join(parent, 'data'), 'restore', '--from', path.join(backups, 'quiet')], { env: ENV, obeyPermissions: true });
    fs.chmodSync(parent, 0o755);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `kenshin: cannot restore into ${path.join(parent, 'data')}: ${parent} is not writable (EACCES)\n`);
    assert.deepEqual(fs.readdirSync(parent), []);
  });

  test('a backup that fails half-way leaves no directory behind', () => {
    // The real binary without CAP_DAC_OVERRIDE cannot read a 0000 key: the failure comes after the
    // database was copied, so the partial directory existed and must be gone.
    const key = path.join(w.dir, 'ca', 'root.key');
    const parent = tempDir();
    fs.chmodSync(key, 0o000);
    try {
      const r = kenshinProcess(['--data-dir', w.dir, 'backup', '--out', path.join(parent, 'b')], { env: ENV, obeyPermissions: true });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /EACCES/);
    } finally {
      fs.chmodSync(key, 0o600);
    }
    assert.deepEqual(fs.readdirSync(parent), []);
  });
});

/** Runs a command line exactly as Kenshin printed it, with the database URL in the environment as the operator has it. */
function runPrinted(commandLine: string, databaseUrl: string): void {
  const r = spawnSync('sh', ['-c', commandLine], { env: childEnv({ KENSHIN_DATABASE_URL: databaseUrl }), encoding: 'utf8' });
  assert.equal(r.status, 0, `${commandLine}\n${r.stderr}`);
}

// PostgreSQL: the files come from `kenshin backup`, the database from the pg_dump / pg_restore lines
// it prints. Runs wherever the rest of the suite runs on PostgreSQL (KENSHIN_TEST_DATABASE_URL).
if (process.env.KENSHIN_TEST_DATABASE_URL) {
  describe('kenshin backup / restore on PostgreSQL with pg_dump and pg_restore', async () => {
    const w = await makePortalWorld('postgres');
    const url = w.config.databaseUrl!;
    const db = w.runtime.database.db;
    const k = (dataDir: string, args: string[], databaseUrl: string) => kenshin(['--data-dir', dataDir, ...args], { env: { ...ENV, KENSHIN_DATABASE_URL: databaseUrl }, clock: w.clock });
    const renewed = await w.cert(60);
    const renewal = (await w.client(renewed).request('POST', '/api/v1/certificate/renewal', { json: {} })).json<{ serial: string }>();
    const revoked = await w.cert(400);
    await revokeCertificate({ db, clock: w.clock }, { serial: revoked.row.serial, reason: 'keyCompromise', actor: 'test' });
    const out = path.join(tempDir('kenshin-backups-'), 'pg');
    const fresh = async () => {
      const d = await freshDatabaseUrl('postgres');
      after(() => d.drop());
      return d.url!;
    };

    const b = await k(w.dir, ['backup', '--out', out], url);
    assert.equal(b.code, 0, b.stderr);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as BackupManifest;
    const dumpLine = /^database: PostgreSQL is not in this backup; dump it into it now: (pg_dump .*)$/m.exec(b.stdout)?.[1];

    test('backup holds the files and prints the exact pg_dump line', () => {
      assert.equal(dumpLine, `pg_dump --format=custom --file ${path.join(out, 'kenshin.pgdump')} "$KENSHIN_DATABASE_URL"`);
      assert.deepEqual(m.database, { dialect: 'postgres', dumpFile: 'kenshin.pgdump', dumpCommand: dumpLine });
      assert.deepEqual(
        m.files.map((f) => f.path),
        ['ca/issuing.crt', 'ca/issuing.key', 'ca/root.crt', 'ca/root.key', 'secrets/gateway-signing-key', 'secrets/package-key', 'server/server.crt', 'server/server.key'],
      );
      assert.equal(m.snapshot.counts.certificates, 3);
      assert.equal(m.snapshot.counts.revokedCertificates, 1);
      assert.ok(!b.stdout.includes(url), 'the database URL (with its password) is not printed');
      runPrinted(dumpLine!, url);
      assert.ok(fs.statSync(path.join(out, 'kenshin.pgdump')).size > 0);
    });

    test('restore of the files into an empty database leaves it alone and prints pg_restore; after it everything is back', async () => {
      const target = path.join(tempDir(), 'data');
      const targetUrl = await fresh();
      const r = await k(target, ['restore', '--from', out, '--json'], targetUrl);
      assert.equal(r.code, 0, r.stderr);
      const rr = r.json<RestoreResult>();
      assert.equal(rr.database, 'awaiting_pg_restore');
      assert.equal(rr.pgRestoreCommand, `pg_restore --no-owner --no-acl --exit-on-error --single-transaction --dbname "$KENSHIN_DATABASE_URL" ${path.join(out, 'kenshin.pgdump')}`);
      assert.deepEqual(fs.readdirSync(target).sort(), ['ca', 'secrets', 'server']);
      runPrinted(rr.pgRestoreCommand!, targetUrl); // fails if restore had created tables
      const verify = await k(target, ['audit', 'verify'], targetUrl);
      assert.equal(verify.code, 0, verify.stderr);
      for (const args of [['tenant', 'list', '--json'], ['cert', 'list', '--json']]) {
        assert.deepEqual((await k(target, args, targetUrl)).json(), (await k(w.dir, args, url)).json(), args.join(' '));
      }
    });

    test('pg_restore first, then restore verifies the database; a server on it accepts the restored certificates', async () => {
      const target = path.join(tempDir(), 'data');
      const targetUrl = await fresh();
      runPrinted(pgRestoreCommand(out), targetUrl);
      const r = await k(target, ['restore', '--from', out, '--json'], targetUrl);
      assert.equal(r.code, 0, r.stderr);
      const rr = r.json<RestoreResult>();
      assert.equal(rr.database, 'verified');
      // The dump was taken after the files: it also holds the backup.created event; then the restore's.
      assert.deepEqual(rr.counts, { ...m.snapshot.counts, auditEvents: m.snapshot.counts.auditEvents + 2 });
      assert.deepEqual(rr.audit, { ok: true, events: m.snapshot.audit.count + 2 });
      const server = await startServer({ ...w.config, dataDir: target, databaseUrl: targetUrl }, { clock: w.clock });
      try {
        const client = (cert: { file: Uint8Array; password: string }) => new TlsClient(server.url, w.ca, cert);
        const mine = await client(renewed).get('/api/v1/certificate');
        assert.equal(mine.status, 200, mine.text);
        assert.equal(mine.json<{ successor: { serial: string } }>().successor.serial, renewal.serial);
        assert.equal((await client(revoked).get('/api/v1/certificate')).json().error, 'certificate_revoked');
      } finally {
        await server.close();
      }
    });

    test('a PostgreSQL backup is not restored without a database URL', async () => {
      const r = await kenshin(['--data-dir', path.join(tempDir(), 'data'), 'restore', '--from', out], { env: ENV });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /KENSHIN_DATABASE_URL: this backup is of a PostgreSQL installation: set KENSHIN_DATABASE_URL/);
    });
  });
}
