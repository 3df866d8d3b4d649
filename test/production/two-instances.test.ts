import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { sql, type Kysely } from 'kysely';
import { freshDatabaseUrl } from '../helpers/databases.js';
import { tempDir } from '../helpers/tmp.js';
import { kenshin } from '../helpers/cli.js';
import { spawnInstance, waitReady, serverCertificate, simultaneousRequests, type Instance } from '../helpers/instances.js';
import { smtpServer } from '../helpers/smtp.js';
import { TlsClient } from '../helpers/client.js';
import { loginAs } from '../helpers/portal-world.js';
import { run } from '../helpers/openssl.js';
import { loadConfig } from '../../src/config.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { DAY_MS } from '../../src/clock.js';
import type { Schema } from '../../src/db/schema.js';

/**
 * Two real `kenshin serve` processes on one PostgreSQL database and one data directory, as an
 * operator runs them behind a load balancer: start-up races (init, migrations, server certificate,
 * CRL, package key), one renewal for 100 simultaneous requests, shared sessions, reminders mailed
 * once, and one CRL. The processes use the real clock, so the fixtures are dated from now.
 */

const ADMIN_URL = process.env.KENSHIN_TEST_DATABASE_URL;
const PASSWORD = 'correct horse battery';
/** Every migration the code has, from its folder, so a new one needs no change here. */
const MIGRATIONS = fs
  .readdirSync(path.resolve(import.meta.dirname, '../../src/db/migrations'))
  .filter((f) => /^\d{3}_\w+\.ts$/.test(f))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();

/** The names in Kysely's migration table, in order: each must be there exactly once. */
async function recordedMigrations(db: Kysely<Schema>): Promise<string[]> {
  const r = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return r.rows.map((m) => m.name);
}

/** Each instance's environment: one data dir, one database, quiet logs, one mint worker each (2 cores). */
function instanceEnv(dataDir: string, databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { KENSHIN_DATA_DIR: dataDir, KENSHIN_DATABASE_URL: databaseUrl, KENSHIN_METRICS_LISTEN: 'off', KENSHIN_LOG_LEVEL: 'warn', KENSHIN_MINT_WORKERS: '1',
    // The login flood sends 150 connections to each from one address: the per-address cap would turn most away first.
    KENSHIN_MAX_CONNECTIONS_PER_ADDRESS: '0', ...extra };
}

/** Starts both at the same moment. */
async function spawnPair(args: string[], env: Record<string, string>): Promise<[Instance, Instance]> {
  return Promise.all([spawnInstance('A', args, env), spawnInstance('B', args, env)]);
}

/** Starts both at the same moment and waits until both answer /healthz. */
async function startPair(args: string[], env: Record<string, string>, dataDir: string): Promise<[Instance, Instance]> {
  const pair = await spawnPair(args, env);
  await Promise.all(pair.map((i) => waitReady(i, dataDir)));
  return pair;
}

/** Kysely's migration lock on PostgreSQL: a session advisory lock with this key (kysely/dist/esm/dialect/postgres/postgres-adapter.js). */
const KYSELY_MIGRATION_LOCK = '3853314791062309107';

/** Polls `check` until it holds; the deadline only stops a hung test, with `what` in the message. */
async function until(check: () => Promise<boolean>, what: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts both with our own hold on a lock both need at start, lets go once both wait for it, then
 * waits until both are ready: whatever their start-up times, both then go on, and run the start-up
 * housekeeping (CRL, reminders), at the same moment. On an empty database the lock is the migration
 * lock (that they wait at all shows it works); on a migrated one nothing takes it (migrate only reads
 * what has run), so the reminders table is held instead: the start-up reminder run reads it.
 */
async function startInLockstep(env: Record<string, string>, dataDir: string, databaseUrl: string, hold: 'migration' | 'reminders' = 'migration'): Promise<[Instance, Instance]> {
  const holder = new pg.Client({ connectionString: databaseUrl });
  await holder.connect();
  let pair: [Instance, Instance];
  try {
    if (hold === 'migration') await holder.query(`select pg_advisory_lock(${KYSELY_MIGRATION_LOCK})`);
    else await holder.query('begin; lock table reminders in access exclusive mode');
    pair = await spawnPair(['serve'], env);
    const waiting = async () => {
      const r = await holder.query<{ n: number }>(`select count(*)::int as n from pg_locks where locktype = '${hold === 'migration' ? 'advisory' : 'relation'}' and not granted and database = (select oid from pg_database where datname = current_database())`);
      return r.rows[0]!.n === 2;
    };
    await until(waiting, `both instances waiting for the ${hold} lock\nA: ${pair[0].stderr}\nB: ${pair[1].stderr}`);
    if (hold === 'migration') await holder.query(`select pg_advisory_unlock(${KYSELY_MIGRATION_LOCK})`);
    else await holder.query('commit');
  } finally {
    await holder.end();
  }
  await Promise.all(pair.map((i) => waitReady(i, dataDir)));
  return pair;
}

/** Pino writes one JSON line per event on stdout; warnings and errors have level ≥ 40. */
function complaints(i: Instance): string[] {
  return i.stdout.split('\n').filter((l) => l.startsWith('{') && (JSON.parse(l) as { level: number }).level >= 40);
}

async function stopQuietly(...instances: Instance[]): Promise<void> {
  const codes = await Promise.all(instances.map((i) => i.stop()));
  for (const [n, i] of instances.entries()) {
    assert.equal(codes[n], 0, `${i.name} exit code; stderr:\n${i.stderr}`);
    assert.equal(i.stderr, '', `${i.name} wrote to stderr`);
    assert.deepEqual(complaints(i), [], `${i.name} logged warnings or errors`);
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

if (!ADMIN_URL) {
  // CI always sets it (.ci/run starts PostgreSQL); without a server there is nothing to run here.
  describe('two kenshin serve instances on PostgreSQL: not run, KENSHIN_TEST_DATABASE_URL is not set', () => {});
} else {
  describe('two `kenshin serve --init` started at once on an empty data directory and database', () => {
    const dataDir = path.join(tempDir(), 'data');
    let db: Awaited<ReturnType<typeof freshDatabaseUrl>>;
    let a: Instance | undefined;
    let b: Instance | undefined;
    after(async () => {
      await Promise.all([a, b].filter((i) => i !== undefined).map((i) => i.stop()));
      await db?.drop();
    });

    test('one initialises, the other waits and serves the same installation', async () => {
      db = await freshDatabaseUrl('postgres');
      const env = instanceEnv(dataDir, db.url!);
      [a, b] = await startPair(['serve', '--init'], env, dataDir);
      // Exactly one of them created the CA and the demo (and said so); the other waited for it.
      const inits = [a, b].filter((i) => /initialised /.test(i.stdout));
      assert.equal(inits.length, 1, `A:\n${a.stdout}\nB:\n${b.stdout}`);
      assert.match(inits[0]!.stdout, /login: +demo \/ \S+/);

      const ca = fs.readFileSync(path.join(dataDir, 'ca', 'root.crt'), 'utf8');
      const [certA, certB] = await Promise.all([serverCertificate(a.url, ca), serverCertificate(b.url, ca)]);
      assert.equal(sha256(certA), sha256(certB), 'both present the one server certificate on disk');
      assert.deepEqual(fs.readdirSync(path.join(dataDir, 'ca')).sort(), ['issuing.crt', 'issuing.key', 'root.crt', 'root.key']);
      assert.deepEqual(
        fs.readdirSync(dataDir).filter((f) => f.startsWith('.')),
        [],
        'no temporary CA directory or lock is left behind',
      );

      // The demo certificate (signed by the one CA, whose key the one passphrase file opens) works on both.
      const demo = { file: fs.readFileSync(path.join(dataDir, 'demo', 'demo.p12')), password: fs.readFileSync(path.join(dataDir, 'demo', 'demo-p12-password.txt'), 'utf8').trim() };
      for (const i of [a, b]) {
        const r = await new TlsClient(i.url, ca, demo).get('/api/v1/certificate');
        assert.equal(r.status, 200, `${i.name}: ${r.text}`);
        assert.equal(r.json().daysLeft, 60);
      }

      const rt = await openRuntime(loadConfig({ dataDir }, { KENSHIN_DATABASE_URL: db.url }));
      try {
        const q = rt.database.db;
        assert.deepEqual(await recordedMigrations(q), MIGRATIONS);
        assert.deepEqual((await q.selectFrom('tenants').select('code').execute()).map((t) => t.code), ['DEMO']);
        assert.equal((await q.selectFrom('certificates').select('id').execute()).length, 1);
        assert.equal((await q.selectFrom('users').select('id').execute()).length, 1);
      } finally {
        await rt.close();
      }
      const verify = await kenshin(['audit', 'verify'], { env: { KENSHIN_DATA_DIR: dataDir, KENSHIN_DATABASE_URL: db.url } });
      assert.equal(verify.code, 0, verify.stderr + verify.stdout);

      await stopQuietly(a, b);
    });
  });

  describe('two `kenshin serve` on one PostgreSQL database', () => {
    const dataDir = path.join(tempDir(), 'data');
    let db: Awaited<ReturnType<typeof freshDatabaseUrl>>;
    let rt: Runtime | undefined;
    let env: Record<string, string>;
    let ca: string;
    let a: Instance;
    let b: Instance;
    let smtp: Awaited<ReturnType<typeof smtpServer>>;
    const certs: Record<string, { serial: string; id: number; file: Uint8Array; password: string }> = {};
    after(async () => {
      // Servers first: the database is dropped under them otherwise (when a test failed before stopping them).
      await Promise.all([a, b].filter((i) => i !== undefined).map((i) => i.stop()));
      await rt?.close();
      await smtp?.close();
      await db?.drop();
    });

    test('both start at once on an empty database: migrated once, both up, nothing on stderr', async () => {
      // The CA (and its server certificate) from `kenshin init`; the PostgreSQL database stays empty.
      const init = await kenshin(['init'], { env: { KENSHIN_DATA_DIR: dataDir } });
      assert.equal(init.code, 0, init.stderr);
      fs.rmSync(path.join(dataDir, 'kenshin.sqlite'));
      // Both instances find no server certificate: they must not overwrite each other's key and certificate.
      fs.rmSync(path.join(dataDir, 'server'), { recursive: true });
      ca = fs.readFileSync(path.join(dataDir, 'ca', 'root.crt'), 'utf8');
      db = await freshDatabaseUrl('postgres');
      smtp = await smtpServer();
      env = instanceEnv(dataDir, db.url!, { KENSHIN_SMTP_URL: smtp.url, KENSHIN_MAIL_FROM: 'Kenshin Cloud <no-reply@kenshin.test>' });

      [a, b] = await startInLockstep(env, dataDir, db.url!);
      const [certA, certB] = await Promise.all([serverCertificate(a.url, ca), serverCertificate(b.url, ca)]);
      assert.equal(sha256(certA), sha256(certB), 'one server certificate, written once');
      assert.equal(a.stderr + b.stderr, '');

      rt = await openRuntime(loadConfig({ dataDir }, { KENSHIN_DATABASE_URL: db.url }));
      const q = rt.database.db;
      assert.deepEqual(await recordedMigrations(q), MIGRATIONS, 'each migration recorded exactly once');
      // Both published the CRLs at start on an empty table: one row per CA (root, issuing CA 1), signed once each.
      const crls = await q.selectFrom('crls').select(['number', 'der']).execute();
      assert.equal(crls.length, 2);
      for (const crl of crls) assert.ok(crl.der.length > 0);
    });

    test('fixtures: tenants, users and certificates, dated from now (the processes use the real clock)', async () => {
      const q = rt!.database.db;
      const deps = { db: q, clock: rt!.clock };
      await addTenant(deps, { code: 'T0001', name: '山田クリニック', email: 'office@yamada.example.jp' }, 'test');
      await addTenant(deps, { code: 'T0002', name: '佐藤医院' }, 'test'); // no contact: never mailed
      await addInstitution(deps, { tenantCode: 'T0002', number: '1312345678', name: '佐藤医院' }, 'test');
      await addUser(deps, { tenantCode: 'T0002', loginId: 'sato', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      await addUser(deps, { tenantCode: 'T0002', loginId: 'tanaka', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      await addUser(deps, { tenantCode: 'T0002', loginId: 'suzuki', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      await addTenant(deps, { code: 'OPERATORS', name: '運用者' }, 'test');
      await addUser(deps, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
      const certDeps = await rt!.certificateDeps();
      const now = Date.now();
      const issue = async (name: string, tenantCode: string, daysLeft: number) => {
        const r = await issueCertificate(certDeps, {
          tenantCode,
          keyType: 'p256',
          profile: 'compatible',
          validity: { kind: 'explicit', notBefore: new Date(now - 900 * DAY_MS), notAfter: new Date(now + daysLeft * DAY_MS + 3_600_000) },
          actor: 'test',
        });
        certs[name] = { serial: r.serial, id: r.row.id, file: r.pkcs12, password: r.password };
      };
      await issue('due', 'T0001', 45); // reminder threshold 60 is due
      await issue('renew', 'T0002', 60);
      await issue('session', 'T0002', 400);
      await issue('victim', 'T0002', 400);
      await issue('guesser', 'T0002', 400);
      await issue('guesser300', 'T0002', 400);
      await issue('operator', 'OPERATORS', 400);
      assert.equal(smtp.received.length, 0);
    });

    test('restarted together, both run the reminders at start: the due reminder is mailed once', async () => {
      await stopQuietly(a, b);
      [a, b] = await startInLockstep(env, dataDir, db.url!, 'reminders');
      // Ready means listening, and the start-up housekeeping (reminders included) runs before that.
      assert.equal(smtp.received.length, 1, `mails: ${smtp.received.map((m) => m.to.join(',')).join(' ')}`);
      assert.deepEqual(smtp.received[0]!.to, ['office@yamada.example.jp']);
      const q = rt!.database.db;
      const ledger = await q.selectFrom('reminders').selectAll().execute();
      assert.deepEqual(
        ledger.map((r) => [r.certificate_id, r.threshold, r.status]),
        [[certs.due!.id, 60, 'sent']],
      );
      const sent = await q.selectFrom('audit_events').select(['target']).where('action', '=', 'reminder.sent').execute();
      assert.deepEqual(sent, [{ target: `certificate:${certs.due!.serial}` }]);
    });

    test('100 simultaneous renewals of one certificate, 50 on each instance: one successor, one package', async () => {
      const cert = certs.renew!;
      const targets = Array.from({ length: 100 }, (_, n) => ({ base: (n % 2 ? b : a).url, method: 'POST', path: '/api/v1/certificate/renewal', headers: { 'content-type': 'application/json' }, body: '{}' }));
      const responses = await simultaneousRequests(targets, { ca, pfx: cert.file, passphrase: cert.password });
      for (const r of responses) assert.ok(r.status === 201 || r.status === 200, `${r.status} ${r.body}`);
      assert.equal(responses.filter((r) => r.status === 201).length, 1, 'exactly one request created the renewal');
      const bodies = responses.map((r) => JSON.parse(r.body) as { id: string; pass: string; serial: string; notAfter: string });
      assert.equal(new Set(bodies.map((x) => JSON.stringify([x.id, x.pass, x.serial, x.notAfter]))).size, 1, 'every answer names the same successor and package');

      const q = rt!.database.db;
      const successors = await q.selectFrom('certificates').select(['serial']).where('predecessor_id', '=', cert.id).execute();
      assert.deepEqual(successors, [{ serial: bodies[0]!.serial }]);
      const renewals = await q.selectFrom('renewals').select(['download_id', 'package_sealed']).where('predecessor_id', '=', cert.id).execute();
      assert.equal(renewals.length, 1);
      assert.equal(renewals[0]!.download_id, bodies[0]!.id);
      const issued = await q.selectFrom('audit_events').select('id').where('action', '=', 'renewal.issued').where('target', '=', `certificate:${cert.serial}`).execute();
      assert.equal(issued.length, 1);
      const started = await q.selectFrom('audit_events').select('id').where('action', '=', 'renewal.started').where('target', '=', `certificate:${cert.serial}`).execute();
      // Requests on one instance join the mint in flight there: at most one key per instance, not 100.
      assert.ok(started.length >= 1 && started.length <= 2, `renewal.started ${started.length}`);

      // The package opens with the password every answer gave, from the other instance too.
      const p12 = await new TlsClient(b.url, ca, cert).get(new URL(JSON.parse(responses[0]!.body).uri as string).pathname);
      assert.equal(p12.status, 200);
      const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${bodies[0]!.pass}`], p12.body);
      assert.match(run('openssl', ['x509', '-noout', '-serial'], pem), new RegExp(bodies[0]!.serial, 'i'));
    });

    test('a session opened on A works on B; logging out on B ends it on A', async () => {
      const cert = certs.session!;
      const onA = new TlsClient(a.url, ca, cert);
      const home = await loginAs(onA, 'sato');
      assert.match(home.text, /<h1>ホーム<\/h1>/);
      const onB = new TlsClient(b.url, ca, cert);
      for (const [k, v] of onA.cookies) onB.cookies.set(k, v);
      const homeB = await onB.get('/home');
      assert.equal(homeB.status, 200);
      assert.match(homeB.text, /<h1>ホーム<\/h1>/);
      assert.match(homeB.text, /佐藤医院/);
      const out = await onB.submit(homeB, '/logout');
      assert.equal(out.status, 303);
      const q = rt!.database.db;
      assert.equal((await q.selectFrom('sessions').select('id_hash').where('certificate_id', '=', cert.id).execute()).length, 0);
      // A still holds the cookie; the session behind it is gone.
      const again = await onA.get('/home');
      assert.equal(again.status, 303);
      assert.equal(again.headers.location, '/');
    });

    for (const [n, name, loginId] of [[40, 'guesser', 'tanaka'], [300, 'guesser300', 'suzuki']] as const) {
      test(`${n} wrong passwords sent to both at once: at most 5 are checked, each counted once, the login locks`, async () => {
        const cert = certs[name]!;
        const q = rt!.database.db;
        const tenant = await q.selectFrom('tenants').select('id').where('code', '=', 'T0002').executeTakeFirstOrThrow();
        const onA = new TlsClient(a.url, ca, cert);
        const page = await onA.get('/');
        const csrf = /name="_csrf" value="([^"]*)"/.exec(page.text)![1]!;
        const cookie = [...onA.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
        const body = new URLSearchParams({ _csrf: csrf, loginId, password: 'wrong guess' }).toString();
        const targets = Array.from({ length: n }, (_, i) => ({ base: (i % 2 ? b : a).url, method: 'POST', path: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body }));
        const responses = await simultaneousRequests(targets, { ca, pfx: cert.file, passphrase: cert.password });
        // Each is a wrong password (401) or the lock (429); never a server error.
        for (const r of responses) assert.ok(r.status === 401 || r.status === 429, `${r.status} ${r.body.slice(0, 300)}`);
        const failed = responses.filter((r) => r.status === 401).length;
        assert.ok(failed <= 5, `${failed} passwords checked over two instances`);
        const rows = await q.selectFrom('login_throttle').select(['key', 'failures', 'locked_until']).where('key', 'in', [`cert:${cert.id}`, `login:${tenant.id}:${loginId}`]).execute();
        assert.equal(rows.length, 2);
        for (const row of rows) {
          assert.equal(row.failures, failed, `${row.key}: every failure counted once`);
          assert.ok(row.locked_until, `${row.key} locked`);
        }
        const right = await onA.submit(page, '/login', { loginId, password: PASSWORD });
        assert.equal(right.status, 429, 'even the right password waits for the lock');
      });
    }

    test('the CRL is the same from both; a revocation in A’s console gives both the same new CRL', async () => {
      const fetchCrl = async (i: Instance) => {
        const r = await new TlsClient(i.url, ca).get('/crl/issuing.crl');
        assert.equal(r.status, 200);
        return r.body;
      };
      const crlNumber = (der: Buffer) => Number.parseInt(/crlNumber=(?:0x)?([0-9A-Fa-f]+)/.exec(run('openssl', ['crl', '-inform', 'DER', '-noout', '-crlnumber'], der))![1]!, 16);
      const [before, beforeB] = await Promise.all([fetchCrl(a), fetchCrl(b)]);
      assert.ok(before.equals(beforeB), 'byte-identical before');
      const victim = certs.victim!;
      assert.doesNotMatch(run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], before), new RegExp(victim.serial, 'i'));

      const ops = new TlsClient(a.url, ca, certs.operator!);
      await loginAs(ops, 'ops');
      const detail = await ops.get(`/admin/certificates/${victim.serial}`);
      assert.equal(detail.status, 200);
      const done = await ops.submit(detail, `/admin/certificates/${victim.serial}/revoke`, { reason: 'keyCompromise' });
      assert.equal(done.status, 303);

      const [afterA, afterB] = await Promise.all([fetchCrl(a), fetchCrl(b)]);
      assert.ok(afterA.equals(afterB), 'byte-identical after');
      assert.ok(crlNumber(afterA) > crlNumber(before), `cRLNumber ${crlNumber(afterA)} > ${crlNumber(before)}`);
      const text = run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], afterA);
      assert.match(text, new RegExp(`Serial Number: 0?${victim.serial}\\n`, 'i'));
      assert.match(text, /Key Compromise/);
      // Signed by the issuing CA both instances load.
      const chain = path.join(dataDir, 'chain.pem');
      fs.writeFileSync(chain, ca + fs.readFileSync(path.join(dataDir, 'ca', 'issuing.crt'), 'utf8'));
      assert.match(run('openssl', ['crl', '-inform', 'DER', '-noout', '-CAfile', chain], afterA), /verify OK/);
      // The revoked certificate is refused by B at once (B checks its database, not a cache).
      const refused = await new TlsClient(b.url, ca, victim).get('/api/v1/certificate');
      assert.equal(refused.status, 403);
      assert.equal(refused.json().error, 'certificate_revoked');
    });

    test('both stop cleanly: exit 0, nothing on stderr, no warnings logged; the audit chain did not fork', async () => {
      await stopQuietly(a, b);
      // Both instances appended to one hash chain at once.
      const verify = await kenshin(['audit', 'verify'], { env: { KENSHIN_DATA_DIR: dataDir, KENSHIN_DATABASE_URL: db.url } });
      assert.equal(verify.code, 0, verify.stderr + verify.stdout);
      const events = await rt!.database.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.ok(Number(events.n) > 20);

    });
  });
}
