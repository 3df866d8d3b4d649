import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { certificateFromHeader } from '../../src/web/proxy.js';
import { DAY_MS } from '../../src/clock.js';
import { TlsClient } from '../helpers/client.js';
import fs from 'node:fs';

/** A plain-HTTP request as a proxy would send it (over TCP or the unix socket). */
function proxyGet(target: { port?: number; socketPath?: string }, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', ...target, path: urlPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function setup(env: Record<string, string>) {
  const w = await makeWorld('sqlite', { env: { KENSHIN_MINT_WORKERS: '0', ...env } });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');
  const now = w.clock.now().getTime();
  const issued = await issueCertificate(await w.runtime.certificateDeps(), {
    tenantCode: 'T0001',
    keyType: 'p256',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 60 * DAY_MS) },
    actor: 'test',
  });
  const pem = issued.row.pem;
  const server = await startServer(w.config, { clock: w.clock });
  w.onClose(() => server.close());
  return { w, server, pem, serial: issued.row.serial };
}

describe('proxy mode: the client certificate from the proxy header', async () => {
  const { w, server, pem, serial } = await setup({ KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_TRUSTED_PROXIES: '127.0.0.1' });

  test('nginx $ssl_client_escaped_cert, HAProxy base64 DER and space-folded PEM identify the certificate', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    for (const value of [encodeURIComponent(pem), der.toString('base64'), pem.replace(/\n/g, ' ')]) {
      const r = await proxyGet({ port: server.port }, '/api/v1/certificate', { 'x-ssl-client-cert': value });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.serial, serial);
    }
  });

  test('no header, an empty one, or garbage is "no certificate"', async () => {
    for (const headers of [{} as Record<string, string>, { 'x-ssl-client-cert': '' }, { 'x-ssl-client-cert': 'not a certificate' }, { 'x-ssl-client-cert': '%E0%A4%A' }]) {
      const r = await proxyGet({ port: server.port }, '/api/v1/certificate', headers);
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'no_certificate');
    }
  });

  test('readiness and liveness answer without a certificate', async () => {
    assert.deepEqual((await proxyGet({ port: server.port }, '/healthz')).body, { ok: true });
    const ready = await proxyGet({ port: server.port }, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { ready: true, checks: { database: 'ok', ca: 'ok', shutdown: 'ok' } });
    assert.ok(w.config.mode === 'proxy');
  });

  test('header parsing refuses what is not a DER certificate', () => {
    assert.equal(certificateFromHeader('-'), undefined);
    assert.equal(certificateFromHeader(Buffer.from('hello world, this is long enough').toString('base64')), undefined);
    assert.ok(certificateFromHeader(encodeURIComponent(pem)));
  });
});

describe('proxy mode: the header from an address that is not a configured proxy is ignored', async () => {
  // The service listens on loopback but only 10.1.2.3 is the proxy: our own request is "anyone else".
  const { server, pem } = await setup({ KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_TRUSTED_PROXIES: '10.1.2.3,fd00::/8' });
  test('a valid certificate in the header counts as none', async () => {
    const r = await proxyGet({ port: server.port }, '/api/v1/certificate', { 'x-ssl-client-cert': encodeURIComponent(pem) });
    assert.equal(r.status, 401);
    assert.equal(r.body.error, 'no_certificate');
  });
});

describe('proxy mode on a unix socket', async () => {
  const socketDir = fs.mkdtempSync(path.join('/tmp', 'ks-'));
  const socket = path.join(socketDir, 'kenshin.sock');
  const { server, pem, serial } = await setup({ KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: `unix:${socket}`, KENSHIN_PROXY_CERT_HEADER: 'X-Client-Cert' });
  test('the socket is group-accessible and the configured header is read', async () => {
    assert.equal(server.url, `unix:${socket}`);
    assert.equal(fs.statSync(socket).mode & 0o777, 0o660);
    const r = await proxyGet({ socketPath: socket }, '/api/v1/certificate', { 'x-client-cert': encodeURIComponent(pem) });
    assert.equal(r.status, 200);
    assert.equal(r.body.serial, serial);
    const other = await proxyGet({ socketPath: socket }, '/api/v1/certificate', { 'x-ssl-client-cert': encodeURIComponent(pem) });
    assert.equal(other.status, 401);
  });
  test('closing removes nothing it should not and a restart reuses the path', async () => {
    await server.close();
    const again = await startServer(server.runtime.config);
    try {
      assert.equal((await proxyGet({ socketPath: socket }, '/healthz')).status, 200);
    } finally {
      await again.close();
      fs.rmSync(socketDir, { recursive: true, force: true });
    }
  });
});

describe('direct mode ignores the proxy header', async () => {
  const { w, server, pem } = await setup({ KENSHIN_LISTEN: '127.0.0.1:0' });
  test('a header without a TLS client certificate is no certificate', async () => {
    const c = new TlsClient(server.url, fs.readFileSync(w.runtime.paths.rootCert, 'utf8'));
    const r = await c.request('GET', '/api/v1/certificate', { headers: { 'x-ssl-client-cert': encodeURIComponent(pem) } });
    assert.equal(r.status, 401);
    assert.equal(r.json().error, 'no_certificate');
  });
});
