import type { FastifyInstance } from 'fastify';

/**
 * The security headers of every response: what helmet sends with our policy, written out once.
 * @fastify/helmet rebuilt its middleware (and re-parsed the CSP) on every request, which cost more
 * than the JSON API's own work; the headers never vary, so they are a constant here.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join(';');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  // The portal is only ever served over HTTPS with client certificates.
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
});

export function securityHeaders(app: FastifyInstance): void {
  // Set before the handler runs, so a route may still override one (as with helmet).
  app.addHook('onRequest', (req, reply, done) => {
    // Forward auth answers nginx, not a browser: nginx passes none of its headers on, so writing
    // twelve of them on each check (before every application request) is work for nothing.
    if (!req.url.startsWith('/auth/verify')) reply.headers(SECURITY_HEADERS);
    done();
  });
}
