import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CrlFiles, type CrlFile } from '../crl-files.js';
import type { AppDeps } from '../context.js';
import { crlBundlePem, currentCrlNamed, currentCrlNumberNamed, currentCrls, storedCrlNumber } from '../../certificates/crl-set.js';
import { params } from '../input.js';
import { externalCrlPems } from '../../ca/external.js';

/**
 * The CRLs at stable URLs, in DER (the standard form for CRL distribution points) and PEM (what
 * nginx's ssl_crl reads). Public: relying parties fetch them without a certificate.
 *
 *   /crl/issuing.crl[.pem]     the first issuing CA (the URL certificates in the field carry)
 *   /crl/issuing-N.crl[.pem]   issuing CA generation N ≥ 2 (after `kenshin ca rotate`)
 *   /crl/root.crl[.pem]        the root's: revoked issuing CAs, normally none
 *   /crl/external-<id>.crl[.pem]  an adopted CA's (`kenshin ca adopt`), signed with its own key
 *   /crl/bundle.pem            all of the above in PEM, one file for nginx `ssl_crl`, plus the
 *                              old system's CRLs kept for trusted CAs (`kenshin ca trust --crl`)
 *
 * A generation rotated in after this process started is served once it restarts. The files are
 * kept ready in memory (crl-files.ts) and revalidate with ETag / Last-Modified.
 */
export function crlRoutes(app: FastifyInstance, deps: AppDeps): void {
  const crlDeps = async () => ({ db: deps.runtime.database.db, clock: deps.runtime.clock, cas: await deps.runtime.caSet() });
  const files = new CrlFiles(
    { one: async (name) => currentCrlNamed(await crlDeps(), name), all: async () => currentCrls(await crlDeps()), number: async (name) => storedCrlNumber(await crlDeps(), name), currentNumber: async (name) => currentCrlNumberNamed(await crlDeps(), name), bundlePem: (crls) => crlBundlePem(crls, externalCrlPems(deps.runtime.paths)) },
    () => Date.now(),
  );

  /**
   * As a static file: ETag and Last-Modified for revalidation (304), and caches may keep it for
   * 5 minutes but never past nextUpdate (a CRL past it is useless to a relying party).
   */
  const send = (req: FastifyRequest, reply: FastifyReply, file: CrlFile, body: Buffer, type: string) => {
    const secondsLeft = Math.max(0, Math.floor((file.nextUpdate.getTime() - Date.now()) / 1000));
    reply.header('Cache-Control', `public, max-age=${Math.min(300, secondsLeft)}`).header('ETag', file.etag).header('Last-Modified', file.lastModified).header('Expires', file.nextUpdate.toUTCString());
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    const notModified = inm !== undefined ? inm.split(',').some((t) => t.trim() === file.etag || t.trim() === '*') : ims !== undefined && Date.parse(ims) >= Date.parse(file.lastModified);
    if (notModified) return reply.code(304).send();
    return reply.type(type).send(body);
  };

  app.get('/crl/bundle.pem', async (req, reply) => {
    const file = await files.getBundle();
    return send(req, reply, file, file.pem, 'application/x-pem-file');
  });

  app.get('/crl/:file', { schema: { params: params({ file: 64 }) } }, async (req, reply) => {
    const m = /^(root|issuing(?:-[1-9]\d*)?|external-[0-9a-f]{16})\.crl(\.pem)?$/.exec((req.params as { file: string }).file);
    const file = m ? await files.get(m[1]!) : undefined;
    if (!file) return reply.callNotFound();
    return m![2] ? send(req, reply, file, file.pem, 'application/x-pem-file') : send(req, reply, file, file.der, 'application/pkix-crl');
  });
}
