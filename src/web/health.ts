import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/database.js';

/**
 * Liveness and readiness, for load balancers, systemd and orchestrators. /healthz: the process
 * answers. /readyz: it can serve — the database answers, the CA key is loaded, and it is not
 * shutting down (so a balancer drains it before its connections are cut).
 */
export interface ReadinessProbe {
  db: Db;
  /** The issuing CA's key is in memory (loaded before listening) and something can mint with it (a live mint worker). */
  caLoaded: () => boolean;
  draining: () => boolean;
}

export interface Readiness {
  ready: boolean;
  checks: { database: string; ca: string; shutdown: string };
}

const DB_TIMEOUT_MS = 2000;

export async function checkReadiness(probe: ReadinessProbe): Promise<Readiness> {
  let database = 'ok';
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      sql`select 1`.execute(probe.db),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${DB_TIMEOUT_MS} ms`)), DB_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
  } catch (e) {
    database = `unavailable: ${(e as Error).message}`;
  }
  const ca = probe.caLoaded() ? 'ok' : 'cannot issue: no mint worker left';
  const shutdown = probe.draining() ? 'draining' : 'ok';
  return { ready: database === 'ok' && ca === 'ok' && shutdown === 'ok', checks: { database, ca, shutdown } };
}

export function healthRoutes(app: FastifyInstance, probe: ReadinessProbe): void {
  app.get('/healthz', async (_req, reply) => reply.header('Cache-Control', 'no-store').send({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    const r = await checkReadiness(probe);
    return reply.code(r.ready ? 200 : 503).header('Cache-Control', 'no-store').send(r);
  });
}
