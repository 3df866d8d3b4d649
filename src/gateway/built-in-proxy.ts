import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { AppDeps } from '../web/context.js';
import { SECURITY_HEADERS } from '../web/security-headers.js';
import { forwardAuth, forwardAuthCache, gatewayDeps } from './forward-auth.js';

/**
 * Direct mode without nginx: Kenshin itself fronts the application at KENSHIN_UPSTREAM_URL
 * (@fastify/http-proxy over undici). Kenshin's own routes match first (the router prefers static
 * and parametric routes to this wildcard); every other path is the application's, after the same
 * decision as nginx's auth_request (forward-auth.ts): through with the identity headers, or to the
 * login with `rd`, or 403.
 *
 * The client's own X-Kenshin-* and X-SSL-Client-Cert headers are deleted before Kenshin's are
 * added, whatever their case (Node lowercases names) — the application can believe these headers
 * exactly as it could behind deploy/nginx-gateway.conf.
 */
const passed = new WeakMap<FastifyRequest, Record<string, string>>();

export const isForwardedHeader = (name: string) => name.startsWith('x-kenshin-') || name === 'x-ssl-client-cert';

export async function builtInProxy(app: FastifyInstance, deps: AppDeps, upstream: string): Promise<void> {
  const gw = gatewayDeps(deps);
  const decisions = forwardAuthCache(app);
  /** true: on to the application (headers kept for rewriteRequestHeaders); false: answered (login redirect, 403). */
  const decide = async (req: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
    const r = await forwardAuth(deps, gw, decisions, req, { method: req.method, uri: req.url });
    if (r.ok) {
      passed.set(req, { ...r.headers, 'x-ssl-client-cert': encodeURIComponent(r.cert.pem) });
      return true;
    }
    reply.header('Cache-Control', 'no-store');
    if (r.status === 401) await reply.redirect(r.login, 302);
    else await reply.code(403).type('application/json').send({ error: r.reason });
    return false;
  };
  await app.register(async (scope) => {
    // Bodies go to the application as they came (http-proxy adds its pass-through parsers here);
    // Kenshin's form parser stays with Kenshin's routes.
    scope.removeAllContentTypeParsers();
    // The application's responses carry the application's own security headers, not the portal's.
    scope.addHook('onRequest', async (_req, reply) => {
      for (const name of Object.keys(SECURITY_HEADERS)) reply.removeHeader(name);
    });
    await scope.register(httpProxy, {
      upstream,
      prefix: '/',
      // The application's redirects (Location) keep pointing at the application's paths.
      internalRewriteLocationHeader: false,
      // These routes take every method with any body and parse none of it: the body is the
      // application's to validate. Marked, so a check that every body-taking route has a JSON
      // schema can tell this pass-through apart from a forgotten schema.
      config: { passThroughBody: true },
      // Callback style (the plugin's type): go on only when the request may pass; otherwise answered here.
      preHandler: (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
        decide(req, reply).then((through) => (through ? done() : undefined), done);
      },
      replyOptions: {
        rewriteRequestHeaders: (req, headers): IncomingHttpHeaders => {
          const out: IncomingHttpHeaders = {};
          for (const [k, v] of Object.entries(headers)) if (!isForwardedHeader(k.toLowerCase())) out[k] = v;
          return { ...out, ...passed.get(req as FastifyRequest), 'x-forwarded-proto': 'https' };
        },
      },
    });
  });
}
