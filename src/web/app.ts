import type https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import { identify, type PresentedCertificate } from '../identity/peer.js';
import { isRefusal, type RefusalCode } from '../errors.js';
import { pickLang, translator } from './i18n/index.js';
import { COOKIE, COOKIE_OPTIONS, pageContext, sendPage, type AppDeps } from './context.js';
import { portalRoutes } from './routes/portal.js';
import { renewalRoutes } from './routes/renewal.js';
import { apiRoutes, jsonError } from './routes/api.js';
import { helpRoutes } from './routes/help.js';
import { forwardAuthHotPath } from '../gateway/fast-path.js';
import { answerBeforeFastify } from './before-fastify.js';
import { certificateStateHotPath } from './routes/certificate-state.js';
import { crlRoutes } from './routes/crl.js';
import { onboardingRoutes } from '../admin/onboarding-routes.js';
import { adminRoutes } from '../admin/routes.js';
import { tenantAdminRoutes } from './routes/tenant-admin.js';
import { gatewayRoutes } from '../gateway/routes.js';
import { builtInProxy } from '../gateway/built-in-proxy.js';
import { errorPage } from './views/refusal.js';
import { healthRoutes, type ReadinessProbe } from './health.js';
import { securityHeaders } from './security-headers.js';
import { OneLinePerRequest } from './logging.js';
import { serverTimeoutOptions } from './limits.js';
import type { ConnectionLimits } from '../config.js';
import { invalidField, invalidFieldMessage, isValidationError, requireSchemas } from './input.js';

/** HTTP status for each refusal the domain can raise while serving a request. */
const STATUS: Partial<Record<RefusalCode, number>> = {
  invalid_input: 400,
  not_in_window: 409,
  package_expired: 410,
  unknown_renewal: 404,
  unknown_onboarding_job: 404,
  onboarding_busy: 409,
  onboarding_lost: 409,
  onboarding_closed: 409,
  not_your_package: 403,
  certificate_expired: 403,
  certificate_revoked: 403,
  certificate_not_yet_valid: 403,
};

/**
 * The Fastify application: plugins, the per-request identity, the routes, and one place that turns
 * errors into pages or JSON. It does not listen; server.ts adds TLS and the socket.
 */
export interface BuildOptions {
  https?: https.ServerOptions;
  logger?: Logger;
  /** Where the client certificate comes from: the TLS socket (presentedFromTls), or a proxy header in proxy mode. */
  presented: (req: FastifyRequest) => PresentedCertificate;
  /** Proxy mode: addresses whose X-Forwarded-For is believed, so logs show the clinic's address. */
  trustProxy?: string[];
  /** Readiness beyond "the database answers" (CA loaded, shutting down); server.ts supplies it. */
  readiness?: Omit<ReadinessProbe, 'db'>;
  /** Timeouts of the listener (web/limits.ts). */
  limits?: ConnectionLimits;
}

export async function buildApp(deps: AppDeps, opts: BuildOptions): Promise<FastifyInstance> {
  const presented = opts.presented;
  const timeouts = opts.limits ? serverTimeoutOptions(opts.limits) : undefined;
  const { handshakeTimeout, ...httpTimeouts } = timeouts?.server ?? {};
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger, logController: new OneLinePerRequest() } : { logger: false }),
    ...(timeouts?.fastify ?? {}),
    ...(opts.https ? { https: { ...opts.https, ...(timeouts ? { ...httpTimeouts, handshakeTimeout } : {}) } } : timeouts ? { http: httpTimeouts } : {}),
    ...(opts.trustProxy ? { trustProxy: opts.trustProxy } : {}),
    // No route takes more than a form's worth: JSON is held to the same 16 KiB as forms (Fastify's
    // default would be 1 MiB), so an oversized body is a 413 before it is parsed.
    bodyLimit: 16 * 1024,
    // Every field is text. Ajv's default coercion would turn a JSON number or a one-element array
    // into a string and let the wrong shape through; the schemas in input.ts say exactly what comes.
    ajv: { customOptions: { coerceTypes: false } },
  } as FastifyServerOptions) as unknown as FastifyInstance;
  // A TLS 1.2 renegotiation could present another certificate on the same connection; the
  // identity is read once per connection (presentedFromTls), so renegotiation is refused.
  if (opts.https) app.server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 16 * 1024 });
  securityHeaders(app);

  app.decorateRequest('kenshin', null as never);
  app.addHook('onRequest', async (req, reply) => {
    const query = (req.query ?? {}) as Record<string, string | undefined>;
    const lang = pickLang(query.lang, req.cookies[COOKIE.lang]);
    if (query.lang && query.lang === lang) reply.setCookie(COOKIE.lang, lang, { ...COOKIE_OPTIONS, httpOnly: false, maxAge: 365 * 86400 });
    const path = req.url.split('?')[0]!;
    const needsIdentity = !(path.startsWith('/assets/') || path.startsWith('/crl/') || path.startsWith('/.well-known/') || path === '/healthz' || path === '/readyz');
    // Help is open to anyone (refusal pages link to it), yet shows a logged-in user their menu: it
    // reads the identity but is no refusal when there is none.
    const isHelp = path.startsWith('/help/');
    req.kenshin = {
      lang,
      t: translator(lang),
      identity: needsIdentity ? await identify(deps.runtime.database.db, deps.runtime.clock, presented(req)) : { kind: 'none' },
    };
    if (needsIdentity && !isHelp && req.kenshin.identity.kind !== 'ok') deps.metrics?.refusals.inc({ reason: req.kenshin.identity.kind });
  });
  app.addHook('onResponse', async (req, reply) => {
    deps.metrics?.requestDuration.observe({ route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  // Before any route and plugin: an encapsulated plugin (the onboarding upload, the built-in
  // proxy) keeps the error handler that was set when it was registered.
  app.setErrorHandler((error, req, reply) => {
    const api = req.url.startsWith('/api/');
    if (isRefusal(error)) {
      const status = STATUS[error.code] ?? 400;
      if (api) return jsonError(reply, status, error.code, error.message, error.details);
      const t = req.kenshin?.t ?? translator('ja');
      return sendPage(reply, status, errorPage(pageContext(req), error.code === 'package_expired' ? t('error.package_expired') : t('error.generic')));
    }
    // A body, query or path parameter of the wrong shape or length (input.ts): 400 naming the field.
    if (isValidationError(error)) {
      const f = invalidField(error);
      if (api) return jsonError(reply, 400, 'invalid_input', f.message, { field: f.field });
      return sendPage(reply, 400, errorPage(pageContext(req), invalidFieldMessage(req.kenshin?.t ?? translator('ja'), f)));
    }
    const e = error as { statusCode?: number; code?: string; message?: string };
    // Framework-level client errors (bad JSON, too large a body): a 4xx with a code, never a 500.
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      if (api) return jsonError(reply, e.statusCode, 'bad_request', e.message ?? 'bad request');
      return sendPage(reply, e.statusCode, errorPage(pageContext(req), (req.kenshin?.t ?? translator('ja'))('error.generic')));
    }
    req.log.error({ err: error }, 'request failed');
    if (api) return jsonError(reply, 500, 'internal_error', 'the request could not be completed');
    return sendPage(reply, 500, errorPage(pageContext(req), (req.kenshin?.t ?? translator('ja'))('error.generic')));
  });
  // Before any route: every route gets a query schema, and one that takes a body must bring its own.
  app.addHook('onRoute', requireSchemas);
  healthRoutes(app, { db: deps.runtime.database.db, caLoaded: () => true, draining: () => false, ...opts.readiness });
  helpRoutes(app, deps);
  crlRoutes(app, deps);
  portalRoutes(app, deps);
  renewalRoutes(app, deps);
  apiRoutes(app, deps);
  adminRoutes(app, deps);
  await app.register(onboardingRoutes(deps));
  tenantAdminRoutes(app, deps);
  const decisions = gatewayRoutes(app, deps);
  // The requests a client repeats all day, answered before Fastify when they can be (before-fastify.ts).
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const observe = (route: string) => (s: number) => deps.metrics?.requestDuration.observe({ route, method: 'GET', status: '200' }, s);
  answerBeforeFastify(
    app.server,
    [
      forwardAuthHotPath({ db: deps.runtime.database.db, clock: deps.runtime.clock, presented, cache: decisions, kid: () => deps.gateway.keys.kid, observe: observe('/auth/verify') }),
      certificateStateHotPath({ renewal: deps.renewal, presented, ...(opts.logger ? { log: app.log as unknown as Logger } : {}), observe: observe('/api/v1/certificate') }),
    ],
    {
      // Debug logging shows every request, and Fastify's line says more (the route, its own reqId);
      // closing, Fastify's 503 with `Connection: close` lets kept-alive clients go.
      enabled: () => !closing && app.log.level !== 'debug' && app.log.level !== 'trace',
      onError: (err) => app.log.error({ err }, 'hot path failed; answered by the route'),
    },
  );
  if (deps.runtime.config.upstreamUrl) await builtInProxy(app, deps, deps.runtime.config.upstreamUrl);

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/')) return jsonError(reply, 404, 'not_found', 'no such endpoint');
    return sendPage(reply, 404, errorPage(pageContext(req), req.kenshin?.t('error.notFound') ?? 'Not found'));
  });

  return app;
}
