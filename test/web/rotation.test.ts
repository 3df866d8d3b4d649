import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld, loginAs } from '../helpers/portal-world.js';
import { TlsClient } from '../helpers/client.js';
import { run } from '../helpers/openssl.js';
import { rotateIssuingCa } from '../../src/setup/rotate-ca.js';
import { startServer } from '../../src/web/server.js';
import { revokeCertificate } from '../../src/certificates/service.js';

const issuerOf = (pem: string) => run('openssl', ['x509', '-noout', '-issuer', '-nameopt', 'sep_comma_plus_space'], pem).trim();
const crlIssuer = (crl: Buffer | string, der: boolean) => run('openssl', ['crl', ...(der ? ['-inform', 'DER'] : []), '-noout', '-issuer', '-nameopt', 'sep_comma_plus_space'], crl).trim();

for (const dialect of testDialects()) {
  describe(`the portal after an issuing-CA rotation on ${dialect}`, async () => {
    const w = await makePortalWorld(dialect, { KENSHIN_CRL_URL: 'https://kenshin.example.jp/crl/issuing.crl' });
    const db = w.runtime.database.db;
    const old = await w.cert(60); // generation 1, inside the renewal window
    const oldRevoked = await w.cert(400);
    const rotated = await rotateIssuingCa(
      { db, clock: w.clock, paths: w.runtime.paths, passphraseFromEnv: w.config.caPassphrase, crlUrl: w.config.crlUrl },
      { actor: 'test' },
    );
    // `kenshin serve` restarted after the rotation, minting in a worker pool as in production.
    const server = await startServer({ ...w.config, mintWorkers: 1 }, { clock: w.clock });
    w.onClose(() => server.close());
    const client = (cert?: { file: Uint8Array; password: string }) => new TlsClient(server.url, w.ca, cert);

    test('the TLS listener asks for client certificates of the root and of every issuing generation', async () => {
      // Asynchronously: the server runs in this process, so a blocking spawn would never get an answer.
      const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-CAfile', w.runtime.paths.rootCert, '-nameopt', 'sep_comma_plus_space']);
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stdin.end(); // EOF: s_client closes after the handshake
      await new Promise((resolve) => child.on('close', resolve));
      const names = /Acceptable client certificate CA names\n((?:.+\n)+?)(?:Requested|Client Certificate Types|---)/.exec(stdout)?.[1] ?? assert.fail(stdout);
      assert.deepEqual(names.trim().split('\n').sort(), ['CN=Kenshin Test Issuing CA 1, O=Kenshin Test', 'CN=Kenshin Test Issuing CA 2, O=Kenshin Test', 'CN=Kenshin Test Root CA, O=Kenshin Test']);
    });

    test('an old-CA certificate still logs in over real mTLS and renews into a successor from the new CA', async () => {
      assert.match(issuerOf(old.row.pem), /Issuing CA 1/);
      const c = client(old);
      const inst = await loginAs(c, 'yamada');
      assert.equal(inst.status, 200);
      assert.match(inst.text, /健診機関選択/);
      const status = await c.get('/api/v1/certificate');
      assert.equal(status.status, 200);
      assert.equal(status.json().eligible, true);

      const renewal = await c.request('POST', '/api/v1/certificate/renewal', { json: {} });
      assert.equal(renewal.status, 201, renewal.text);
      const body = renewal.json<{ uri: string; pass: string; serial: string }>();
      const successor = await db.selectFrom('certificates').selectAll().where('serial', '=', body.serial).executeTakeFirstOrThrow();
      assert.equal(successor.predecessor_id, old.row.id);
      assert.equal(issuerOf(successor.pem), 'issuer=CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
      assert.equal(successor.issuer_fingerprint, rotated.current.fingerprint);
      assert.match(run('openssl', ['x509', '-noout', '-ext', 'crlDistributionPoints'], successor.pem), /URI:https:\/\/kenshin\.example\.jp\/crl\/issuing-2\.crl/);

      // The package, fetched with the old certificate, logs in as the successor.
      const p12 = await c.get(body.uri);
      assert.equal(p12.status, 200);
      const fresh = client({ file: p12.body, password: body.pass });
      const now = await fresh.get('/api/v1/certificate');
      assert.equal(now.status, 200);
      assert.equal(now.json().serial, body.serial);
      assert.match((await loginAs(fresh, 'yamada')).text, /健診機関選択/);
    });

    test('CRL URLs: /crl/issuing.crl stays generation 1, generation 2 has its own, the root and the bundle are served', async () => {
      await revokeCertificate({ db, clock: w.clock }, { serial: oldRevoked.row.serial, reason: 'keyCompromise', actor: 'test' });
      const anon = client();
      const first = await anon.get('/crl/issuing.crl');
      assert.equal(first.status, 200);
      assert.equal(first.headers['content-type'], 'application/pkix-crl');
      assert.equal(crlIssuer(first.body, true), 'issuer=CN=Kenshin Test Issuing CA 1, O=Kenshin Test');
      assert.match(run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], first.body), new RegExp(`Serial Number: 0?${oldRevoked.row.serial.toUpperCase()}`));
      const second = await anon.get('/crl/issuing-2.crl.pem');
      assert.equal(second.status, 200);
      assert.equal(crlIssuer(second.text, false), 'issuer=CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
      assert.doesNotMatch(run('openssl', ['crl', '-noout', '-text'], second.text), /Serial Number/);
      assert.equal(crlIssuer((await anon.get('/crl/issuing-2.crl')).body, true), 'issuer=CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
      assert.equal(crlIssuer((await anon.get('/crl/root.crl')).body, true), 'issuer=CN=Kenshin Test Root CA, O=Kenshin Test');
      assert.equal(crlIssuer((await anon.get('/crl/root.crl.pem')).text, false), 'issuer=CN=Kenshin Test Root CA, O=Kenshin Test');
      const bundle = await anon.get('/crl/bundle.pem');
      assert.equal(bundle.status, 200);
      assert.equal((bundle.text.match(/-----BEGIN X509 CRL-----/g) ?? []).length, 3);
      for (const missing of ['/crl/issuing-3.crl', '/crl/issuing-1.crl', '/crl/issuing-02.crl', '/crl/root.pem', '/crl/other.crl']) {
        assert.equal((await anon.get(missing)).status, 404, missing);
      }
    });
  });
}
