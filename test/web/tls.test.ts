import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { makeWorld } from '../helpers/world.js';
import { run } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { DAY_MS } from '../../src/clock.js';
import { TlsClient } from '../helpers/client.js';
import { BIN } from '../helpers/cli.js';
import { freePort } from '../helpers/nginx.js';
import { childEnv } from '../helpers/child-env.js';

/**
 * The server's own certificate from elsewhere (a "public" CA made with openssl here), reloaded on
 * SIGHUP, while client certificates stay ours and the CA list asked for is configured separately.
 */
function publicCa(dir: string) {
  const key = path.join(dir, 'public-ca.key');
  const crt = path.join(dir, 'public-ca.crt');
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=Public Test CA', '-keyout', key, '-out', crt, '-days', '30']);
  let n = 0;
  return {
    pem: fs.readFileSync(crt, 'utf8'),
    /** A server certificate for 127.0.0.1 written to cert/key (chain = leaf + CA); returns its serial. */
    issue(certFile: string, keyFile: string): string {
      const csr = path.join(dir, `s${++n}.csr`);
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=kenshin.example.jp', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile + '.new', '-out', csr]);
      run('openssl', ['x509', '-req', '-in', csr, '-CA', crt, '-CAkey', key, '-CAcreateserial', '-days', '20', '-copy_extensions', 'copy', '-out', certFile + '.leaf']);
      fs.writeFileSync(certFile + '.new', fs.readFileSync(certFile + '.leaf', 'utf8') + fs.readFileSync(crt, 'utf8'));
      // Like certbot: both files replaced by rename.
      fs.renameSync(keyFile + '.new', keyFile);
      fs.renameSync(certFile + '.new', certFile);
      return run('openssl', ['x509', '-in', certFile + '.leaf', '-noout', '-serial']).trim().split('=')[1]!.toUpperCase();
    },
  };
}

function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(s.getPeerCertificate().serialNumber.toUpperCase());
      s.destroy();
    });
    s.on('error', reject);
  });
}

/** The CA names in the server's CertificateRequest, as openssl s_client prints them (async: the server runs in this process). */
async function acceptableCaNames(port: number): Promise<string[]> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.end();
  await new Promise((resolve) => child.on('exit', resolve));
  const block = out.split('Acceptable client certificate CA names')[1]?.split(/\n(?:Requested|Client Certificate Types|---)/)[0] ?? '';
  return block.split('\n').map((l) => l.trim()).filter(Boolean);
}

describe('server certificate from files, reloaded without a restart; client CA list apart', async () => {
  const dir = tempDir();
  const pub = publicCa(dir);
  const certFile = path.join(dir, 'fullchain.pem');
  const keyFile = path.join(dir, 'privkey.pem');
  const firstSerial = pub.issue(certFile, keyFile);
  const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0', KENSHIN_TLS_CERT: certFile, KENSHIN_TLS_KEY: keyFile } });
  await addTenant({ db: w.runtime.database.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
  const now = w.clock.now().getTime();
  const client = await issueCertificate(await w.runtime.certificateDeps(), { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 60 * DAY_MS) }, actor: 'test' });
  const server = await startServer(w.config, { clock: w.clock });
  w.onClose(() => server.close());

  test('a browser trusting only the public CA talks mTLS with our client certificate', async () => {
    assert.equal(await servedSerial(server.port, pub.pem), firstSerial);
    const r = await new TlsClient(server.url, pub.pem, { file: client.pkcs12, password: client.password }).get('/api/v1/certificate');
    assert.equal(r.status, 200);
    assert.equal(r.json().serial, client.row.serial);
  });

  test('the certificate request names our root and issuing CA, not the public CA', async () => {
    const names = await acceptableCaNames(server.port);
    assert.equal(names.length, 2, names.join('\n'));
    assert.ok(names.some((n) => /Kenshin Test Root CA/.test(n)));
    assert.ok(names.some((n) => /Kenshin Test Issuing CA 1/.test(n)));
  });

  test('reloadTls serves a renewed certificate to new connections', async () => {
    const second = pub.issue(certFile, keyFile);
    assert.notEqual(second, firstSerial);
    assert.equal(await servedSerial(server.port, pub.pem), firstSerial, 'nothing changes before the reload');
    await server.reloadTls();
    assert.equal(await servedSerial(server.port, pub.pem), second);
  });

  test('a reload with a broken pair is refused and the running certificate stays', async () => {
    const current = await servedSerial(server.port, pub.pem);
    const otherKey = path.join(dir, 'other.key');
    run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', otherKey]);
    const good = fs.readFileSync(keyFile);
    fs.copyFileSync(otherKey, keyFile);
    await assert.rejects(server.reloadTls(), /^Refusal: KENSHIN_TLS_KEY: cannot use .*fullchain\.pem with .*privkey\.pem/);
    assert.equal(await servedSerial(server.port, pub.pem), current);
    fs.writeFileSync(keyFile, good);
  });

  test('KENSHIN_CLIENT_CA_FILE narrows the list to what it holds', async () => {
    const only = path.join(dir, 'root-only.pem');
    fs.copyFileSync(w.runtime.paths.rootCert, only);
    const s2 = await startServer({ ...w.config, clientCaFile: only, metricsListen: undefined }, { clock: w.clock });
    try {
      const names = await acceptableCaNames(s2.port);
      assert.equal(names.length, 1);
      assert.match(names[0]!, /Kenshin Test Root CA/);
      // The chain still builds: the .p12 carries the issuing CA.
      const r = await new TlsClient(s2.url, pub.pem, { file: client.pkcs12, password: client.password }).get('/api/v1/certificate');
      assert.equal(r.status, 200);
    } finally {
      await s2.close();
    }
  });

  test('kenshin serve reloads on SIGHUP', async () => {
    const port = await freePort();
    const env = childEnv({ KENSHIN_DATA_DIR: w.config.dataDir, KENSHIN_CA_PASSPHRASE: 'test-passphrase', KENSHIN_LOG_LEVEL: 'silent', KENSHIN_METRICS_LISTEN: 'off', KENSHIN_MINT_WORKERS: '0', KENSHIN_LISTEN: `127.0.0.1:${port}`, KENSHIN_TLS_CERT: certFile, KENSHIN_TLS_KEY: keyFile });
    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const waitFor = async (re: RegExp) => {
      // A deadline, not a count: start-up is slow on a loaded box.
      for (const end = Date.now() + 60_000; Date.now() < end && !re.test(out); ) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, re);
    };
    try {
      await waitFor(/listening on https:/);
      const before = await servedSerial(port, pub.pem);
      const next = pub.issue(certFile, keyFile);
      child.kill('SIGHUP');
      await waitFor(/reloaded TLS certificate from .*fullchain\.pem/);
      assert.notEqual(next, before);
      assert.equal(await servedSerial(port, pub.pem), next);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('a server certificate that does not fit its key is refused at start', async () => {
  const dir = tempDir();
  const pub = publicCa(dir);
  const certFile = path.join(dir, 'fullchain.pem');
  const keyFile = path.join(dir, 'privkey.pem');
  pub.issue(certFile, keyFile);
  run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0', KENSHIN_TLS_CERT: certFile, KENSHIN_TLS_KEY: keyFile } });
  test('naming KENSHIN_TLS_KEY', async () => {
    await assert.rejects(startServer(w.config, { clock: w.clock }), /KENSHIN_TLS_KEY: cannot use/);
  });
});
