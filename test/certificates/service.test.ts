import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { getCertificate, issueCertificate, listCertificates, recordCertificate, revokeCertificate, subjectDerOf } from '../../src/certificates/service.js';
import { effectiveStatus, daysLeft } from '../../src/certificates/status.js';
import { Refusal } from '../../src/errors.js';
import { DAY_MS } from '../../src/clock.js';
import { run } from '../helpers/openssl.js';
import { jstDate, threeYearsAfter } from '../helpers/dates.js';

const refused = (code: string) => (e: unknown) => e instanceof Refusal && e.code === code;

for (const dialect of testDialects()) {
  describe(`certificates on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const deps = await w.runtime.certificateDeps();
    const db = deps.db;
    await addTenant({ db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
    const issue = (extra: Partial<Parameters<typeof issueCertificate>[1]> = {}) =>
      issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test', ...extra });

    test('issuing records the certificate and its audit event together', async () => {
      const r = await issue({ label: '受付PC' });
      assert.equal(r.row.subject, 'CN=T0001, O=山田クリニック, OU=受付PC');
      assert.equal(r.row.not_after, threeYearsAfter());
      assert.equal(r.row.status, 'active');
      assert.equal(r.row.issued_via, 'operator');
      assert.equal(r.friendlyName, `山田クリニック 有効期限 ${jstDate(threeYearsAfter())}`);
      // The stored fingerprint is the SHA-256 of the certificate inside the .p12.
      const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${r.password}`], r.pkcs12);
      const der = run('openssl', ['x509', '-outform', 'DER'], pem);
      assert.ok(der.length > 0);
      const fp = run('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], pem).split('=')[1]!.trim().replace(/:/g, '').toLowerCase();
      assert.equal(r.row.fingerprint_sha256, fp);
      assert.equal(r.row.fingerprint_sha256, createHash('sha256').update(r.certificateDer).digest('hex'));
      const events = await db.selectFrom('audit_events').selectAll().where('target', '=', `certificate:${r.serial}`).execute();
      assert.equal(events.length, 1);
      assert.equal(events[0]!.action, 'certificate.issued');
      assert.ok(!events[0]!.details.includes(r.password), 'the package password never reaches the audit log');
    });

    test('refusals leave no certificate behind', async () => {
      const count = async () => (await db.selectFrom('certificates').select('id').execute()).length;
      const n = await count();
      await assert.rejects(issue({ tenantCode: 'NOPE' }), refused('unknown_tenant'));
      await assert.rejects(issue({ validity: { kind: 'explicit', notBefore: '2027-01-01T00:00:00Z', notAfter: '2026-01-01T00:00:00Z' } }), (e: unknown) => e instanceof Refusal && e.field === 'not-after');
      await assert.rejects(issue({ validity: { kind: 'explicit', notBefore: 'yesterday', notAfter: '2026-01-01T00:00:00Z' } }), (e: unknown) => e instanceof Refusal && e.field === 'not-before');
      await assert.rejects(issue({ validity: { kind: 'days', days: 0 } }), refused('invalid_input'));
      await assert.rejects(issue({ label: 'x'.repeat(65) }), refused('invalid_input'));
      assert.equal(await count(), n);
    });

    test('expiring-within lists valid certificates by expiry, not revoked or expired ones', async () => {
      await addTenant({ db, clock: w.clock }, { code: 'EXP', name: '期限テスト' }, 'test');
      const now = w.clock.now().getTime();
      const at = (days: number) => new Date(now + days * DAY_MS).toISOString();
      const mk = (nb: number, na: number) => issue({ tenantCode: 'EXP', validity: { kind: 'explicit', notBefore: at(nb), notAfter: at(na) } });
      const in30 = await mk(-1000, 30);
      const in90 = await mk(-1000, 90);
      await mk(-1000, 91);
      await mk(-1200, -1); // expired yesterday
      const revoked = await mk(-1000, 10);
      await revokeCertificate({ db, clock: w.clock }, { serial: revoked.serial, reason: 'keyCompromise', actor: 'test' });
      const list = await listCertificates({ db, clock: w.clock }, { tenantCode: 'EXP', expiringWithinDays: 90 });
      assert.deepEqual(list.map((c) => c.serial), [in30.serial, in90.serial]);
      assert.deepEqual(list.map((c) => c.daysLeft), [30, 90]);
      const all = await listCertificates({ db, clock: w.clock }, { tenantCode: 'EXP' });
      assert.deepEqual(all.map((c) => c.status).sort(), ['active', 'active', 'active', 'expired', 'revoked']);
      await assert.rejects(listCertificates({ db, clock: w.clock }, { expiringWithinDays: -1 }), refused('invalid_input'));
      // A page: the soonest first.
      const first = await listCertificates({ db, clock: w.clock }, { tenantCode: 'EXP', expiringWithinDays: 90, limit: 1 });
      assert.deepEqual(first.map((c) => c.serial), [in30.serial]);
      await assert.rejects(listCertificates({ db, clock: w.clock }, { limit: 0 }), refused('invalid_input'));
    });

    test('a successor keeps the exact subject even after the tenant is renamed', async () => {
      const first = await issue();
      await db.updateTable('tenants').set({ name: '改名後クリニック' }).where('code', '=', 'T0001').execute();
      const tenant = await db.selectFrom('tenants').selectAll().where('code', '=', 'T0001').executeTakeFirstOrThrow();
      const minted = await deps.minter.mint({
        subjectDer: subjectDerOf(first.row),
        displayName: tenant.name,
        keyType: 'p256',
        profile: 'modern',
        notBefore: w.clock.now(),
        notAfter: new Date(w.clock.now().getTime() + 1000 * DAY_MS),
      });
      const succ = await recordCertificate(deps, minted, { tenant, label: null, keyType: 'p256', issuedVia: 'renewal', predecessorId: first.row.id, actor: 'test' });
      assert.equal(succ.subject_der, first.row.subject_der);
      assert.equal(succ.subject, 'CN=T0001, O=山田クリニック');
      const shown = await getCertificate({ db, clock: w.clock }, first.serial);
      assert.deepEqual(shown.successorSerials, [succ.serial]);
      assert.equal((await getCertificate({ db, clock: w.clock }, succ.serial.toUpperCase())).predecessorSerial, first.serial);
      // A second renewal successor of the same certificate is refused by the database.
      const again = await deps.minter.mint({ subjectDer: subjectDerOf(first.row), displayName: tenant.name, keyType: 'p256', profile: 'modern', notBefore: w.clock.now(), notAfter: new Date(w.clock.now().getTime() + DAY_MS) });
      await assert.rejects(recordCertificate(deps, again, { tenant, label: null, keyType: 'p256', issuedVia: 'renewal', predecessorId: first.row.id, actor: 'test' }));
      await db.updateTable('tenants').set({ name: '山田クリニック' }).where('code', '=', 'T0001').execute();
    });

    test('revocation: once, with a known reason, audited', async () => {
      const c = await issue();
      await assert.rejects(revokeCertificate({ db, clock: w.clock }, { serial: c.serial, reason: 'lost it', actor: 'test' }), refused('invalid_input'));
      const v = await revokeCertificate({ db, clock: w.clock }, { serial: c.serial, reason: 'keyCompromise', actor: 'test' });
      assert.equal(v.status, 'revoked');
      assert.equal(v.revocationReason, 'keyCompromise');
      await assert.rejects(revokeCertificate({ db, clock: w.clock }, { serial: c.serial, actor: 'test' }), refused('certificate_already_revoked'));
      await assert.rejects(revokeCertificate({ db, clock: w.clock }, { serial: 'abcdef', actor: 'test' }), refused('unknown_certificate'));
      await assert.rejects(revokeCertificate({ db, clock: w.clock }, { serial: 'xyz', actor: 'test' }), refused('invalid_input'));
      const events = await db.selectFrom('audit_events').select('action').where('target', '=', `certificate:${c.serial}`).orderBy('id').execute();
      assert.deepEqual(events.map((e) => e.action), ['certificate.issued', 'certificate.revoked']);
    });
  });
}

test('status and days left at the edges', () => {
  const row = { status: 'active' as const, not_before: '2026-01-01T00:00:00.000Z', not_after: '2026-12-31T00:00:00.000Z' };
  assert.equal(effectiveStatus(row, new Date('2025-12-31T23:59:59Z')), 'not_yet_valid');
  assert.equal(effectiveStatus(row, new Date('2026-12-30T23:59:59Z')), 'active');
  assert.equal(effectiveStatus(row, new Date('2026-12-31T00:00:01Z')), 'expired');
  assert.equal(effectiveStatus({ ...row, status: 'revoked' }, new Date('2026-06-01T00:00:00Z')), 'revoked');
  const na = new Date('2026-12-31T00:00:00Z');
  assert.equal(daysLeft(na, new Date(na.getTime() - 90 * DAY_MS)), 90);
  assert.equal(daysLeft(na, new Date(na.getTime() - 90 * DAY_MS - 1000)), 91);
  assert.equal(daysLeft(na, new Date(na.getTime() - 1000)), 1);
  assert.equal(daysLeft(na, new Date(na.getTime() + 1000)), 0);
});
