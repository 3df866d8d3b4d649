import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { COOKIE, type AppDeps } from '../web/context.js';
import { IDENTITY_ERRORS, jsonError } from '../web/routes/api.js';
import { sessionPolicy } from '../web/routes/portal.js';
import { returnPath, withReturnPath, RETURN_PATH_MAX } from '../web/views/layout.js';
import { publicBase } from '../web/public-url.js';
import { markTakenUp } from '../renewal/service.js';
import type { CertificateRow } from '../db/schema.js';
import { gatewayIdentity, type GatewayDeps } from './identity.js';
import { identityHeaders, signAssertion } from './assertion.js';
import { jwksAt } from './signing-key.js';

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
export function gatewayRoutes(app: FastifyInstance, deps: AppDeps): void {
  const config = deps.runtime.config;
  const gw: GatewayDeps = { db: deps.runtime.database.db, clock: deps.runtime.clock, windowDays: deps.renewal.windowDays, session: sessionPolicy(deps) };

  /** The certificate if it is ours and valid now; the first request of a renewed one marks the renewal taken up. */
  const certificateOf = async (req: FastifyRequest): Promise<CertificateRow | undefined> => {
    const id = req.kenshin.identity;
    if (id.kind !== 'ok') return undefined;
    if (id.cert.issued_via === 'renewal') await markTakenUp(deps.renewal, id.cert, `cert:${id.cert.serial}`);
    return id.cert;
  };

  /**
   * Where the browser was going, from the proxy's X-Forwarded-Uri or X-Original-URI (first value,
   * checked to be a local path). Only for GET and HEAD: returning to a form's POST target as a GET
   * after login would be a different request than the one the user made.
   */
  const originalUri = (req: FastifyRequest): string | undefined => {
    const method = first(req.headers['x-forwarded-method']);
    if (method !== undefined && method !== 'GET' && method !== 'HEAD') return undefined;
    const uri = first(req.headers['x-forwarded-uri']) ?? first(req.headers['x-original-uri']);
    return uri !== undefined && uri.length <= RETURN_PATH_MAX ? returnPath(uri) : undefined;
  };

  const refuse = (reply: FastifyReply, req: FastifyRequest, status: 401 | 403, reason: string) =>
    reply
      .code(status)
      .header('Cache-Control', 'no-store')
      // nginx: auth_request_set $kenshin_login $upstream_http_x_kenshin_login; error_page 401 → there.
      .header('X-Kenshin-Login', withReturnPath('/login', originalUri(req)))
      .send({ error: reason });

  app.get('/auth/verify', async (req, reply) => {
    const cert = await certificateOf(req);
    // No certificate, or one that is refused: the login page says why, in the clinic's language.
    if (!cert) return refuse(reply, req, 401, req.kenshin.identity.kind === 'none' ? 'no_certificate' : 'certificate_refused');
    const outcome = await gatewayIdentity(gw, cert, req.cookies[COOKIE.session], { requireRenewalCheck: true });
    if (!outcome.ok) return refuse(reply, req, outcome.reason === 'not_an_application_user' ? 403 : 401, outcome.reason);
    const assertion = await signAssertion(deps.gateway, outcome.identity, deps.runtime.clock.now());
    return reply.code(200).header('Cache-Control', 'no-store').headers(identityHeaders(outcome.identity, assertion)).send();
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
    const cert = (await certificateOf(req))!;
    const outcome = await gatewayIdentity(gw, cert, req.cookies[COOKIE.session], { requireRenewalCheck: false });
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
}

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
