import { sql } from 'kysely';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';

/**
 * Operating signals in Prometheus format. Counters are per process (each instance is scraped);
 * the certificate gauges are read from the database at scrape time, so every instance reports the
 * same truth and nothing drifts.
 */
export interface Metrics {
  registry: Registry;
  refusals: Counter<'reason'>;
  renewals: Counter<'result'>;
  requestDuration: Histogram<'route' | 'method' | 'status'>;
}

export const EXPIRY_BUCKETS = [15, 30, 60, 90] as const;

export function createMetrics(db: Db, clock: Clock, opts: { databaseGauges?: boolean } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kenshin_process_' });
  // With several `serve` processes one of them reads the gauges (the primary sums all processes).
  if (opts.databaseGauges !== false) databaseGauges(registry, db, clock);

  return {
    registry,
    refusals: new Counter({ name: 'kenshin_refusals_total', help: 'Requests refused by certificate state', labelNames: ['reason'], registers: [registry] }),
    renewals: new Counter({ name: 'kenshin_renewals_total', help: 'Renewal starts: created a successor, or returned the existing one', labelNames: ['result'], registers: [registry] }),
    requestDuration: new Histogram({
      name: 'kenshin_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

function databaseGauges(registry: Registry, db: Db, clock: Clock): void {
  new Gauge({
    name: 'kenshin_certificates',
    help: 'Client certificates by state (active, expired, revoked)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const now = clock.now().toISOString();
      const rows = await db
        .selectFrom('certificates')
        .select((eb) => [
          eb.fn.countAll<number>().as('all'),
          eb.fn.sum<number>(eb.case().when('status', '=', 'revoked').then(1).else(0).end()).as('revoked'),
          eb.fn.sum<number>(eb.case().when(eb.and([eb('status', '=', 'active'), eb('not_after', '<=', now)])).then(1).else(0).end()).as('expired'),
        ])
        .executeTakeFirstOrThrow();
      const revoked = Number(rows.revoked ?? 0);
      const expired = Number(rows.expired ?? 0);
      this.set({ state: 'revoked' }, revoked);
      this.set({ state: 'expired' }, expired);
      this.set({ state: 'active' }, Number(rows.all) - revoked - expired);
    },
  });

  new Gauge({
    name: 'kenshin_certificates_expiring',
    help: 'Valid certificates without a successor expiring within N days',
    labelNames: ['within_days'],
    registers: [registry],
    async collect() {
      const now = clock.now();
      for (const days of EXPIRY_BUCKETS) {
        const r = await db
          .selectFrom('certificates as c')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('c.status', '=', sql.lit('active'))
          .where('c.not_after', '>', now.toISOString())
          .where('c.not_after', '<=', new Date(now.getTime() + days * DAY_MS).toISOString())
          // has_successor (migration 016): a range of the partial index certificates_unrenewed, not a probe per row.
          .where('c.has_successor', '=', sql.lit(0))
          .executeTakeFirstOrThrow();
        this.set({ within_days: String(days) }, Number(r.n));
      }
    },
  });
}
