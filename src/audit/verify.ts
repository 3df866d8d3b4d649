import type { Db } from '../db/database.js';
import { GENESIS_HASH } from '../db/migrations/001_initial.js';
import { eventHash } from './log.js';

/**
 * Walks the audit chain from the genesis hash and reports the first row that does not fit:
 * - `modified`: the row's own fields no longer hash to its stored hash;
 * - `broken_link`: the row does not link to the row before it (a row was deleted or inserted there);
 * - `head_mismatch`: the chain's last hash or length differs from the head (rows removed at the end).
 * Ids are not used as evidence: PostgreSQL sequences leave gaps on rolled-back transactions.
 */
export type AuditVerification =
  | { ok: true; events: number }
  | { ok: false; events: number; problem: 'modified' | 'broken_link' | 'head_mismatch'; rowId: number | null; message: string };

export async function verifyAuditChain(db: Db): Promise<AuditVerification> {
  let prev = GENESIS_HASH;
  let count = 0;
  let lastId: number | null = null;
  // Paged, so a long log is verified in constant memory.
  for (;;) {
    let q = db.selectFrom('audit_events').selectAll().orderBy('id').limit(1000);
    if (lastId !== null) q = q.where('id', '>', lastId);
    const rows = await q.execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      if (row.prev_hash !== prev) {
        return { ok: false, events: count, problem: 'broken_link', rowId: row.id, message: `audit row ${row.id} does not follow the row before it: a row was deleted or inserted before it` };
      }
      if (eventHash(row.prev_hash, row) !== row.hash) {
        return { ok: false, events: count, problem: 'modified', rowId: row.id, message: `audit row ${row.id} (${row.action}) was modified after it was written` };
      }
      prev = row.hash;
      count++;
      lastId = row.id;
    }
  }
  const head = await db.selectFrom('audit_head').selectAll().where('id', '=', 1).executeTakeFirst();
  if (!head || head.hash !== prev || head.count !== count) {
    return { ok: false, events: count, problem: 'head_mismatch', rowId: lastId, message: `the audit log ends after row ${lastId ?? 'none'} with ${count} events, but ${head?.count ?? 0} were written: rows were deleted at its end` };
  }
  return { ok: true, events: count };
}
