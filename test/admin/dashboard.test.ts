import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { dashboard, expiringPage, DASHBOARD_PAGE } from '../../src/admin/dashboard.js';
import { DAY_MS } from '../../src/clock.js';

/**
 * The dashboard at scale: more certificates expiring within 90 days than a query may have
 * parameters (SQLite allows 32,766; the reminders of the expiring certificates used to be looked
 * up with one parameter per certificate, and the page failed).
 */
const EXPIRING = 33_000;

for (const dialect of testDialects()) {
  describe(`dashboard with ${EXPIRING} expiring certificates on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const db = w.runtime.database.db;
    const tenant = await addTenant({ db, clock: w.clock }, { code: 'T0001', name: '山田クリニック', email: 'office@yamada.example.jp' }, 'test');
    const now = w.clock.now().getTime();
    const notBefore = new Date(now - 1000 * DAY_MS).toISOString();
    const notAfter = new Date(now + 30 * DAY_MS).toISOString();
    // Rows made by the database itself: the dashboard reads only these columns' values.
    const rows =
      dialect === 'sqlite'
        ? sql`with recursive n(i) as (select 1 union all select i + 1 from n where i < ${EXPIRING}) select printf('%x', 4096 + i) as serial, printf('%064x', i) as fp from n`
        : sql`select to_hex(4096 + i) as serial, lpad(to_hex(i), 64, '0') as fp from generate_series(1, ${EXPIRING}) as i`;
    await sql`insert into certificates (serial, tenant_id, subject, subject_der, key_type, fingerprint_sha256, not_before, not_after, status, issued_via, issuer_fingerprint, pem, created_at)
      select serial, ${tenant.id}, 'CN=T0001, O=山田クリニック', '', 'p256', fp, ${notBefore}, ${notAfter}, 'active', 'operator', 'issuer', '', ${notBefore} from (${rows}) as g`.execute(db);
    const reminded = await db.selectFrom('certificates').select('id').orderBy('id').executeTakeFirstOrThrow();
    const sentAt = new Date(now - DAY_MS).toISOString();
    await db.insertInto('reminders').values({ certificate_id: reminded.id, threshold: 30, status: 'sent', recipient: 'office@yamada.example.jp', claimed_at: sentAt, sent_at: sentAt }).execute();

    test('counts every one; the pages list every one once, with the date of its last reminder', async () => {
      const d = await dashboard(db, w.clock);
      assert.deepEqual(
        d.buckets.map((b) => b.count),
        [0, EXPIRING, EXPIRING, EXPIRING],
      );
      assert.equal(d.months.reduce((n, m) => n + m.count, 0), EXPIRING);
      assert.equal(d.expiringTenants.length, DASHBOARD_PAGE);
      assert.ok(d.next);
      // Walk the pages as the console's 「次の50件」 link does.
      const seen = new Set<string>();
      let withReminder: (string | null)[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await expiringPage(db, w.clock, cursor);
        for (const e of page.rows) {
          assert.ok(!seen.has(e.serial), `${e.serial} listed twice`);
          seen.add(e.serial);
        }
        withReminder = withReminder.concat(page.rows.filter((e) => e.lastReminderAt !== null).map((e) => e.lastReminderAt));
        cursor = page.next;
        pages++;
      } while (cursor);
      assert.equal(seen.size, EXPIRING);
      assert.equal(pages, Math.ceil(EXPIRING / DASHBOARD_PAGE));
      assert.deepEqual(withReminder, [sentAt]);
    });

    test('a cursor that is not one of ours is the first page, not an error', async () => {
      const first = await expiringPage(db, w.clock);
      for (const bad of ['', 'x', Buffer.from(`${new Date().toISOString()}|1 or 1=1`).toString('base64url')]) {
        assert.deepEqual((await expiringPage(db, w.clock, bad)).rows.map((r) => r.serial), first.rows.map((r) => r.serial));
      }
    });
  });
}
