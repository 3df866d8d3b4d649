import type http from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { PresentedCertificate } from '../identity/peer.js';
import { COOKIE } from '../web/context.js';
import type { DecisionCache } from './decision-cache.js';
import { certificateAtHand, type HotPath } from '../web/before-fastify.js';

/**
 * The forward-auth check a browser repeats for every image and XHR of the application, answered
 * before Fastify when everything it needs is already in memory: the certificate's row (kept by
 * identity/peer.ts), a renewal already taken up, and an allowed decision for this session and
 * certificate (decision-cache.ts). The answer is exactly what /auth/verify gives for a cache hit —
 * the same cache, the same checks, in the same order — without routing, hooks and the reply
 * machinery, which were most of a check's cost. Anything else (no cookie, a certificate not seen
 * in the last second, expired or revoked, a refusal, debug logging) goes to Fastify unchanged
 * (web/before-fastify.ts).
 */
export interface FastPathDeps {
  db: Db;
  clock: Clock;
  presented: (req: FastifyRequest) => PresentedCertificate;
  cache: DecisionCache;
  /** The assertion key in use (a hit signed with another one is no hit). */
  kid: () => string;
  observe?: (seconds: number) => void;
}

const SESSION_COOKIE = new RegExp(`(?:^|;\\s*)${COOKIE.session}=([^;\\s]+)`);

function answer(d: FastPathDeps, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const now = d.clock.now();
  const cert = certificateAtHand(req, d.presented, d.db, now);
  if (!cert) return false;
  const token = SESSION_COOKIE.exec(req.headers.cookie ?? '')?.[1];
  if (!token) return false;
  const headers = d.cache.get(token, cert.id, { tick: performance.now(), at: now.getTime(), kid: d.kid() });
  if (!headers) return false;
  res.writeHead(200, { ...headers, 'cache-control': 'no-store', 'content-length': '0' });
  res.end();
  return true;
}

/** The check as a hot path: /auth/verify, with or without the proxy's query string. */
export function forwardAuthHotPath(d: FastPathDeps): HotPath {
  return {
    matches: (url) => url === '/auth/verify' || url.startsWith('/auth/verify?'),
    answer: (req, res) => {
      const t0 = performance.now();
      if (!answer(d, req, res)) return false;
      try {
        d.observe?.((performance.now() - t0) / 1000);
      } catch {
        // The answer is sent; a failed metric changes nothing for the client.
      }
      return true;
    },
  };
}
