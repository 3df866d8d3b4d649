import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { dashboard, dashboardSort, expiringPage, DASHBOARD_PAGE, DASHBOARD_SORTS, type ExpiringTenant } from '../../src/admin/dashboard.js';
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

/**
 * The tenants to chase in each order the console offers (column headers): every page a keyset range,
 * so walking the pages must give each certificate once and in order — ties on the expiry included.
 */
for (const dialect of testDialects()) {
  describe(`the tenants to chase, sorted, on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const db = w.runtime.database.db;
    const now = w.clock.now().getTime();
    const codes = ['T0300', 'T0100', 'T0200'];
    for (const code of codes) await addTenant({ db, clock: w.clock }, { code, name: `医院 ${code}` }, 'test');
    const tenants = await db.selectFrom('tenants').select(['id', 'code']).execute();
    let n = 0;
    for (const t of tenants) {
      for (let i = 0; i < 45; i++) {
        n++;
        // Days 1..15, so many certificates share one expiry (the tie the id breaks).
        const notAfter = new Date(now + (1 + ((n * 7) % 15)) * DAY_MS).toISOString();
        await sql`insert into certificates (serial, tenant_id, subject, subject_der, key_type, fingerprint_sha256, not_before, not_after, status, issued_via, issuer_fingerprint, pem, created_at)
          values (${(0x1000 + n).toString(16)}, ${t.id}, ${`CN=${t.code}`}, '', 'p256', ${n.toString(16).padStart(64, '0')}, ${new Date(now - 1000 * DAY_MS).toISOString()}, ${notAfter}, 'active', 'operator', 'issuer', '', ${new Date(now).toISOString()})`.execute(db);
      }
    }
    const walk = async (sort: (typeof DASHBOARD_SORTS)[number]) => {
      const all: ExpiringTenant[] = [];
      let cursor: string | undefined;
      do {
        const page = await expiringPage(db, w.clock, cursor, sort);
        all.push(...page.rows);
        cursor = page.next;
      } while (cursor);
      return all;
    };
    const key = (e: ExpiringTenant) => e.notAfter;

    test('soonest first (the default), latest first, by tenant: each certificate once, in that order', async () => {
      for (const sort of DASHBOARD_SORTS) {
        const rows = await walk(sort);
        assert.equal(rows.length, 135, sort);
        assert.equal(new Set(rows.map((r) => r.serial)).size, 135, `${sort}: each once`);
        for (let i = 1; i < rows.length; i++) {
          const [a, b] = [rows[i - 1]!, rows[i]!];
          if (sort === 'expiry') assert.ok(key(a) <= key(b), `${sort} at ${i}`);
          if (sort === 'expiry-desc') assert.ok(key(a) >= key(b), `${sort} at ${i}`);
          if (sort === 'tenant') assert.ok(a.tenantCode < b.tenantCode || (a.tenantCode === b.tenantCode && key(a) <= key(b)), `${sort} at ${i}`);
        }
      }
      assert.deepEqual([...new Set((await walk('tenant')).map((r) => r.tenantCode))], ['T0100', 'T0200', 'T0300']);
      const d = await dashboard(db, w.clock, { sort: 'expiry-desc' });
      assert.equal(d.sort, 'expiry-desc');
      assert.deepEqual(d.expiringTenants.map((r) => r.serial), (await walk('expiry-desc')).slice(0, DASHBOARD_PAGE).map((r) => r.serial));
    });

    test('an unknown order is the default; a cursor of another order gives that order’s first page', async () => {
      assert.equal(dashboardSort('tenant'), 'tenant');
      assert.equal(dashboardSort('name; drop table'), 'expiry');
      assert.equal(dashboardSort(undefined), 'expiry');
      const byExpiry = await expiringPage(db, w.clock);
      const byTenant = await expiringPage(db, w.clock, undefined, 'tenant');
      assert.deepEqual((await expiringPage(db, w.clock, byExpiry.next, 'tenant')).rows.map((r) => r.serial), byTenant.rows.map((r) => r.serial));
    });
  });
}
