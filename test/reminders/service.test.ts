import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { smtpServer as realSmtpServer } from '../helpers/smtp.js';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';
import { startRenewal } from '../../src/renewal/service.js';
import { runReminders, type ReminderDeps } from '../../src/reminders/service.js';
import { smtpMailer } from '../../src/reminders/smtp.js';
import { DAY_MS } from '../../src/clock.js';

/** The shared real SMTP server (helpers/smtp.ts), closed when the file ends. */
async function smtpServer() {
  const server = await realSmtpServer();
  after(() => server.close());
  return server;
}

/** nodemailer writes UTF-8 headers as RFC 2047 words and bodies as quoted-printable or base64. */
function decoded(rawMessage: string): string {
  const raw = rawMessage.replace(/\r?\n[ \t]/g, ''); // unfold long headers
  const words = raw.replace(/=\?UTF-8\?B\?([^?]+)\?=/gi, (_m, b64: string) => Buffer.from(b64, 'base64').toString('utf8')).replace(/\?=\s+=\?UTF-8\?[BQ]\?/gi, '');
  const body = raw.split(/\r?\n\r?\n/).slice(1).join('\n');
  let text = body;
  if (/Content-Transfer-Encoding: base64/i.test(raw)) text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else if (/Content-Transfer-Encoding: quoted-printable/i.test(raw)) text = Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  return words + '\n' + text;
}

for (const dialect of testDialects()) {
  describe(`reminders by mail on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const certDeps = await w.runtime.certificateDeps();
    const { db } = certDeps;
    const smtp = await smtpServer();
    await addTenant({ db, clock: w.clock }, { code: 'T0001', name: '山田クリニック', email: 'office@yamada.example.jp' }, 'test');
    await addTenant({ db, clock: w.clock }, { code: 'T0002', name: '連絡先なし医院' }, 'test');
    const now = w.clock.now().getTime();
    const cert = async (days: number, tenantCode = 'T0001') =>
      (await issueCertificate(certDeps, { tenantCode, keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + days * DAY_MS) }, actor: 'test' })).row;
    const c85 = await cert(85); // threshold 90
    const c29 = await cert(29); // threshold 30
    const c1 = await cert(1); // threshold 1
    await cert(120); // outside every threshold
    const renewed = await cert(20);
    await startRenewal(await w.runtime.renewalDeps(), renewed, 'test'); // has a successor: nothing
    const revoked = await cert(10);
    await revokeCertificate({ db, clock: w.clock }, { serial: revoked.serial, actor: 'test' });
    const expired = await cert(-2); // escalation to the operator
    const noContact = await cert(5, 'T0002');
    const deps: ReminderDeps = { db, clock: w.clock, mailer: smtpMailer(smtp.url, 'Kenshin Cloud <no-reply@kenshin.test>'), thresholds: [90, 60, 30, 15, 7, 3, 1], operatorEmail: 'ops@kenshin.test', portalUrl: 'https://portal.kenshin.test/' };

    test('a dry run lists what would be sent and sends nothing', async () => {
      const plan = await runReminders(deps, { dryRun: true });
      assert.deepEqual(
        plan.map((p) => [p.serial, p.threshold, p.result]).sort(),
        [
          [c85.serial, 90, 'would_send'],
          [c29.serial, 30, 'would_send'],
          [c1.serial, 1, 'would_send'],
          [expired.serial, 0, 'would_send'],
          [noContact.serial, 7, 'no_contact'],
        ].sort(),
      );
      assert.equal(smtp.received.length, 0);
    });

    test('the run mails exactly the expected reminders; a second run sends nothing new', async () => {
      const first = await runReminders(deps);
      assert.equal(first.filter((r) => r.result === 'sent').length, 4);
      assert.equal(smtp.received.length, 4);
      const toOffice = smtp.received.filter((m) => m.to.includes('office@yamada.example.jp')).map((m) => decoded(m.raw));
      assert.equal(toOffice.length, 3);
      const mail29 = toOffice.find((m) => m.includes(c29.serial))!;
      assert.match(mail29, /クライアント証明書の有効期限が近づいています（残り29日/);
      assert.match(mail29, /https:\/\/portal\.kenshin\.test\//);
      assert.match(mail29, /「取得する」/);
      const escalation = smtp.received.find((m) => m.to.includes('ops@kenshin.test'));
      assert.ok(escalation && decoded(escalation.raw).includes(expired.serial));
      const second = await runReminders(deps);
      assert.deepEqual(second.filter((r) => r.result === 'sent'), []);
      assert.equal(smtp.received.length, 4);
      const audit = await db.selectFrom('audit_events').select('action').where('action', 'like', 'reminder.%').execute();
      assert.equal(audit.filter((a) => a.action === 'reminder.sent').length, 3);
      assert.equal(audit.filter((a) => a.action === 'reminder.escalated').length, 1);
    });

    test('the next threshold is mailed once its day comes', async () => {
      w.clock.advance(26 * DAY_MS); // c85 now has 59 days left: the 60-day reminder
      try {
        const r = await runReminders(deps);
        assert.deepEqual(r.filter((x) => x.serial === c85.serial).map((x) => [x.threshold, x.result]), [[60, 'sent']]);
        // The others moved on too: 29 → 3 days left, and the one with 1 day left expired (escalation).
        assert.deepEqual(r.filter((x) => x.serial === c29.serial).map((x) => [x.threshold, x.result]), [[3, 'sent']]);
        assert.deepEqual(r.filter((x) => x.serial === c1.serial).map((x) => [x.threshold, x.result]), [[0, 'sent']]);
      } finally {
        w.clock.advance(-26 * DAY_MS);
      }
    });

    test('a failed send is not marked sent and is retried on the next run', async () => {
      const fresh = await cert(14);
      smtp.state.refuse = true;
      const failed = await runReminders(deps);
      assert.deepEqual(failed.filter((r) => r.serial === fresh.serial).map((r) => r.result), ['failed']);
      assert.equal((await db.selectFrom('reminders').select('status').where('certificate_id', '=', fresh.id).execute()).length, 0);
      smtp.state.refuse = false;
      const retried = await runReminders(deps);
      assert.deepEqual(retried.filter((r) => r.serial === fresh.serial).map((r) => r.result), ['sent']);
    });

    test('two runs at once (two instances) send each reminder once', async () => {
      const a = await cert(6);
      const b = await cert(2);
      const before = smtp.received.length;
      await Promise.all([runReminders(deps), runReminders(deps), runReminders(deps)]);
      const mine = smtp.received.slice(before).filter((m) => m.raw.includes(a.serial) || m.raw.includes(b.serial) || decoded(m.raw).includes(a.serial) || decoded(m.raw).includes(b.serial));
      assert.equal(mine.length, 2);
    });
  });
}

test('kenshin reminders run without SMTP is a dry run that lists what is due', async () => {
  const { kenshin } = await import('../helpers/cli.js');
  const { tempDir } = await import('../helpers/tmp.js');
  const dir = tempDir();
  assert.equal((await kenshin(['--data-dir', dir, 'init', '--demo'])).code, 0);
  const r = await kenshin(['--data-dir', dir, 'reminders', 'run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /KENSHIN_SMTP_URL is not set/);
  // The demo tenant has no contact address: the 60-day reminder has nobody to go to.
  assert.match(r.stdout, /DEMO\s+60\s+no_contact/);
});
