import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import { formatDateJst } from '../ca/friendly-name.js';

/**
 * What an operator needs to see first: who is about to expire without having renewed. Counts and
 * the monthly series include only valid certificates without a successor (renewed ones are done).
 */
export const DASHBOARD_BUCKETS = [15, 30, 60, 90] as const;

export interface ExpiringTenant {
  tenantCode: string;
  tenantName: string;
  contactEmail: string | null;
  serial: string;
  notAfter: string;
  lastReminderAt: string | null;
}

export interface Dashboard {
  buckets: { days: number; count: number }[];
  /** 36 months from this month (Japan time): "YYYY-MM" and how many expire in it. */
  months: { month: string; count: number }[];
  expiringTenants: ExpiringTenant[];
}

export async function dashboard(db: Db, clock: Clock): Promise<Dashboard> {
  const now = clock.now();
  const horizon = new Date(now.getTime() + 3 * 366 * DAY_MS);
  const rows = await db
    .selectFrom('certificates as c')
    .innerJoin('tenants as t', 't.id', 'c.tenant_id')
    .select(['c.id', 'c.serial', 'c.not_after', 't.code', 't.name', 't.contact_email'])
    .where('c.status', '=', 'active')
    .where('c.not_after', '>', now.toISOString())
    .where('c.not_after', '<=', horizon.toISOString())
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('certificates as s').select('s.id').whereRef('s.predecessor_id', '=', 'c.id'))))
    .orderBy('c.not_after')
    .execute();

  const buckets = DASHBOARD_BUCKETS.map((days) => ({ days, count: rows.filter((r) => new Date(r.not_after).getTime() - now.getTime() <= days * DAY_MS).length }));
  const first = formatDateJst(now).slice(0, 7);
  const months: { month: string; count: number }[] = [];
  let [y, m] = first.split('-').map(Number) as [number, number];
  for (let i = 0; i < 36; i++) {
    months.push({ month: `${y}-${String(m).padStart(2, '0')}`, count: 0 });
    if (++m > 12) [y, m] = [y + 1, 1];
  }
  for (const r of rows) {
    const slot = months.find((x) => x.month === formatDateJst(new Date(r.not_after)).slice(0, 7));
    if (slot) slot.count++;
  }

  const soon = rows.filter((r) => new Date(r.not_after).getTime() - now.getTime() <= 90 * DAY_MS);
  // The certificates are named by the same date range, not by an IN list of their ids: with tens of
  // thousands expiring, such a list exceeds the database's limit on query parameters.
  const reminders = soon.length
    ? await db
        .selectFrom('reminders as r')
        .innerJoin('certificates as c', 'c.id', 'r.certificate_id')
        .select(['r.certificate_id', (eb) => eb.fn.max('r.sent_at').as('last')])
        .where('r.status', '=', 'sent')
        .where('c.status', '=', 'active')
        .where('c.not_after', '>', now.toISOString())
        .where('c.not_after', '<=', new Date(now.getTime() + 90 * DAY_MS).toISOString())
        .groupBy('r.certificate_id')
        .execute()
    : [];
  const last = new Map(reminders.map((r) => [r.certificate_id, r.last as string | null]));
  return {
    buckets,
    months,
    expiringTenants: soon.map((r) => ({ tenantCode: r.code, tenantName: r.name, contactEmail: r.contact_email, serial: r.serial, notAfter: r.not_after, lastReminderAt: last.get(r.id) ?? null })),
  };
}
