import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { makeWorld } from '../helpers/world.js';
import { startFront } from '../helpers/front.js';
import { startNginx } from '../helpers/nginx.js';
import { TlsClient } from '../helpers/client.js';
import { kenshin } from '../helpers/cli.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';
import { DAY_MS } from '../../src/clock.js';

/**
 * What only the nginx deployment has: the header a client cannot forge, nginx's own verdict (495)
 * handed to Kenshin for the page, ssl_crl fed by `kenshin ca bundle`, the CA names nginx asks for,
 * and the plain-HTTP redirect. The portal/API/console suites also run through it (npm run test:nginx).
 */
const reasonOf = (html: string) => /id="refusal" data-reason="([^"]+)"/.exec(html)?.[1];

describe('Kenshin behind Debian nginx with deploy/nginx.conf', async () => {
  // nginx checks dates with the real clock, so the installation is made "now".
  const w = await makeWorld('sqlite', { env: { KENSHIN_MINT_WORKERS: '0', KENSHIN_OPERATOR_CONTACT: '運用窓口 03-0000-0000' }, now: new Date().toISOString() });
  await addTenant({ db: w.runtime.database.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
  const front = await startFront(w, { via: 'nginx' });
  const nginx = front.nginx!;
  const ca = fs.readFileSync(w.runtime.paths.rootCert, 'utf8');
  const certDeps = await w.runtime.certificateDeps();
  const cert = async (fromDays: number, toDays: number) => {
    const now = w.clock.now().getTime();
    const r = await issueCertificate(certDeps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now + fromDays * DAY_MS), notAfter: new Date(now + toDays * DAY_MS) }, actor: 'test' });
    return { row: r.row, file: r.pkcs12, password: r.password };
  };
  const client = (c?: { file: Uint8Array; password: string }) => new TlsClient(front.url, ca, c);

  test('a good certificate goes through; the request reached Kenshin over the socket via nginx', async () => {
    const good = await cert(-10, 60);
    const r = await client(good).get('/api/v1/certificate');
    assert.equal(r.status, 200);
    assert.equal(r.json().serial, good.row.serial);
    assert.match(fs.readFileSync(path.join(nginx.dir, 'access.log'), 'utf8'), /"GET \/api\/v1\/certificate HTTP\/1\.1" 200/);
  });

  test('a client cannot smuggle a certificate in the header: nginx overwrites it', async () => {
    const good = await cert(-10, 60);
    const r = await client().request('GET', '/api/v1/certificate', { headers: { 'X-SSL-Client-Cert': encodeURIComponent(good.row.pem) } });
    assert.equal(r.status, 401);
    assert.equal(r.json().error, 'no_certificate');
  });

  test('a certificate nginx rejects (expired) still gets Kenshin\'s page, in Japanese, not nginx\'s 400', async () => {
    const expired = await cert(-1100, -5);
    const r = await client(expired).get('/');
    assert.equal(r.status, 403);
    assert.equal(reasonOf(r.text), 'expired');
    assert.match(r.text, /運用窓口 03-0000-0000/);
    assert.match(nginx.errorLog(), /client SSL certificate verify error: \(10:certificate has expired\)/);
  });

  test('ssl_crl: after a revocation, `kenshin ca bundle` + reload make nginx itself reject it; Kenshin shows why', async () => {
    const victim = await cert(-10, 200);
    assert.equal((await client(victim).get('/api/v1/certificate')).status, 200);
    await revokeCertificate({ db: w.runtime.database.db, clock: w.clock }, { serial: victim.row.serial, actor: 'test', reason: 'keyCompromise' });
    // Kenshin refuses at once, from its database (before any CRL reaches nginx).
    assert.equal((await client(victim).get('/api/v1/certificate')).json().error, 'certificate_revoked');
    const env = { KENSHIN_DATA_DIR: w.config.dataDir, KENSHIN_CA_PASSPHRASE: w.config.caPassphrase, KENSHIN_LOG_LEVEL: 'silent' };
    const b = await kenshin(['ca', 'bundle', '--ca-out', path.join(nginx.dir, 'client-ca.pem'), '--crl-out', path.join(nginx.dir, 'crl.pem')], { env });
    assert.equal(b.code, 0, b.stderr);
    await nginx.reload();
    const r = await client(victim).get('/');
    assert.equal(r.status, 403);
    assert.equal(reasonOf(r.text), 'revoked');
    assert.match(nginx.errorLog(), /client SSL certificate verify error: \(23:certificate revoked\)/);
    // Others are unaffected by the new CRL.
    assert.equal((await client(await cert(-10, 60)).get('/api/v1/certificate')).status, 200);
  });

  test('nginx asks for certificates from our CAs only', async () => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${nginx.port}`, '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end();
    await new Promise((resolve) => child.on('exit', resolve));
    const names = (out.split('Acceptable client certificate CA names')[1] ?? '').split(/\n(?:Requested|Client Certificate Types|---)/)[0]!.split('\n').map((l) => l.trim()).filter(Boolean);
    assert.equal(names.length, 2, out);
    assert.ok(names.some((n) => /Kenshin Test Root CA/.test(n)));
    assert.ok(names.some((n) => /Kenshin Test Issuing CA 1/.test(n)));
  });

  test('plain HTTP is redirected to HTTPS', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port: nginx.httpPort, path: '/home', headers: { host: 'kenshin.example.jp' } }, resolve).on('error', reject));
    res.resume();
    assert.equal(res.statusCode, 301);
    assert.equal(res.headers.location, 'https://kenshin.example.jp/home');
  });

  test('readiness answers through the proxy without a certificate', async () => {
    const r = await client().get('/readyz');
    assert.equal(r.status, 200);
    assert.equal(r.json().ready, true);
  });

  test('a test nginx that cannot have its port fails instead of passing off another server as its own', async () => {
    // Another test process may take a port between freePort() and nginx's bind. A TLS server that
    // answers on it must not be mistaken for this nginx (CI once ran a suite against a stopped one).
    const squatter = tls.createServer({ cert: fs.readFileSync(nginx.dir + '/fullchain.pem'), key: fs.readFileSync(nginx.dir + '/privkey.pem') });
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as net.AddressInfo).port;
    try {
      const files = { upstreamSocket: '/nonexistent.sock', tlsCert: nginx.dir + '/fullchain.pem', tlsKey: nginx.dir + '/privkey.pem', clientCa: nginx.dir + '/client-ca.pem', crl: nginx.dir + '/crl.pem' };
      const dir = path.join(w.dir, 'squatted');
      await assert.rejects(startNginx(dir, files, { port }), /could not listen on .*Address already in use/s);
    } finally {
      squatter.close();
    }
  });
});
