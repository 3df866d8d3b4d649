import fs from 'node:fs';
import { makeWorld, type World } from './world.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import type { RunningServer } from '../../src/web/server.js';
import { startFront } from './front.js';
import { DAY_MS } from '../../src/clock.js';
import type { Dialect } from '../../src/db/database.js';
import type { CertificateRow } from '../../src/db/schema.js';
import { TlsClient } from './client.js';

/**
 * A running portal on a random port over a real installation: tenant T0001 (two 健診機関, users
 * "yamada" with both and "solo" with one), tenant T0002 (user "other"), and certificates on demand.
 */
export interface PortalWorld extends World {
  server: RunningServer;
  /** What clients connect to: Kenshin's own port, or nginx's in front of it. */
  url: string;
  ca: string;
  cert(daysLeft: number, opts?: { tenant?: string; notBeforeDaysAgo?: number }): Promise<{ row: CertificateRow; file: Uint8Array; password: string }>;
  client(cert?: { file: Uint8Array; password: string }): TlsClient;
}

export const PASSWORD = 'correct horse battery';

export async function makePortalWorld(dialect: Dialect, env: Record<string, string> = {}, front: { via?: 'direct' | 'nginx' } = {}): Promise<PortalWorld> {
  const w = await makeWorld(dialect, { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0', KENSHIN_OPERATOR_CONTACT: '運用窓口 03-0000-0000', ...env } });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');
  await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'test');
  await addInstitution(deps, { tenantCode: 'T0001', number: '1312345679', name: '山田クリニック分院' }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'yamada', password: PASSWORD, role: 'admin', institutionNumbers: ['1312345678', '1312345679'] }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'solo', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'nobody', password: PASSWORD, role: 'user', institutionNumbers: [] }, 'test');
  await addTenant(deps, { code: 'T0002', name: '別の医院' }, 'test');
  await addInstitution(deps, { tenantCode: 'T0002', number: '2712345678', name: '別の医院' }, 'test');
  await addUser(deps, { tenantCode: 'T0002', loginId: 'other', password: PASSWORD, role: 'user', institutionNumbers: ['2712345678'] }, 'test');

  const { server, url } = await startFront(w, front);
  const ca = fs.readFileSync(w.runtime.paths.rootCert, 'utf8');
  const certDeps = await w.runtime.certificateDeps();
  return {
    ...w,
    server,
    url,
    ca,
    async cert(daysLeft, opts = {}) {
      const now = w.clock.now().getTime();
      const r = await issueCertificate(certDeps, {
        tenantCode: opts.tenant ?? 'T0001',
        keyType: 'p256',
        profile: 'compatible',
        validity: { kind: 'explicit', notBefore: new Date(now - (opts.notBeforeDaysAgo ?? 1000) * DAY_MS), notAfter: new Date(now + daysLeft * DAY_MS) },
        actor: 'test',
      });
      return { row: r.row, file: r.pkcs12, password: r.password };
    },
    client(cert) {
      return new TlsClient(url, ca, cert ? { file: cert.file, password: cert.password } : undefined);
    },
  };
}

/** Logs in and returns the page after the redirects. */
export async function loginAs(c: TlsClient, loginId: string, password = PASSWORD) {
  const page = await c.get('/');
  return c.follow(await c.submit(page, '/login', { loginId, password }));
}
