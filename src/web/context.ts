import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Runtime } from '../runtime.js';
import type { RenewalDeps } from '../renewal/service.js';
import type { Metrics } from '../metrics/registry.js';
import { fingerprintOf, type PeerIdentity, type PresentedCertificate } from '../identity/peer.js';
import { signedByOneOf } from '../identity/issuers.js';
import type { x509 } from '../ca/x509.js';
import { translator, type Lang, type T } from './i18n/index.js';
import type { PageContext } from './views/layout.js';
import type { Html } from './html.js';
import type { AssertionSettings } from '../gateway/assertion.js';

/** Everything routes need, built once by buildApp. Routes stay thin: they call these services. */
export interface AppDeps {
  runtime: Runtime;
  renewal: RenewalDeps;
  /** Signs pre-login CSRF tokens. */
  csrfKey: Buffer;
  metrics?: Metrics | undefined;
  /** Signs X-Kenshin-Assertion for the application behind the gateway (gateway/). */
  gateway: AssertionSettings;
}

/** Per-request facts, computed once in the onRequest hook. */
export interface RequestState {
  identity: PeerIdentity;
  lang: Lang;
  t: T;
}

declare module 'fastify' {
  interface FastifyRequest {
    kenshin: RequestState;
  }
}

/**
 * What each TLS connection presented, read once per connection: the peer certificate cannot change
 * on a connection (TLS 1.3 has no renegotiation and buildApp disables it for TLS 1.2), and
 * getPeerCertificate() builds a large object (~80 µs), a third of what a keep-alive request costs.
 */
const presentedBySocket = new WeakMap<TLSSocket, PresentedCertificate>();

/**
 * The client certificate from this request's TLS connection. `issuers` are our issuing CAs: a
 * certificate that is not in the database is checked against them to tell "ours" from "foreign".
 */
export const presentedFromTls = (issuers: () => readonly x509.X509Certificate[]) => (req: FastifyRequest): PresentedCertificate => {
  const socket = req.raw.socket as TLSSocket;
  let presented = presentedBySocket.get(socket);
  if (!presented) {
    // getPeerCertificate, not getPeerX509Certificate: the latter copies the whole chain the client
    // sent, which took twice as long (~0.2 ms per connection with an issuing CA in the chain).
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
    const err = socket.authorizationError;
    const der = peer?.raw ? new Uint8Array(peer.raw) : undefined;
    presented = Object.freeze({
      der,
      // Once per connection, not per request.
      fingerprint: der ? fingerprintOf(der) : undefined,
      chainVerified: socket.authorized === true,
      verifyError: err === undefined || err === null ? undefined : typeof err === 'string' ? err : ((err as { code?: string }).code ?? String(err)),
      verifyChain: async () => (der ? signedByOneOf(der, issuers()) : false),
    });
    presentedBySocket.set(socket, presented);
  }
  return presented;
};

export function pageContext(req: FastifyRequest, user?: { loginId: string; csrf: string; role?: string }): PageContext {
  // req.kenshin is missing only when the request failed before the onRequest hook ran.
  const k = req.kenshin ?? { t: translator('ja'), lang: 'ja' as const };
  return { t: k.t, lang: k.lang, path: req.url, user };
}

export const COOKIE = { session: 'kenshin_session', pre: 'kenshin_pre', lang: 'kenshin_lang' } as const;
export const COOKIE_OPTIONS = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' as const };

export function sendPage(reply: FastifyReply, status: number, page: Html, opts: { noStore?: boolean } = {}) {
  reply.code(status).type('text/html; charset=utf-8');
  // Pages that show a password or link to a private key must not be cached anywhere.
  reply.header('Cache-Control', opts.noStore ? 'no-store' : 'no-cache');
  return reply.send(page.value);
}
