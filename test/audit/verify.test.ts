import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { testDialects, openTestDatabase } from '../helpers/databases.js';
import { appendAudit } from '../../src/audit/log.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { tempDir } from '../helpers/tmp.js';
import { kenshin } from '../helpers/cli.js';

for (const dialect of testDialects()) {
  describe(`audit verification on ${dialect}`, () => {
    /** A fresh log of five events. */
    async function log() {
      const database = await openTestDatabase(dialect, tempDir());
      for (let i = 1; i <= 5; i++) {
        await database.db.transaction().execute((trx) => appendAudit(trx, new Date(`2026-11-25T00:00:0${i}Z`), { actor: 'test', action: `event.${i}`, details: { i } }));
      }
      const ids = (await database.db.selectFrom('audit_events').select('id').orderBy('id').execute()).map((r) => r.id);
      return { database, ids };
    }

    test('an untouched chain verifies', async () => {
      const { database } = await log();
      assert.deepEqual(await verifyAuditChain(database.db), { ok: true, events: 5 });
      await database.drop();
    });

    test('a modified row is reported as modified, at that row', async () => {
      const { database, ids } = await log();
      await database.db.updateTable('audit_events').set({ details: '{"i":99}' }).where('id', '=', ids[2]!).execute();
      const r = await verifyAuditChain(database.db);
      assert.equal(r.ok, false);
      assert.deepEqual([!r.ok && r.problem, !r.ok && r.rowId], ['modified', ids[2]]);
      await database.drop();
    });

    test('a deleted row breaks the link of the row after it', async () => {
      const { database, ids } = await log();
      await database.db.deleteFrom('audit_events').where('id', '=', ids[1]!).execute();
      const r = await verifyAuditChain(database.db);
      assert.deepEqual([!r.ok && r.problem, !r.ok && r.rowId], ['broken_link', ids[2]]);
      await database.drop();
    });

    test('a forged row appended with a correctly computed hash is caught by the head', async () => {
      const { database, ids } = await log();
      const last = await database.db.selectFrom('audit_events').selectAll().where('id', '=', ids[4]!).executeTakeFirstOrThrow();
      const { eventHash } = await import('../../src/audit/log.js');
      const forged = { at: last.at, actor: 'attacker', action: 'certificate.issued', tenant_id: null, target: null, details: '{}' };
      await database.db.insertInto('audit_events').values({ ...forged, prev_hash: last.hash, hash: eventHash(last.hash, forged) }).execute();
      const r = await verifyAuditChain(database.db);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.problem, 'head_mismatch');
      await database.drop();
    });

    test('rows deleted at the end are caught by the head', async () => {
      const { database, ids } = await log();
      await database.db.deleteFrom('audit_events').where('id', '=', ids[4]!).execute();
      const r = await verifyAuditChain(database.db);
      assert.deepEqual([!r.ok && r.problem, !r.ok && r.rowId], ['head_mismatch', ids[3]]);
      await database.drop();
    });
  });
}

test('kenshin audit verify: exit 0 when intact, 1 naming the row when tampered', async () => {
  const dir = tempDir();
  assert.equal((await kenshin(['--data-dir', dir, 'init', '--demo'], { env: { KENSHIN_DATABASE_URL: undefined } })).code, 0);
  const ok = await kenshin(['--data-dir', dir, 'audit', 'verify']);
  assert.equal(ok.code, 0);
  assert.match(ok.stdout, /audit chain intact: \d+ events/);
  const { openDatabase } = await import('../../src/db/database.js');
  const database = openDatabase({ url: undefined, sqliteFile: `${dir}/kenshin.sqlite` });
  const first = await database.db.selectFrom('audit_events').select('id').orderBy('id').executeTakeFirstOrThrow();
  await sql`update audit_events set actor = 'someone else' where id = ${first.id}`.execute(database.db);
  await database.close();
  const bad = await kenshin(['--data-dir', dir, 'audit', 'verify']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, new RegExp(`audit chain BROKEN: audit row ${first.id} \\(tenant\\.created\\) was modified`));
});
