import type { Db } from '../db/database.js';
import type { AuditEvent } from '../db/schema.js';
import { tenantCodeIs, tenantCodeKey } from '../db/tenant-code.js';

/** The audit log as operators search it: by tenant, actor, action and period, newest first. */
export interface AuditFilter {
  tenantCode?: string | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  /** ISO dates (inclusive day bounds). */
  from?: string | undefined;
  to?: string | undefined;
}

export async function searchAudit(db: Db, f: AuditFilter, limit = 500): Promise<(AuditEvent & { tenant_code: string | null })[]> {
  let q = db.selectFrom('audit_events as a').leftJoin('tenants as t', 't.id', 'a.tenant_id').selectAll('a').select('t.code as tenant_code').orderBy('a.id', 'desc').limit(limit);
  if (f.tenantCode) q = q.where(tenantCodeIs('t.code'), '=', tenantCodeKey(f.tenantCode));
  if (f.actor) q = q.where('a.actor', 'like', `%${f.actor.replace(/[%_]/g, '')}%`);
  if (f.action) q = q.where('a.action', '=', f.action);
  if (f.from && /^\d{4}-\d\d-\d\d/.test(f.from)) q = q.where('a.at', '>=', f.from.slice(0, 10));
  if (f.to && /^\d{4}-\d\d-\d\d/.test(f.to)) q = q.where('a.at', '<', f.to.slice(0, 10) + 'T99');
  return q.execute();
}

/** RFC 4180 CSV; a leading = + - @ is quoted away so a spreadsheet never runs a cell as a formula. */
export function auditCsv(rows: (AuditEvent & { tenant_code: string | null })[]): string {
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? '' : String(v);
    if (/^[=+\-@]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = ['id', 'at', 'tenant', 'actor', 'action', 'target', 'details', 'hash'];
  return [head.join(','), ...rows.map((r) => [r.id, r.at, r.tenant_code, r.actor, r.action, r.target, r.details, r.hash].map(cell).join(','))].join('\r\n') + '\r\n';
}
