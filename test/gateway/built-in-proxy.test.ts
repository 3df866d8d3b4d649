import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld, PASSWORD } from '../helpers/portal-world.js';
import { startUpstream, AUDIENCE } from '../helpers/gateway.js';
import { freePort } from '../helpers/nginx.js';
import { TlsClient, type Response } from '../helpers/client.js';
import { startServer } from '../../src/web/server.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Direct mode with KENSHIN_UPSTREAM_URL: Kenshin terminates TLS and fronts the example application
 * itself (@fastify/http-proxy), with the same decision as nginx's auth_request.
 */
describe('the built-in reverse proxy (direct mode, KENSHIN_UPSTREAM_URL)', async () => {
  const w = await makePortalWorld('sqlite');
  const appPort = await freePort();
  const port = await freePort();
  const url = `https://127.0.0.1:${port}/`;
  // The real clock: the example checks the assertion's expiry with the machine's (helpers/gateway.ts).
  const upstream = await startUpstream(w, { LISTEN: `127.0.0.1:${appPort}`, KENSHIN_ISSUER: url, KENSHIN_AUDIENCE: AUDIENCE, NODE_EXTRA_CA_CERTS: w.runtime.paths.rootCert });
  const server = await startServer(
    { ...w.config, listen: { host: '127.0.0.1', port }, publicUrl: url, publicUrlConfigured: true, gatewayAudience: AUDIENCE, upstreamUrl: `http://127.0.0.1:${appPort}` },
    { clock: systemClock },
  );
  w.onClose(() => server.close());
  const client = (cert?: { file: Uint8Array; password: string }) => new TlsClient(url, w.ca, cert);
  const field = (page: Response, id: string) => new RegExp(`id="${id}">([^<]*)<`).exec(page.text)?.[1];
  const because = () => `upstream: ${upstream.log()}`;

  test('deep link → login → 証明書更新チェック → 「あとで」 → the application at the deep link', async () => {
    const c = client(await w.cert(60));
    const first = await c.get('/records/42?tab=a');
    assert.equal(first.status, 302, because());
    assert.equal(first.headers.location, '/login?rd=%2Frecords%2F42%3Ftab%3Da');
    const login = await c.get(String(first.headers.location));
    const afterLogin = await c.submit(login, '/login', { loginId: 'solo', password: PASSWORD });
    assert.equal(afterLogin.headers.location, '/renewal/check?rd=%2Frecords%2F42%3Ftab%3Da');
    const later = await c.submit(await c.get(String(afterLogin.headers.location)), '/renewal/later');
    assert.equal(later.headers.location, '/records/42?tab=a');
    const app = await c.get('/records/42?tab=a');
    assert.equal(app.status, 200, because());
    assert.equal(field(app, 'tenant'), 'T0001');
    assert.equal(field(app, 'institution'), '1312345678');
    assert.equal(field(app, 'user'), 'solo');
    // The application's page carries no portal CSP; Kenshin's own pages still do.
    assert.equal(app.headers['content-security-policy'], undefined);
    assert.ok((await c.get('/renewal/check')).headers['content-security-policy']);
    // `/` is the application's here; Kenshin's login is at /login.
    assert.equal(field(await c.get('/'), 'path'), '/');
  });

  test('the client\'s own X-Kenshin-* and certificate headers are removed; bodies pass through', async () => {
    const c = client(await w.cert(400));
    await c.submit(await c.get('/login?rd=%2Fz'), '/login', { loginId: 'solo', password: PASSWORD });
    const forged = { 'x-kenshin-tenant': 'T0002', 'X-Kenshin-User': 'other', 'x-kenshin-assertion': 'forged', 'x-kenshin-extra': 'x', 'x-ssl-client-cert': 'forged' };
    const r = await c.request('GET', '/z?format=json', { headers: forged });
    assert.equal(r.status, 200, because());
    const seen = r.json<{ claims: { tenant: string }; headers: Record<string, string> }>();
    assert.equal(seen.claims.tenant, 'T0001');
    assert.equal(seen.headers['x-kenshin-tenant'], 'T0001');
    assert.equal(seen.headers['x-kenshin-user'], 'solo');
    assert.equal(seen.headers['x-kenshin-extra'], undefined);
    assert.notEqual(seen.headers['x-kenshin-assertion'], 'forged');
    const post = await c.request('POST', '/z?format=json', { json: { note: '受診票' } });
    assert.equal(post.status, 200, because());
    assert.deepEqual(JSON.parse(post.json<{ body: string }>().body), { note: '受診票' });
    // Without a session, forged headers get the login, not the application.
    const stranger = await client(await w.cert(400)).request('GET', '/z?format=json', { headers: forged });
    assert.equal(stranger.status, 302);
  });

  test("another certificate's request with the same cookie is refused", async () => {
    const owner = client(await w.cert(400));
    await owner.submit(await owner.get('/login'), '/login', { loginId: 'solo', password: PASSWORD });
    assert.equal((await owner.get('/w')).status, 200, because());
    const thief = client(await w.cert(400));
    thief.cookies.set('kenshin_session', owner.cookies.get('kenshin_session')!);
    assert.equal((await thief.get('/w')).status, 302);
    assert.equal((await owner.get('/w')).status, 302);
  });

  test('KENSHIN_UPSTREAM_URL: an http(s) URL, direct mode only', () => {
    const dir = tempDir();
    assert.equal(loadConfig({ dataDir: dir }, { KENSHIN_UPSTREAM_URL: 'http://127.0.0.1:3000/' }).upstreamUrl, 'http://127.0.0.1:3000');
    for (const bad of ['ftp://x', 'not a url', 'http://u:p@x/', 'http://x/?a=1'])
      assert.throws(() => loadConfig({ dataDir: dir }, { KENSHIN_UPSTREAM_URL: bad }), /KENSHIN_UPSTREAM_URL/);
    assert.throws(() => loadConfig({ dataDir: dir }, { KENSHIN_MODE: 'proxy', KENSHIN_UPSTREAM_URL: 'http://127.0.0.1:3000' }), /nginx-gateway/);
  });
});
