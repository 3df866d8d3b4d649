import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decisionCache, type DecisionCache } from './decision-cache.js';
import { COOKIE, type AppDeps } from '../web/context.js';
import { sessionPolicy } from '../web/routes/portal.js';
import { returnPath, withReturnPath, RETURN_PATH_MAX } from '../web/views/layout.js';
import { markTakenUp } from '../renewal/service.js';
import type { CertificateRow } from '../db/schema.js';
import { gatewayIdentity, type GatewayDeps, type GatewayRefusal } from './identity.js';
import { identityHeaders, signAssertion } from './assertion.js';

/**
 * The one decision both fronts share — nginx's auth_request (/auth/verify) and the built-in proxy:
 * let this request through to the application (with these headers), or send the browser to the
 * login (which resumes at the missing step and comes back to `rd`), or refuse.
 */
export type ForwardAuth =
  | { ok: true; cert: CertificateRow; headers: Record<string, string> }
  | { ok: false; status: 401 | 403; reason: GatewayRefusal | 'no_certificate' | 'certificate_refused'; login: string };

export const gatewayDeps = (deps: AppDeps): GatewayDeps => ({ db: deps.runtime.database.db, clock: deps.runtime.clock, windowDays: deps.renewal.windowDays, session: sessionPolicy(deps) });

/** The forward-auth decisions of one app, kept briefly (decision-cache.ts); closed with the app. */
export function forwardAuthCache(app: FastifyInstance): DecisionCache {
  const cache = decisionCache();
  app.addHook('onClose', async () => cache.close());
  return cache;
}

/**
 * `original`: the method and URI the browser asked the application for. Only a GET or HEAD is a
 * place to come back to: returning to a form's POST target as a GET would be another request.
 */
export async function forwardAuth(deps: AppDeps, gw: GatewayDeps, cache: DecisionCache, req: FastifyRequest, original: { method: string | undefined; uri: string | undefined }): Promise<ForwardAuth> {
  const back = original.method === undefined || original.method === 'GET' || original.method === 'HEAD' ? original.uri : undefined;
  const login = withReturnPath('/login', back !== undefined && back.length <= RETURN_PATH_MAX ? returnPath(back) : undefined);
  const id = req.kenshin.identity;
  // No certificate, or a refused one: the login page says why, in the clinic's language.
  if (id.kind !== 'ok') return { ok: false, status: 401, reason: id.kind === 'none' ? 'no_certificate' : 'certificate_refused', login };
  // The first request of a renewed certificate marks the renewal taken up, as on the portal.
  if (id.cert.issued_via === 'renewal') await markTakenUp(deps.renewal, id.cert, `cert:${id.cert.serial}`);
  const token = req.cookies[COOKIE.session];
  const now = deps.runtime.clock.now();
  const when = { tick: performance.now(), at: now.getTime(), kid: deps.gateway.keys.kid };
  const known = token ? cache.get(token, id.cert.id, when) : undefined;
  if (known) return { ok: true, cert: id.cert, headers: known };
  const outcome = await gatewayIdentity(gw, id.cert, token, { requireRenewalCheck: true });
  if (!outcome.ok) return { ok: false, status: outcome.reason === 'not_an_application_user' ? 403 : 401, reason: outcome.reason, login };
  const assertion = await signAssertion(deps.gateway, outcome.identity, now);
  const headers = identityHeaders(outcome.identity, assertion);
  cache.set(token!, id.cert.id, headers, when);
  return { ok: true, cert: id.cert, headers };
}
