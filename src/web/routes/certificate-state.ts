import type http from 'node:http';
import type { Logger } from 'pino';
import type { FastifyRequest } from 'fastify';
import type { CertificateRow } from '../../db/schema.js';
import type { PresentedCertificate } from '../../identity/peer.js';
import { daysLeft, effectiveStatus } from '../../certificates/status.js';
import { renewalInfo, type RenewalDeps, type RenewalInfo } from '../../renewal/service.js';
import { SECURITY_HEADERS } from '../security-headers.js';
import { certificateAtHand, type HotPath } from '../before-fastify.js';

/**
 * GET /api/v1/certificate: what a client holding the certificate learns about it — its dates, its
 * state and where it stands in its renewal. The body is built here for both ways it is served:
 * the Fastify route (routes/api.ts) and the hot path below.
 */
export function certificateStateBody(cert: CertificateRow, info: RenewalInfo, now: Date, windowDays: number) {
  return {
    serial: cert.serial,
    subject: cert.subject,
    notBefore: cert.not_before,
    notAfter: cert.not_after,
    daysLeft: daysLeft(cert.not_after, now),
    status: effectiveStatus(cert, now),
    window: { start: info.status.windowStart.toISOString(), end: info.status.windowEnd.toISOString(), days: windowDays },
    eligible: info.status.eligible,
    reason: info.status.reason,
    successor: info.successor ? { serial: info.successor.serial, notAfter: info.successor.not_after, takenUp: info.renewal?.taken_up_at !== null } : null,
  };
}

export interface CertificateStateHotPathDeps {
  renewal: Pick<RenewalDeps, 'db' | 'clock' | 'windowDays'>;
  presented: (req: FastifyRequest) => PresentedCertificate;
  /** The request log: the hot path writes the same line the route would (web/logging.ts). */
  log?: Logger;
  observe?: (seconds: number) => void;
}

const PATH = '/api/v1/certificate';
let served = 0;

/**
 * The state query a client repeats (at every start, on a timer) answered before Fastify
 * (web/before-fastify.ts): the same body, status, headers and log line as the route, for an active
 * certificate whose row identity/peer.ts saw within the last second. Everything else — a first
 * request on a connection whose row is not at hand, a refused certificate, a successor not yet
 * marked taken up (the route writes that, with its audit event), a query string — is the route's.
 */
export function certificateStateHotPath(d: CertificateStateHotPathDeps): HotPath {
  return {
    matches: (url) => url === PATH,
    answer: async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const t0 = performance.now();
      const now = d.renewal.clock.now();
      const cert = certificateAtHand(req, d.presented, d.renewal.db, now);
      if (!cert) return false;
      const info = await renewalInfo(d.renewal, cert);
      const body = JSON.stringify(certificateStateBody(cert, info, now, d.renewal.windowDays));
      res.writeHead(200, { ...SECURITY_HEADERS, 'cache-control': 'no-store', 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      const ms = performance.now() - t0;
      // The answer is sent: a metric or log line that fails must not take the connection with it.
      try {
        d.observe?.(ms / 1000);
        d.log?.info({ reqId: `hot-${(++served).toString(36)}`, req, res: { statusCode: 200 }, responseTime: ms }, 'request completed');
      } catch {
        // Nothing to do: the client has its answer.
      }
      return true;
    },
  };
}
