import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../context.js';
import { currentCrl } from '../../certificates/crl.js';

/**
 * The CRL at a stable URL per issuing CA, in DER (the standard form for CRL distribution points)
 * and PEM (what nginx's ssl_crl reads). Public: relying parties fetch it without a certificate.
 */
export function crlRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = async () => currentCrl({ db: deps.runtime.database.db, clock: deps.runtime.clock, authority: await deps.runtime.authority() });
  app.get('/crl/issuing.crl', async (_req, reply) => {
    const crl = await load();
    return reply.type('application/pkix-crl').header('Cache-Control', 'public, max-age=300').send(Buffer.from(crl.der));
  });
  app.get('/crl/issuing.crl.pem', async (_req, reply) => {
    const crl = await load();
    return reply.type('application/x-pem-file').header('Cache-Control', 'public, max-age=300').send(crl.pem);
  });
}
