import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../src/config.js';
import { createHierarchy, loadAuthorityMaterial } from '../../src/ca/hierarchy.js';
import { startMintPool } from '../../src/ca/mint-pool.js';
import { buildSubject } from '../../src/ca/subject.js';
import { tempDir } from '../helpers/tmp.js';
import { run } from '../helpers/openssl.js';
import { hashPassword, verifyPassword } from '../../src/identity/passwords.js';

test('the worker pool mints certificates that chain to our root, in parallel, with distinct serials', async () => {
  const dir = tempDir();
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: 'pw', now: new Date() });
  const pool = startMintPool(await loadAuthorityMaterial(paths, 'pw', 'http://crl.test/issuing.crl'), 2);
  after(() => pool.close());
  const subjectDer = new Uint8Array(buildSubject({ tenantCode: 'T0001', tenantName: '山田クリニック' }).toArrayBuffer());
  const now = Date.now();
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      pool.mint({ subjectDer, displayName: '山田クリニック', keyType: i % 4 === 0 ? 'rsa2048' : 'p256', profile: i % 2 ? 'modern' : 'compatible', notBefore: new Date(now), notAfter: new Date(now + 1e10) }),
    ),
  );
  assert.equal(new Set(results.map((r) => r.serial)).size, 8);
  for (const [i, r] of results.entries()) {
    assert.equal(r.subject, 'CN=T0001, O=山田クリニック');
    assert.ok(r.notAfter instanceof Date);
    const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${r.password}`], r.pkcs12);
    const file = path.join(dir, `c${i}.pem`);
    fs.writeFileSync(file, pem);
    assert.match(run('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', paths.rootCert, '-untrusted', paths.issuingCert, file]), /OK/);
    assert.match(run('openssl', ['x509', '-noout', '-ext', 'crlDistributionPoints'], pem), /crl\.test/);
  }
  await pool.close();
  await assert.rejects(pool.mint({ subjectDer, displayName: 'x', keyType: 'p256', profile: 'modern', notBefore: new Date(now), notAfter: new Date(now + 1e10) }), /closed/);
});

test('a burst of RSA mints does not hold up a login: keys are made on the workers, not on the shared thread pool', async () => {
  // libuv's thread pool is the whole process's: the password hash of every login (scrypt) queues
  // there. When the workers made RSA keys through WebCrypto (on that pool), a login started during
  // 40 renewals finished behind nearly all of their keys (2.7 s of a 3 s burst on 2 cores). Not a
  // time limit but an order: the login must be done before half of the burst's time has passed.
  const dir = tempDir();
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: 'pw', now: new Date() });
  const pool = startMintPool({ ...(await loadAuthorityMaterial(paths, 'pw', undefined)), keyPoolSize: 0 }, 2);
  after(() => pool.close());
  await pool.ready;
  const stored = await hashPassword('a-login-password');
  const subjectDer = new Uint8Array(buildSubject({ tenantCode: 'T0001', tenantName: '山田クリニック' }).toArrayBuffer());
  const now = Date.now();
  const started = performance.now();
  let firstDone = 0;
  const burst = Array.from({ length: 40 }, () =>
    pool.mint({ subjectDer, displayName: '山田クリニック', keyType: 'rsa2048', profile: 'compatible', notBefore: new Date(now), notAfter: new Date(now + 1e10) }).then((m) => ((firstDone ||= performance.now()), m)),
  );
  // Let the requests reach the workers (and, as it was, their keys the thread pool's queue).
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  assert.equal(await verifyPassword('a-login-password', stored), true);
  const login = performance.now() - t0;
  assert.equal((await Promise.all(burst)).length, 40);
  const rest = performance.now() - t0;
  assert.ok(login < rest / 2, `the login took ${login.toFixed(0)} ms of the burst's remaining ${rest.toFixed(0)} ms`);
  // Nor does the burst hold up its own first user: a worker takes one mint to its end at a time.
  // (Started together, each worker made every key of its share first and finished them all at once.)
  const whole = performance.now() - started;
  assert.ok(firstDone - started < whole / 4, `the first mint finished after ${(firstDone - started).toFixed(0)} ms of the burst's ${whole.toFixed(0)} ms`);
});
