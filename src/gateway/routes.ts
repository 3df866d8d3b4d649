import type { FastifyInstance } from 'fastify';
import { COOKIE, type AppDeps } from '../web/context.js';
import { IDENTITY_ERRORS, jsonError } from '../web/routes/api.js';
import { publicBase } from '../web/public-url.js';
import { markTakenUp } from '../renewal/service.js';
import { gatewayIdentity } from './identity.js';
import { jwksAt } from './signing-key.js';
import { forwardAuth, forwardAuthCache, gatewayDeps } from './forward-auth.js';
import type { DecisionCache } from './decision-cache.js';

/**
 * Kenshin in front of another web application (like oauth2-proxy or Pomerium, with the clinic's
 * certificate, its 健診機関 and the renewal check built in):
 *
 * - GET /auth/verify: nginx's auth_request asks before every request to the application. 200 with
 *   the identity headers, or 401 with X-Kenshin-Login (where nginx sends the browser: Kenshin's
 *   login with the original URL in `rd`), or 403 for a user who is not an application user.
 * - GET /.well-known/jwks.json: the public keys of X-Kenshin-Assertion.
 * - GET /api/v1/session: the same facts as JSON, for the application's own banner.
 */
export function gatewayRoutes(app: FastifyInstance, deps: AppDeps): DecisionCache {
  const config = deps.runtime.config;
  const gw = gatewayDeps(deps);
  const decisions = forwardAuthCache(app);

  app.get('/auth/verify', async (req, reply) => {
    // The proxy's copy of what the browser asked for (first value of each).
    const r = await forwardAuth(deps, gw, decisions, req, { method: first(req.headers['x-forwarded-method']), uri: first(req.headers['x-forwarded-uri']) ?? first(req.headers['x-original-uri']) });
    reply.header('Cache-Control', 'no-store');
    if (r.ok) return reply.code(200).headers(r.headers).send();
    // nginx: auth_request_set $kenshin_login $upstream_http_x_kenshin_login; error_page 401 → there.
    return reply.code(r.status).header('X-Kenshin-Login', r.login).send({ error: r.reason });
  });

  app.get('/.well-known/jwks.json', async (_req, reply) =>
    // Short: after `kenshin gateway rotate-key` and a reload, applications see the new key within a minute.
    reply.header('Cache-Control', 'public, max-age=60').type('application/jwk-set+json').send(jwksAt(deps.gateway.keys, deps.runtime.clock.now())),
  );

  app.get('/api/v1/session', async (req, reply) => {
    const id = req.kenshin.identity;
    if (id.kind !== 'ok') {
      const [status, code, message] = IDENTITY_ERRORS[id.kind];
      return jsonError(reply, status, code, message);
    }
    if (id.cert.issued_via === 'renewal') await markTakenUp(deps.renewal, id.cert, `cert:${id.cert.serial}`);
    const outcome = await gatewayIdentity(gw, id.cert, req.cookies[COOKIE.session], { requireRenewalCheck: false });
    if (!outcome.ok) return jsonError(reply, outcome.reason === 'not_an_application_user' ? 403 : 401, outcome.reason, 'no portal session for this certificate', { login: publicBase(config, req.headers.host) + '/login' });
    const { tenant, institution, user, certificate, renewal } = outcome.identity;
    return reply.header('Cache-Control', 'no-store').send({
      tenant,
      institution,
      user,
      certificate: { serial: certificate.serial, notAfter: certificate.notAfter, daysLeft: certificate.daysLeft },
      renewal: {
        eligible: renewal.eligible,
        inWindow: renewal.inWindow,
        reason: renewal.reason,
        windowStart: renewal.windowStart.toISOString(),
        windowEnd: renewal.windowEnd.toISOString(),
        renewed: renewal.renewed,
        // The user chose 「あとで」 in this session: the application may still show a banner.
        deferred: renewal.deferred,
        // What the application's user menu 「証明書更新チェック」 links to.
        checkUrl: publicBase(config, req.headers.host) + '/renewal/check',
      },
    });
  });
  return decisions;
}

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
