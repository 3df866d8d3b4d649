import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { makeWorld } from '../helpers/world.js';
import { httpsGet } from '../helpers/https.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { createHierarchy, loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { dataPaths } from '../../src/config.js';
import { generateKeyPair } from '../../src/ca/keys.js';
import { buildSubject, type SubjectParts } from '../../src/ca/subject.js';

const subjectDer = (p: SubjectParts) => new Uint8Array(buildSubject(p).toArrayBuffer());
import { tempDir } from '../helpers/tmp.js';

test('the HTTPS service: server certificate from our CA, client certificate read from the handshake', async () => {
  const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0' } });
  const deps = await w.runtime.certificateDeps();
  await addTenant({ db: deps.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
  const issued = await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' });
  const server = await startServer(w.config, { clock: w.clock });
  after(() => server.close());
  const ca = fs.readFileSync(w.runtime.paths.rootCert, 'utf8');

  // Node verifies the server certificate against our root for 127.0.0.1 (no rejectUnauthorized: false anywhere).
  const ok = await httpsGet(server.url, { ca, pfx: issued.pkcs12, passphrase: issued.password });
  assert.equal(ok.status, 200);
  assert.match(ok.body, new RegExp(issued.serial));
  assert.match(ok.body, /CN=T0001, O=山田クリニック/);
  const local = await httpsGet(server.url.replace('127.0.0.1', 'localhost'), { ca });
  assert.equal(local.status, 401);
  assert.match(local.body, /クライアント証明書が提示されませんでした/);

  // A certificate from another CA completes the handshake but is refused by the application.
  const otherDir = tempDir();
  await createHierarchy({ paths: dataPaths(otherDir), keyType: 'p256', commonNamePrefix: 'Stranger', passphraseFromEnv: 'x', now: w.clock.now() });
  const stranger = await loadIssuingAuthority(dataPaths(otherDir), 'x', undefined);
  const keys = await generateKeyPair('p256');
  const cert = stranger.signClient({ subjectDer: subjectDer({ tenantCode: 'T0001', tenantName: '山田クリニック' }), publicKey: keys.publicKey, keyType: 'p256', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
  const { buildPkcs12 } = await import('../../src/ca/pkcs12.js');
  const { exportPkcs8 } = await import('../../src/ca/keys.js');
  const pfx = await buildPkcs12({ privateKeyPkcs8: await exportPkcs8(keys.privateKey), certificate: cert.der, chain: [], friendlyName: 'x', password: 'pw-stranger-123', profile: 'modern' });
  const refused = await httpsGet(server.url, { ca, pfx, passphrase: 'pw-stranger-123' });
  assert.equal(refused.status, 403);
});
