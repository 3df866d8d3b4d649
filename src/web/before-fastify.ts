import type http from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import type { CertificateRow } from '../db/schema.js';
import { knownCertificate, type PresentedCertificate } from '../identity/peer.js';
import { effectiveStatus } from '../certificates/status.js';
import { isKnownTakenUp } from '../renewal/service.js';

/**
 * Requests answered in the server's request listener before Fastify sees them. Routing, the
 * hooks and the reply machinery cost a keep-alive request about three times what Node's own TLS
 * and HTTP do (README, "Benchmarks"); for the few requests a client repeats all day — the gateway's
 * check before every application request, a client asking for its certificate's state — a hot
 * path gives exactly the answer the Fastify route gives, from the same functions, when everything
 * it needs is at hand. Whenever it is not (a certificate not seen in the last second, a refusal, a
 * query string, debug logging, an error), it declines and the request goes to Fastify unchanged.
 */
export interface HotPath {
  /** Whether this path answers GET requests for this URL (as it arrived, query included). */
  matches(url: string): boolean;
  /** Writes the whole response and says true, or touches nothing and says false. */
  answer(req: http.IncomingMessage, res: http.ServerResponse): boolean | Promise<boolean>;
}

export interface BeforeFastifyOptions {
  /**
   * False when every request must go through Fastify: with debug logging (every request reaches the
   * log), and once the server is closing — Fastify then answers new requests on open connections
   * with 503 and `Connection: close`, so kept-alive clients let go and the close can finish.
   */
  enabled: () => boolean;
  /** A hot path threw: the request still goes to Fastify, which answers with its own error handling. */
  onError?: (err: unknown) => void;
}

/**
 * The certificate of this request when a hot path may answer for it: active, its row kept by
 * identity/peer.ts within the last second, and — for a successor — its renewal known to be taken up
 * (the route marks that, with its audit event). Undefined sends the request to the route.
 */
export function certificateAtHand(req: http.IncomingMessage, presented: (req: FastifyRequest) => PresentedCertificate, db: Db, now: Date): CertificateRow | undefined {
  // The same identity source as every request: the proxy header only from a trusted peer (decided
  // when the connection was accepted), or the TLS connection's own certificate.
  const p = presented({ headers: req.headers, raw: req } as unknown as FastifyRequest);
  if (!p.der || !p.fingerprint) return undefined;
  const cert = knownCertificate(db, p.fingerprint);
  if (!cert || effectiveStatus(cert, now) !== 'active') return undefined;
  if (cert.issued_via === 'renewal' && !isKnownTakenUp(db, cert.id)) return undefined;
  return cert;
}

/** Puts the hot paths in front of the server's request handler (Fastify's). */
export function answerBeforeFastify(server: http.Server, paths: readonly HotPath[], opts: BeforeFastifyOptions): void {
  const handlers = server.listeners('request') as ((req: http.IncomingMessage, res: http.ServerResponse) => void)[];
  server.removeAllListeners('request');
  const toFastify = (req: http.IncomingMessage, res: http.ServerResponse) => {
    for (const h of handlers) h.call(server, req, res);
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url;
    const path = req.method === 'GET' && url !== undefined ? paths.find((p) => p.matches(url)) : undefined;
    if (!path || !opts.enabled()) return toFastify(req, res);
    let answered: boolean | Promise<boolean>;
    try {
      answered = path.answer(req, res);
    } catch (err) {
      opts.onError?.(err);
      // Only when nothing was written: a response sent cannot be answered again.
      if (!res.headersSent) toFastify(req, res);
      return;
    }
    if (answered === true) return;
    if (answered === false) return toFastify(req, res);
    answered.then(
      (done) => {
        if (!done) toFastify(req, res);
      },
      (err: unknown) => {
        opts.onError?.(err);
        // Only when nothing was written; a response already ended stands, one cut short is cut off.
        if (!res.headersSent) toFastify(req, res);
        else if (!res.writableEnded) res.destroy();
      },
    );
  });
}
