import type { Db } from '../db/database.js';
import type { AuditEvent } from '../db/schema.js';
import { invalidInput } from '../errors.js';
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

/** A day bound of the search: a real calendar day, YYYY-MM-DD; anything else is refused, not ignored. */
export function parseDay(field: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const ok = /^\d{4}-\d\d-\d\d$/.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`)) && new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) === v;
  if (!ok) throw invalidInput(field, `"${v}" is not a date (YYYY-MM-DD)`);
  return v;
}

export type AuditRow = AuditEvent & { tenant_code: string | null };

function filtered(db: Db, f: AuditFilter) {
  let q = db.selectFrom('audit_events as a').leftJoin('tenants as t', 't.id', 'a.tenant_id').selectAll('a').select('t.code as tenant_code').orderBy('a.id', 'desc');
  if (f.tenantCode) q = q.where(tenantCodeIs('t.code'), '=', tenantCodeKey(f.tenantCode));
  if (f.actor) q = q.where('a.actor', 'like', `%${f.actor.replace(/[%_]/g, '')}%`);
  if (f.action) q = q.where('a.action', '=', f.action);
  if (f.from && /^\d{4}-\d\d-\d\d/.test(f.from)) q = q.where('a.at', '>=', f.from.slice(0, 10));
  if (f.to && /^\d{4}-\d\d-\d\d/.test(f.to)) q = q.where('a.at', '<', f.to.slice(0, 10) + 'T99');
  return q;
}

/** One page, newest first; `before`: the last id of the previous page (keyset, like auditPages). */
export async function searchAudit(db: Db, f: AuditFilter, limit = 500, before?: number): Promise<AuditRow[]> {
  const q = filtered(db, f).limit(limit);
  return (before === undefined ? q : q.where('a.id', '<', before)).execute();
}

/**
 * The whole filtered log, newest first, one page at a time. Keyset on the id (each page starts
 * below the last id seen) rather than OFFSET: every page is an index range, as fast at the millionth
 * row as at the first, and events appended while an export runs (higher ids) cannot shift a page.
 */
export async function* auditPages(db: Db, f: AuditFilter, pageSize = 1000): AsyncGenerator<AuditRow[]> {
  let below: number | undefined;
  for (;;) {
    const q = filtered(db, f).limit(pageSize);
    const rows = await (below === undefined ? q : q.where('a.id', '<', below)).execute();
    if (rows.length) yield rows;
    if (rows.length < pageSize) return;
    below = rows[rows.length - 1]!.id;
  }
}

const HEAD = ['id', 'at', 'tenant', 'actor', 'action', 'target', 'details', 'hash'].join(',') + '\r\n';

/** RFC 4180 CSV; a leading = + - @ is quoted away so a spreadsheet never runs a cell as a formula. */
function csvLine(r: AuditRow): string {
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? '' : String(v);
    if (/^[=+\-@]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [r.id, r.at, r.tenant_code, r.actor, r.action, r.target, r.details, r.hash].map(cell).join(',') + '\r\n';
}

/** The CSV of rows already in memory (a search result). */
export function auditCsv(rows: AuditRow[]): string {
  return HEAD + rows.map(csvLine).join('');
}

/**
 * The CSV export of the whole filtered log, streamed a page at a time, so memory stays at one page
 * however many events there are (the export used to stop at 100,000 rows held in one string).
 * `bom`: the console's download starts with U+FEFF so Excel reads it as UTF-8.
 */
export async function* auditCsvStream(db: Db, f: AuditFilter, opts: { bom?: boolean; pageSize?: number } = {}): AsyncGenerator<string> {
  yield (opts.bom ? '\ufeff' : '') + HEAD;
  for await (const rows of auditPages(db, f, opts.pageSize)) yield rows.map(csvLine).join('');
}
