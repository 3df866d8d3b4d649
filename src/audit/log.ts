import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * The audit log: append-only and hash-chained. Each event's hash covers the previous event's
 * hash and its own fields, so deleting, inserting or editing a row breaks the chain at that row.
 * Appends run inside the caller's transaction: an event exists exactly when its change does.
 */

export interface AuditInput {
  actor: string;
  action: string;
  tenantId?: number | null;
  target?: string | null;
  /** Facts only; never a password, private key, package or session token. */
  details?: Record<string, unknown>;
}

export function eventHash(prevHash: string, e: { at: string; actor: string; action: string; tenant_id: number | null; target: string | null; details: string }): string {
  const canonical = JSON.stringify([prevHash, e.at, e.actor, e.action, e.tenant_id, e.target, e.details]);
  return createHash('sha256').update(canonical).digest('hex');
}

export async function appendAudit(trx: Db, at: Date, input: AuditInput): Promise<void> {
  // Lock the head first (a write), then link to it; see the audit_head table's comment.
  const head = await trx
    .updateTable('audit_head')
    .set({ count: sql`count + 1` })
    .where('id', '=', 1)
    .returning(['hash'])
    .executeTakeFirstOrThrow();
  const row = {
    at: at.toISOString(),
    actor: input.actor,
    action: input.action,
    tenant_id: input.tenantId ?? null,
    target: input.target ?? null,
    details: JSON.stringify(input.details ?? {}),
  };
  const hash = eventHash(head.hash, row);
  await trx.insertInto('audit_events').values({ ...row, prev_hash: head.hash, hash }).execute();
  await trx.updateTable('audit_head').set({ hash }).where('id', '=', 1).execute();
}
