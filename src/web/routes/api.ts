import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppDeps } from '../context.js';
import type { CertificateRow } from '../../db/schema.js';
import { clientAgentLabel, markTakenUp, openPackage, recordPackageAccess, renewalInfo, startRenewal, type StartedRenewal } from '../../renewal/service.js';
import { certificateStateBody } from './certificate-state.js';
import { sendPkcs12 } from './renewal.js';
import { isOwnOrigin, publicBase } from '../public-url.js';
import { ignoredJsonBody, LIMIT, params, query } from '../input.js';

/**
 * The same flow for machine clients, authenticated by the client certificate alone (mTLS, JSON).
 * POST /api/cert answers exactly as ORCA's desktop client (monsiaj CertificateManager) expects:
 * 200 with an absolute `uri` and the password `pass`, then the .p12 at that URI.
 */

export const IDENTITY_ERRORS = {
  none: [401, 'no_certificate', 'no client certificate was presented'],
  foreign: [403, 'unknown_issuer', 'the client certificate was not issued by this service'],
  unknown: [403, 'unknown_certificate', 'the client certificate is not registered'],
  expired: [403, 'certificate_expired', 'the client certificate has expired; ask the operator for a new one'],
  not_yet_valid: [403, 'certificate_not_yet_valid', 'the client certificate is not valid yet'],
  revoked: [403, 'certificate_revoked', 'the client certificate is revoked'],
} as const;

export function jsonError(reply: FastifyReply, status: number, error: string, message: string, extra: Record<string, unknown> = {}) {
  return reply.code(status).header('Cache-Control', 'no-store').send({ error, message, ...extra });
}

export function apiRoutes(app: FastifyInstance, deps: AppDeps): void {
  const clock = deps.runtime.clock;

  const certificateOf = async (req: FastifyRequest, reply: FastifyReply): Promise<CertificateRow | undefined> => {
    const id = req.kenshin.identity;
    if (id.kind !== 'ok') {
      const [status, code, message] = IDENTITY_ERRORS[id.kind];
      await jsonError(reply, status, code, message);
      return undefined;
    }
    if (id.cert.issued_via === 'renewal') await markTakenUp(deps.renewal, id.cert, `cert:${id.cert.serial}`);
    return id.cert;
  };

  const config = deps.runtime.config;

  /**
   * A browser visiting another site can be made to POST here with the user's certificate. Such
   * requests carry Sec-Fetch-Site, Origin or at least a Referer; real API clients (monsiaj,
   * glclient, curl) send none of them. A Referer alone counts when Origin is missing (older
   * browsers, some redirects), and an unparsable one is foreign.
   */
  const crossSite = (req: FastifyRequest) => {
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') return true;
    const origin = req.headers.origin;
    if (origin !== undefined) return !isOwnOrigin(config, req.headers.host, origin);
    const referer = req.headers.referer;
    return referer !== undefined && !isOwnOrigin(config, req.headers.host, referer);
  };

  /**
   * JSON POSTs take JSON bodies only. text/plain (and form encodings) are what a cross-site form or
   * a no-cors fetch can send without a CORS preflight; application/json needs one. A POST with no
   * body at all is allowed (curl -X POST); monsiaj and glclient send `{}` as application/json.
   */
  const hasBody = (req: FastifyRequest) => Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  const jsonBody = (req: FastifyRequest) => !hasBody(req) || /^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '');

  const packageUri = (req: FastifyRequest, downloadId: string) => `${publicBase(config, req.headers.host)}/api/v1/renewals/${downloadId}/pkcs12`;

  app.get('/api/v1/certificate', async (req, reply) => {
    const cert = await certificateOf(req, reply);
    if (!cert) return reply;
    const info = await renewalInfo(deps.renewal, cert);
    return reply.header('Cache-Control', 'no-store').send(certificateStateBody(cert, info, clock.now(), deps.renewal.windowDays));
  });

  const start = async (req: FastifyRequest, reply: FastifyReply): Promise<StartedRenewal | undefined> => {
    const cert = await certificateOf(req, reply);
    if (!cert) return undefined;
    if (crossSite(req)) {
      await jsonError(reply, 403, 'cross_site_request', 'renewal must be requested by the certificate holder, not from another site');
      return undefined;
    }
    const r = await startRenewal(deps.renewal, cert, `cert:${cert.serial}`);
    deps.metrics?.renewals.inc({ result: r.created ? 'created' : 'existing' });
    return r;
  };

  // The media type is checked before the body is validated (preValidation), so a text/plain body is
  // a 415 saying what to send, not a schema error about its shape.
  const noBody = {
    schema: { body: ignoredJsonBody },
    preValidation: async (req: FastifyRequest, reply: FastifyReply) => {
      // Answering from an async hook: send, then return the reply so Fastify stops here.
      if (!jsonBody(req)) return jsonError(reply, 415, 'unsupported_media_type', 'send the request body as application/json (or no body at all)');
      return undefined;
    },
  };
  app.post('/api/v1/certificate/renewal', noBody, async (req, reply) => {
    const r = await start(req, reply);
    if (!r) return reply;
    return reply
      .code(r.created ? 201 : 200)
      .header('Cache-Control', 'no-store')
      .send({ id: r.renewal.download_id, uri: packageUri(req, r.renewal.download_id), pass: r.password, serial: r.successor.serial, notAfter: r.successor.not_after });
  });

  // monsiaj accepts only 200 or 302 and builds the download URL from `uri` as given.
  app.post('/api/cert', noBody, async (req, reply) => {
    const r = await start(req, reply);
    if (!r) return reply;
    return reply.code(200).header('Cache-Control', 'no-store').send({ uri: packageUri(req, r.renewal.download_id), pass: r.password });
  });

  app.get('/api/v1/renewals/:id/pkcs12', { schema: { params: params({ id: LIMIT.downloadId }), querystring: query({ format: LIMIT.word }) } }, async (req, reply) => {
    const cert = await certificateOf(req, reply);
    if (!cert) return reply;
    const opened = await openPackage(deps.renewal, { downloadId: (req.params as { id: string }).id }, cert);
    const format = (req.query as Record<string, string>).format === 'modern' ? 'modern' : 'compatible';
    // Only desktop clients and scripts come this way (the portal has its own download): the first
    // fetch is what the portal and the console can show, since such a client never logs in here.
    const agent = clientAgentLabel(req.headers['user-agent']);
    await recordPackageAccess(deps.renewal, opened, 'package.downloaded', `cert:${cert.serial}`, { format, via: 'api', agent }, { clientAgent: agent });
    return sendPkcs12(reply, opened, format);
  });
}
