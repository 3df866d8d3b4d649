import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Runtime } from '../runtime.js';
import { addInstitution, addTenant, addUser } from '../tenancy/service.js';
import { issueCertificate } from '../certificates/service.js';
import { DAY_MS, addYears } from '../clock.js';
import { writeSecretFile } from '../ca/keystore.js';

/**
 * The demo tenant a new user tries the product with: two 健診機関 (so the selection screen
 * shows), an administrator login, and a certificate 60 days from expiry, inside the 90-day
 * renewal window, so the renewal flow can be tried at once.
 */
export const DEMO = {
  tenantCode: 'DEMO',
  tenantName: 'デモ健診センター',
  institutions: [
    { number: '1310000001', name: 'デモ第一健診センター' },
    { number: '1310000002', name: 'デモ第二クリニック' },
  ],
  login: 'demo',
  daysLeft: 60,
} as const;

export interface DemoResult {
  tenantCode: string;
  login: string;
  loginPassword: string;
  p12File: string;
  p12PasswordFile: string;
  serial: string;
  notAfter: string;
}

export async function createDemo(rt: Runtime): Promise<DemoResult> {
  const deps = { db: rt.database.db, clock: rt.clock };
  const actor = 'system:init';
  await addTenant(deps, { code: DEMO.tenantCode, name: DEMO.tenantName }, actor);
  for (const i of DEMO.institutions) await addInstitution(deps, { tenantCode: DEMO.tenantCode, ...i }, actor);
  // Readable aloud, no look-alikes; printed once and kept in the demo folder (mode 0600).
  const loginPassword = randomBytes(9).toString('base64url');
  await addUser(deps, { tenantCode: DEMO.tenantCode, loginId: DEMO.login, password: loginPassword, role: 'admin', institutionNumbers: DEMO.institutions.map((i) => i.number) }, actor);

  const now = rt.clock.now();
  const notAfter = new Date(now.getTime() + DEMO.daysLeft * DAY_MS);
  const notBefore = addYears(notAfter, -rt.config.certValidityYears);
  fs.mkdirSync(rt.paths.demoDir, { recursive: true, mode: 0o700 });
  const p12File = path.join(rt.paths.demoDir, 'demo.p12');
  const p12PasswordFile = path.join(rt.paths.demoDir, 'demo-p12-password.txt');
  const issued = await issueCertificate(
    await rt.certificateDeps(),
    { tenantCode: DEMO.tenantCode, keyType: rt.config.defaultKeyType, profile: rt.config.defaultPkcs12Profile, validity: { kind: 'explicit', notBefore, notAfter }, actor },
    {
      // Written before the certificate is registered: a crash after the commit must not leave a
      // demo certificate whose file or password exists nowhere.
      beforeCommit: (m) => {
        fs.writeFileSync(p12File, m.pkcs12, { mode: 0o600 });
        writeSecretFile(p12PasswordFile, m.password + '\n');
      },
    },
  );
  writeSecretFile(path.join(rt.paths.demoDir, 'demo-login.txt'), `login: ${DEMO.login}\npassword: ${loginPassword}\n`);
  return { tenantCode: DEMO.tenantCode, login: DEMO.login, loginPassword, p12File, p12PasswordFile, serial: issued.serial, notAfter: issued.row.not_after };
}
