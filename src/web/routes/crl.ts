import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppDeps } from '../context.js';
import { crlBundlePem, currentCrlNamed, currentCrls } from '../../certificates/crl-set.js';
import { params } from '../input.js';

/**
 * The CRLs at stable URLs, in DER (the standard form for CRL distribution points) and PEM (what
 * nginx's ssl_crl reads). Public: relying parties fetch them without a certificate.
 *
 *   /crl/issuing.crl[.pem]     the first issuing CA (the URL certificates in the field carry)
 *   /crl/issuing-N.crl[.pem]   issuing CA generation N ≥ 2 (after `kenshin ca rotate`)
 *   /crl/root.crl[.pem]        the root's: revoked issuing CAs, normally none
 *   /crl/bundle.pem            all of the above in PEM, one file for nginx `ssl_crl`
 *
 * A generation rotated in after this process started is served once it restarts.
 */
export function crlRoutes(app: FastifyInstance, deps: AppDeps): void {
  const crlDeps = async () => ({ db: deps.runtime.database.db, clock: deps.runtime.clock, cas: await deps.runtime.caSet() });
  const cached = (reply: FastifyReply) => reply.header('Cache-Control', 'public, max-age=300');

  app.get('/crl/bundle.pem', async (_req, reply) => cached(reply).type('application/x-pem-file').send(crlBundlePem(await currentCrls(await crlDeps()))));

  app.get('/crl/:file', { schema: { params: params({ file: 64 }) } }, async (req, reply) => {
    const m = /^(root|issuing(?:-[1-9]\d*)?)\.crl(\.pem)?$/.exec((req.params as { file: string }).file);
    const named = m ? await currentCrlNamed(await crlDeps(), m[1]!) : undefined;
    if (!named) return reply.callNotFound();
    return m![2] ? cached(reply).type('application/x-pem-file').send(named.crl.pem) : cached(reply).type('application/pkix-crl').send(Buffer.from(named.crl.der));
  });
}
