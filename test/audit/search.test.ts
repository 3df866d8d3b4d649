import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { kenshin } from '../helpers/cli.js';
import { addInstitution, addTenant } from '../../src/tenancy/service.js';
import { appendAudit } from '../../src/audit/log.js';
import { auditCsvStream, auditPages, type AuditFilter, type AuditRow } from '../../src/audit/search.js';
import type { Db } from '../../src/db/database.js';

/**
 * The export as it was before it streamed: up to 100,000 rows in one query and one string. Kept
 * here verbatim as the reference the streamed export must reproduce byte for byte.
 */
async function legacyCsv(db: Db, f: AuditFilter): Promise<string> {
  let q = db.selectFrom('audit_events as a').leftJoin('tenants as t', 't.id', 'a.tenant_id').selectAll('a').select('t.code as tenant_code').orderBy('a.id', 'desc').limit(100_000);
  if (f.tenantCode) q = q.where('t.code', '=', f.tenantCode);
  if (f.actor) q = q.where('a.actor', 'like', `%${f.actor.replace(/[%_]/g, '')}%`);
  if (f.action) q = q.where('a.action', '=', f.action);
  const rows: AuditRow[] = await q.execute();
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? '' : String(v);
    if (/^[=+\-@]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = ['id', 'at', 'tenant', 'actor', 'action', 'target', 'details', 'hash'];
  return [head.join(','), ...rows.map((r) => [r.id, r.at, r.tenant_code, r.actor, r.action, r.target, r.details, r.hash].map(cell).join(','))].join('\r\n') + '\r\n';
}

const collect = async (chunks: AsyncIterable<string>) => {
  let s = '';
  for await (const c of chunks) s += c;
  return s;
};

for (const dialect of testDialects()) {
  describe(`the audit CSV export streams in pages on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const db = w.runtime.database.db;
    const deps = { db, clock: w.clock };
    await addTenant(deps, { code: 'T0001', name: '山田クリニック, "本院"' }, 'operator:=cmd');
    await addTenant(deps, { code: 'T0002', name: '別の医院' }, 'test');
    await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: '本院' }, '-test');
    await addInstitution(deps, { tenantCode: 'T0002', number: '2712345678', name: '別の医院' }, '@test');

    test('a small log: the same bytes as before, whatever the page size, with and without filters', async () => {
      for (const f of [{}, { tenantCode: 'T0001' }, { actor: 'test' }, { action: 'tenant.created' }, { tenantCode: 'T0404' }] as AuditFilter[]) {
        const before = await legacyCsv(db, f);
        for (const pageSize of [1, 2, 3, 1000]) {
          assert.equal(await collect(auditCsvStream(db, f, { pageSize })), before, `${JSON.stringify(f)} pages of ${pageSize}`);
          assert.equal(await collect(auditCsvStream(db, f, { pageSize, bom: true })), '\ufeff' + before);
        }
      }
    });

    test('more rows than a page: every event once, newest first, pages never larger than asked', async () => {
      const tenant = await db.selectFrom('tenants').select('id').where('code', '=', 'T0002').executeTakeFirstOrThrow();
      for (let i = 0; i < 25; i++) {
        await db.transaction().execute(async (trx) => {
          for (let j = 0; j < 100; j++) await appendAudit(trx, w.clock.now(), { actor: 'bulk', action: 'bulk.event', tenantId: tenant.id, target: `n:${i * 100 + j}`, details: { i, j } });
        });
      }
      const total = Number((await db.selectFrom('audit_events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      assert.ok(total > 2500);
      let pages = 0;
      const ids: number[] = [];
      for await (const rows of auditPages(db, {}, 1000)) {
        pages++;
        assert.ok(rows.length <= 1000);
        ids.push(...rows.map((r) => r.id));
      }
      assert.equal(pages, Math.ceil(total / 1000));
      assert.equal(ids.length, total);
      assert.ok(ids.every((id, i) => i === 0 || id < ids[i - 1]!), 'strictly newest first, no repeats');
      const csv = await collect(auditCsvStream(db, {}));
      assert.equal(csv, await legacyCsv(db, {}));
      assert.equal(csv.split('\r\n').length - 2, total);
      const bulk = await collect(auditCsvStream(db, { actor: 'bulk' }, { pageSize: 7 }));
      assert.equal(bulk.split('\r\n').length - 2, 2500);
    });

    test('kenshin audit list --csv prints the same export (no BOM on the command line)', async () => {
      const r = await kenshin(['--data-dir', w.dir, 'audit', 'list', '--csv', '--tenant', 't0001'], { env: { KENSHIN_CA_PASSPHRASE: 'test-passphrase', KENSHIN_DATABASE_URL: w.config.databaseUrl } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, await legacyCsv(db, { tenantCode: 'T0001' }));
    });
  });
}
