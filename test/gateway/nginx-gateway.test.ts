import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { makePortalWorld, PASSWORD } from '../helpers/portal-world.js';
import { startGateway } from '../helpers/gateway.js';
import { TlsClient, type Response } from '../helpers/client.js';

/**
 * The whole gateway as shipped: Debian's nginx with deploy/nginx-gateway.conf in front of Kenshin
 * (proxy mode) and examples/gateway-upstream/server.mjs, which shows a page only for an
 * X-Kenshin-Assertion it verified against Kenshin's JWKS, bound to the connection's certificate.
 */
describe('gateway through nginx (deploy/nginx-gateway.conf) to the example application', async () => {
  const w = await makePortalWorld('sqlite');
  const gw = await startGateway(w);
  const client = (cert?: { file: Uint8Array; password: string }) => new TlsClient(gw.url, w.ca, cert);
  const field = (page: Response, id: string) => new RegExp(`id="${id}">([^<]*)<`).exec(page.text)?.[1];
  const because = () => `upstream: ${gw.upstreamLog()}\nnginx: ${gw.nginx.errorLog().slice(-2000)}`;

  /** deep link → 401 → Kenshin's login (rd) → …steps… → back at the deep link. */
  const deepLinkLogin = async (c: TlsClient, deepLink: string, loginId: string) => {
    const first = await c.get(deepLink);
    assert.equal(first.status, 302, because());
    assert.equal(first.headers.location, '/login?rd=' + encodeURIComponent(deepLink));
    const login = await c.get(String(first.headers.location));
    assert.equal(login.status, 200);
    assert.match(login.text, /ログインID/);
    return c.submit(login, '/login', { loginId, password: PASSWORD });
  };

  test('deep link → login → 証明書更新チェック (60 days left) → 「あとで」 → the application at the deep link', async () => {
    const c = client(await w.cert(60));
    const deepLink = '/records/42?tab=a&b=1';
    const afterLogin = await deepLinkLogin(c, deepLink, 'solo');
    assert.equal(afterLogin.status, 303);
    assert.equal(afterLogin.headers.location, '/renewal/check?rd=' + encodeURIComponent(deepLink));
    // Not past the check yet: the application is still out of reach.
    assert.equal((await c.get(deepLink)).status, 302);
    const check = await c.get(String(afterLogin.headers.location));
    assert.match(check.text, /証明書更新チェック/);
    assert.match(check.text, /取得する/);
    const later = await c.submit(check, '/renewal/later');
    assert.equal(later.headers.location, deepLink);
    const app = await c.get(deepLink);
    assert.equal(app.status, 200, because());
    assert.match(app.text, /<h1>健診アプリ<\/h1>/);
    assert.equal(field(app, 'tenant'), 'T0001');
    assert.equal(field(app, 'institution'), '1312345678');
    assert.equal(field(app, 'institution-name'), '山田クリニック本院');
    assert.equal(field(app, 'user'), 'solo');
    assert.equal(field(app, 'path'), '/records/42?tab=a&#38;b=1');
    // The application's banner and its menu link to Kenshin's check, which nginx routes to Kenshin.
    assert.match(app.text, /残り 60 日/);
    assert.equal((await c.get('/renewal/check')).status, 200);
  });

  test('two 健診機関: the choice comes first, then the application shows the chosen one', async () => {
    const c = client(await w.cert(400));
    const afterLogin = await deepLinkLogin(c, '/exam/7', 'yamada');
    assert.equal(afterLogin.headers.location, '/institutions?rd=%2Fexam%2F7');
    const choose = await c.get(String(afterLogin.headers.location));
    const branch = /name="institutionId" value="(\d+)" id="inst-1312345679"/.exec(choose.text)![1]!;
    const chosen = await c.submit(choose, '/institutions', { institutionId: branch });
    assert.equal(chosen.headers.location, '/exam/7');
    const app = await c.get('/exam/7');
    assert.equal(app.status, 200, because());
    assert.equal(field(app, 'institution'), '1312345679');
    assert.equal(field(app, 'institution-name'), '山田クリニック分院');
    assert.equal(field(app, 'user'), 'yamada');
    assert.equal(field(app, 'role'), 'admin');
    assert.doesNotMatch(app.text, /残り/, 'no renewal banner with 400 days left');
  });

  test("forged X-Kenshin-* headers and a forged assertion from the client never reach the application", async () => {
    const c = client(await w.cert(400));
    const afterLogin = await deepLinkLogin(c, '/x', 'solo');
    assert.equal(afterLogin.headers.location, '/x');
    const forged = {
      'x-kenshin-tenant': 'T0002',
      'x-kenshin-institution': '2712345678',
      'x-kenshin-institution-name': 'forged',
      'x-kenshin-user': 'other',
      'x-kenshin-role': 'admin',
      'x-kenshin-certificate-serial': '01',
      'x-kenshin-certificate-not-after': '2099-01-01T00:00:00.000Z',
      'x-kenshin-certificate-days-left': '9999',
      'x-kenshin-assertion': 'eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJUMDAwMiJ9.',
    };
    const r = await c.request('GET', '/x?format=json', { headers: forged });
    assert.equal(r.status, 200, because());
    const seen = r.json<{ claims: Record<string, unknown>; headers: Record<string, string> }>();
    assert.equal(seen.claims.tenant, 'T0001');
    assert.equal(seen.claims.login_id, 'solo');
    assert.equal(seen.headers['x-kenshin-tenant'], 'T0001');
    assert.equal(seen.headers['x-kenshin-institution'], '1312345678');
    assert.equal(decodeURIComponent(seen.headers['x-kenshin-institution-name']!), '山田クリニック本院');
    assert.equal(seen.headers['x-kenshin-user'], 'solo');
    assert.equal(seen.headers['x-kenshin-role'], 'user');
    assert.equal(seen.headers['x-kenshin-certificate-days-left'], '400');
    assert.notEqual(seen.headers['x-kenshin-assertion'], forged['x-kenshin-assertion']);
    for (const [k, v] of Object.entries(forged)) assert.notEqual(seen.headers[k], v, k);
    // A form post to the application is checked the same way (nginx's subrequest is a GET) and passes on.
    const post = await c.request('POST', '/x?format=json', { form: { note: '受診票' }, headers: forged });
    assert.equal(post.status, 200, because());
    assert.equal(post.json<{ claims: { tenant: string } }>().claims.tenant, 'T0001');
    assert.equal(post.json<{ body: string }>().body, 'note=' + encodeURIComponent('受診票'));

    // Without a session, forged headers get the browser sent to the login, not to the application.
    const stranger = client(await w.cert(400));
    const out = await stranger.request('GET', '/x?format=json', { headers: forged });
    assert.equal(out.status, 302);
    assert.match(String(out.headers.location), /^\/login\?rd=/);
  });

  test("another certificate's request with the same cookie is refused, and ends the session", async () => {
    const owner = client(await w.cert(400));
    await deepLinkLogin(owner, '/y', 'solo');
    assert.equal((await owner.get('/y')).status, 200, because());
    const thief = client(await w.cert(400));
    thief.cookies.set('kenshin_session', owner.cookies.get('kenshin_session')!);
    assert.equal((await thief.get('/y')).status, 302);
    // Nor does the cookie plus the owner's certificate in the proxy's header, sent by the client.
    const pem = (await w.runtime.database.db.selectFrom('certificates').select('pem').orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow()).pem;
    const bare = client();
    bare.cookies.set('kenshin_session', owner.cookies.get('kenshin_session')!);
    assert.equal((await bare.request('GET', '/y', { headers: { 'x-ssl-client-cert': encodeURIComponent(pem) } })).status, 302);
    assert.equal((await owner.get('/y')).status, 302, 'the session ended when the other certificate presented it');
  });

  test('the forward-auth endpoint is internal; the JWKS and /api/v1/session are Kenshin\'s', async () => {
    const c = client(await w.cert(400));
    assert.equal((await c.get('/auth/verify')).status, 404);
    const jwks = await c.get('/.well-known/jwks.json');
    assert.equal(jwks.status, 200);
    const keys = jwks.json<{ keys: { kty: string; crv: string; d?: string }[] }>().keys;
    assert.equal(keys[0]!.crv, 'P-256');
    assert.ok(keys.every((k) => k.d === undefined), 'no private part');
    await deepLinkLogin(c, '/', 'solo');
    const s = await c.get('/api/v1/session');
    assert.equal(s.status, 200);
    assert.equal(s.json<{ user: { loginId: string } }>().user.loginId, 'solo');
    assert.equal(s.json<{ renewal: { checkUrl: string } }>().renewal.checkUrl, gw.url + 'renewal/check');
    // Logout (the application's menu posts to Kenshin's /logout): the application is closed again.
    const out = await c.request('POST', '/logout', { form: {} });
    assert.equal(out.status, 303);
    assert.equal((await c.get('/')).status, 302);
  });

  test("Kenshin's own pages and APIs are routed to Kenshin, not to the application", async () => {
    const c = client(await w.cert(400));
    await deepLinkLogin(c, '/', 'yamada');
    const choose = await c.get('/institutions');
    await c.submit(choose, '/institutions', { institutionId: /name="institutionId" value="(\d+)"/.exec(choose.text)![1]! });
    assert.equal((await c.get('/')).status, 200, 'logged in: the application answers /');
    const kenshin: [string, string][] = [
      ['GET', '/home'],
      ['GET', '/institutions'],
      ['GET', '/renewal/check'],
      ['GET', '/renewal/confirm'],
      ['GET', '/renewal/package'],
      ['POST', '/renewal/later'],
      ['GET', '/tenant'],
      ['POST', '/tenant/users'],
      ['GET', '/admin'],
      ['GET', '/admin/tenants'],
      ['GET', '/api/v1/certificate'],
      ['GET', '/api/v1/renewals/x/pkcs12'],
      ['POST', '/api/cert'],
      ['GET', '/help/import'],
      ['GET', '/assets/app.css'],
      ['GET', '/crl/bundle.pem'],
      ['GET', '/login'],
    ];
    for (const [method, p] of kenshin) {
      const r = await c.request(method, p, method === 'POST' ? { form: {} } : {});
      assert.doesNotMatch(r.text, /健診アプリ|no_assertion|"claims"/, `${method} ${p} reached the application`);
      assert.notEqual(r.status, 502, `${method} ${p}`);
    }
    assert.match((await c.get('/tenant')).text, /契約先/);
  });

  test('a certificate nginx rejects (expired) gets Kenshin\'s page saying why, not the application', async () => {
    const expired = await w.cert(-1, { notBeforeDaysAgo: 400 });
    const r = await client(expired).get('/records/1');
    assert.equal(r.status, 403, because());
    assert.match(r.text, /有効期限/);
    assert.doesNotMatch(r.text, /健診アプリ/);
  });

  test('the signing key is in the data directory, 0600', () => {
    const st = fs.statSync(w.runtime.paths.gatewayKeyFile);
    assert.equal(st.mode & 0o777, 0o600);
  });
});
