import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';
import { markTakenUp, openPackage, renewalInfo, startRenewal, wipeExpiredPackages } from '../../src/renewal/service.js';
import { renewalStatus } from '../../src/renewal/policy.js';
import { Refusal } from '../../src/errors.js';
import { DAY_MS } from '../../src/clock.js';
import { openDatabase } from '../../src/db/database.js';
import { run } from '../helpers/openssl.js';
import { T0, daysAfter, jstDate, threeYearsAfter } from '../helpers/dates.js';

const refused = (code: string) => (e: unknown) => e instanceof Refusal && e.code === code;

test('the renewal window at its edges', () => {
  const notAfter = new Date('2027-03-01T00:00:00Z');
  const cert = { status: 'active' as const, not_before: '2024-03-01T00:00:00Z', not_after: notAfter.toISOString() };
  const at = (ms: number) => renewalStatus(cert, false, new Date(notAfter.getTime() - ms), 90);
  assert.equal(at(91 * DAY_MS).reason, 'not_in_window');
  assert.equal(at(90 * DAY_MS + 1000).reason, 'not_in_window');
  assert.equal(at(90 * DAY_MS).eligible, true);
  assert.equal(at(90 * DAY_MS).daysLeft, 90);
  assert.equal(at(1 * DAY_MS).eligible, true);
  assert.equal(at(1000).eligible, true);
  assert.equal(at(-1000).reason, 'certificate_expired');
  assert.equal(at(91 * DAY_MS).windowStart.toISOString(), '2026-12-01T00:00:00.000Z');
  assert.equal(renewalStatus(cert, true, new Date(notAfter.getTime() - DAY_MS), 90).reason, 'already_renewed');
  assert.equal(renewalStatus({ ...cert, status: 'revoked' }, false, new Date(notAfter.getTime() - DAY_MS), 90).reason, 'certificate_revoked');
});

for (const dialect of testDialects()) {
  describe(`renewal on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const deps = await w.runtime.renewalDeps();
    const { db } = deps;
    await addTenant({ db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
    const now = () => w.clock.now().getTime();
    /** A certificate with `days` left, issued 3 years before its expiry. */
    const certWith = async (days: number, label?: string) =>
      (
        await issueCertificate(deps, {
          tenantCode: 'T0001',
          keyType: 'p256',
          profile: 'compatible',
          label,
          validity: { kind: 'explicit', notBefore: new Date(now() - (1095 - days) * DAY_MS), notAfter: new Date(now() + days * DAY_MS) },
          actor: 'test',
        })
      ).row;

    test('a certificate 60 days from expiry renews into the same subject, 3 years from now', async () => {
      const old = await certWith(60, '受付PC');
      const r = await startRenewal(deps, old, 'cert:' + old.serial);
      assert.equal(r.created, true);
      assert.equal(r.successor.subject_der, old.subject_der);
      assert.equal(r.successor.subject, 'CN=T0001, O=山田クリニック, OU=受付PC');
      assert.equal(r.successor.not_after, threeYearsAfter());
      assert.equal(r.successor.predecessor_id, old.id);
      assert.equal(r.successor.issued_via, 'renewal');
      // The predecessor stays valid until its own expiry.
      const again = await db.selectFrom('certificates').selectAll().where('id', '=', old.id).executeTakeFirstOrThrow();
      assert.equal(again.status, 'active');
      // Marked as renewed in the successor's transaction (the trigger of migration 016): the dashboard counts by it.
      assert.equal(old.has_successor, 0);
      assert.equal(again.has_successor, 1);
      assert.equal(r.successor.has_successor, 0);
      const pkg = await openPackage(deps, { downloadId: r.renewal.download_id }, old);
      assert.equal(pkg.filename, `T0001_${jstDate(T0).replace(/-/g, '')}.p12`);
      assert.equal(pkg.contents.password, r.password);
      for (const [profile, mac] of [['compatible', /MAC: sha1/], ['modern', /MAC: sha256/]] as const) {
        const p12 = pkg.contents.pkcs12[profile]!;
        assert.match(run('openssl', ['pkcs12', '-info', '-noout', '-passin', `pass:${r.password}`], p12), mac);
        const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${r.password}`], p12);
        assert.match(run('openssl', ['x509', '-noout', '-serial'], pem), new RegExp(r.successor.serial, 'i'));
      }
      const info = await renewalInfo(deps, old);
      assert.equal(info.status.reason, 'already_renewed');
      assert.equal(info.successor?.serial, r.successor.serial);
      const audit = await db.selectFrom('audit_events').select('action').where('target', 'in', [`certificate:${old.serial}`, `certificate:${r.successor.serial}`]).orderBy('id').execute();
      assert.deepEqual(audit.map((a) => a.action), ['certificate.issued', 'renewal.started', 'certificate.issued', 'renewal.issued']);
    });

    test('20 concurrent starts for one certificate: exactly one successor, all get the same package', async () => {
      const old = await certWith(30);
      const results = await Promise.all(Array.from({ length: 20 }, () => startRenewal(deps, old, 'test')));
      const successors = await db.selectFrom('certificates').select('serial').where('predecessor_id', '=', old.id).execute();
      assert.equal(successors.length, 1);
      assert.deepEqual(new Set(results.map((r) => r.successor.serial)), new Set([successors[0]!.serial]));
      assert.deepEqual(new Set(results.map((r) => r.password)).size, 1);
      assert.equal(results.filter((r) => r.created).length, 1);
      const renewals = await db.selectFrom('renewals').select('id').where('predecessor_id', '=', old.id).execute();
      assert.equal(renewals.length, 1);
      // In one process the others joined the first start: one key was minted, not twenty.
      const started = await db.selectFrom('audit_events').select('id').where('action', '=', 'renewal.started').where('target', '=', `certificate:${old.serial}`).execute();
      assert.equal(started.length, 1);
    });

    test('concurrent starts from separate services (as from separate processes): the database decides, one successor', async () => {
      const old = await certWith(30);
      // Distinct deps objects share no in-process state, like two `kenshin serve` instances.
      const results = await Promise.all(Array.from({ length: 6 }, () => startRenewal({ ...deps }, old, 'test')));
      const successors = await db.selectFrom('certificates').select('serial').where('predecessor_id', '=', old.id).execute();
      assert.equal(successors.length, 1);
      assert.deepEqual(new Set(results.map((r) => r.successor.serial)), new Set([successors[0]!.serial]));
      assert.equal(results.filter((r) => r.created).length, 1);
      const started = await db.selectFrom('audit_events').select('id').where('action', '=', 'renewal.started').where('target', '=', `certificate:${old.serial}`).execute();
      // How many minted depends on timing: a service that looks after the winner's commit returns the
      // winner's package without minting. Each that did mint was discarded but one.
      assert.ok(started.length >= 1 && started.length <= 6, `${started.length} renewals started`);
    });

    test('refusals: outside the window, expired, revoked', async () => {
      const early = await certWith(91);
      await assert.rejects(startRenewal(deps, early, 'test'), (e: unknown) => refused('not_in_window')(e) && (e as Refusal).message.includes(daysAfter(1).slice(0, 16)));
      const expired = await certWith(-1);
      await assert.rejects(startRenewal(deps, expired, 'test'), refused('certificate_expired'));
      const revoked = await certWith(10);
      await revokeCertificate({ db, clock: w.clock }, { serial: revoked.serial, actor: 'test' });
      const revokedRow = await db.selectFrom('certificates').selectAll().where('id', '=', revoked.id).executeTakeFirstOrThrow();
      await assert.rejects(startRenewal(deps, revokedRow, 'test'), refused('certificate_revoked'));
      assert.equal((await db.selectFrom('certificates').select('id').where('predecessor_id', 'in', [early.id, expired.id, revoked.id]).execute()).length, 0);
    });

    test('the package: only for the predecessor and successor, gone after 7 days', async () => {
      const old = await certWith(45);
      const other = await certWith(45);
      const r = await startRenewal(deps, old, 'test');
      await openPackage(deps, { downloadId: r.renewal.download_id }, r.successor);
      await assert.rejects(openPackage(deps, { downloadId: r.renewal.download_id }, other), refused('not_your_package'));
      await assert.rejects(openPackage(deps, { downloadId: 'nope' }, old), refused('unknown_renewal'));
      assert.equal(await markTakenUp(deps, r.successor, 'test'), true);
      assert.equal(await markTakenUp(deps, r.successor, 'test'), false);
      assert.equal(await markTakenUp(deps, old, 'test'), false);
      // Another instance (its own connection, nothing remembered) sees it taken up too.
      const instance2 = openDatabase({ url: w.config.databaseUrl, sqliteFile: w.runtime.paths.sqliteFile });
      try {
        assert.equal(await markTakenUp({ db: instance2.db, clock: w.clock }, r.successor, 'test'), false);
      } finally {
        await instance2.close();
      }
      const takenUp = await db.selectFrom('audit_events').select('id').where('action', '=', 'renewal.taken_up').where('target', '=', `certificate:${r.successor.serial}`).execute();
      assert.equal(takenUp.length, 1, 'taken up once, audited once');
      w.clock.advance(7 * DAY_MS + 1000);
      try {
        await assert.rejects(openPackage(deps, { downloadId: r.renewal.download_id }, old), refused('package_expired'));
        assert.ok((await wipeExpiredPackages(deps)) >= 1);
        const row = await db.selectFrom('renewals').selectAll().where('id', '=', r.renewal.id).executeTakeFirstOrThrow();
        assert.equal(row.package_sealed, null);
        assert.ok(row.wiped_at);
        // A retry after the package is gone still does not mint a second successor.
        await assert.rejects(startRenewal(deps, old, 'test'), refused('package_expired'));
        assert.equal((await db.selectFrom('certificates').select('id').where('predecessor_id', '=', old.id).execute()).length, 1);
      } finally {
        w.clock.advance(-(7 * DAY_MS + 1000));
      }
    });

    test('sealed packages hold no readable password or key', async () => {
      const old = await certWith(20);
      const r = await startRenewal(deps, old, 'test');
      const row = await db.selectFrom('renewals').selectAll().where('id', '=', r.renewal.id).executeTakeFirstOrThrow();
      assert.ok(row.package_sealed);
      assert.ok(!row.package_sealed.includes(r.password));
      assert.ok(!Buffer.from(row.package_sealed.split('.')[3]!, 'base64').toString('latin1').includes(r.password));
    });
  });
}
