import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, decodeProtectedHeader, SignJWT, generateKeyPair, type JSONWebKeySet } from 'jose';
import { makePortalWorld, loginAs, PASSWORD } from '../helpers/portal-world.js';
import { testDialects } from '../helpers/databases.js';
import type { TlsClient } from '../helpers/client.js';
import { x509 } from '../../src/ca/x509.js';
import { addTenant, addUser, setUserLocked } from '../../src/tenancy/service.js';
import { TTL_MS as DECISION_TTL_MS } from '../../src/gateway/decision-cache.js';
import { revokeCertificate } from '../../src/certificates/service.js';

/**
 * Forward auth and the identity it hands an application, against the running portal (direct TLS,
 * real client certificates): /auth/verify is what nginx's auth_request asks before every request.
 */
const derOf = (pem: string) => new Uint8Array(new x509.X509Certificate(pem).rawData);

for (const dialect of testDialects()) {
  describe(`gateway forward auth (${dialect})`, async () => {
    const w = await makePortalWorld(dialect);
    const { db } = w.runtime.database;
    const issuer = w.config.publicUrl;
    const audience = w.config.gatewayAudience;
    const verify = (c: TlsClient, uri = '/records/42?tab=a&b=1', extra: Record<string, string> = {}) =>
      c.request('GET', '/auth/verify', { headers: { 'x-forwarded-method': 'GET', 'x-forwarded-uri': uri, ...extra } });
    const jwks = async (c: TlsClient) => {
      const r = await c.get('/.well-known/jwks.json');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /application\/jwk-set\+json/);
      return createLocalJWKSet(r.json<JSONWebKeySet>());
    };

    test('no session: 401 with the login URL carrying the original URI as rd; no certificate: the same', async () => {
      const cert = await w.cert(400);
      const r = await verify(w.client(cert));
      assert.equal(r.status, 401);
      assert.equal(r.headers['x-kenshin-login'], '/login?rd=' + encodeURIComponent('/records/42?tab=a&b=1'));
      assert.equal(r.json().error, 'no_session');
      assert.equal(r.headers['x-kenshin-user'], undefined);
      const none = await verify(w.client());
      assert.equal(none.status, 401);
      assert.equal(none.json().error, 'no_certificate');
      // X-Original-URI (nginx's usual name) works too; a POST's target is not a place to return to.
      assert.equal((await w.client(cert).request('GET', '/auth/verify', { headers: { 'x-original-uri': '/a/b' } })).headers['x-kenshin-login'], '/login?rd=%2Fa%2Fb');
      assert.equal((await verify(w.client(cert), '/a', { 'x-forwarded-method': 'POST' })).headers['x-kenshin-login'], '/login');
    });

    test('an rd that leaves the site is dropped, never followed', async () => {
      const cert = await w.cert(400);
      for (const bad of ['//evil.example/x', '/\\evil.example', 'https://evil.example/', '/\t/evil.example', 'x', '/' + 'a'.repeat(3000)]) {
        const r = await verify(w.client(cert), bad);
        assert.equal(r.headers['x-kenshin-login'], '/login', bad);
        const c = w.client(cert);
        const page = await c.get('/login?rd=' + encodeURIComponent(bad));
        assert.doesNotMatch(page.text, /name="rd"/, bad);
        const after = await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD, rd: bad });
        assert.equal(after.status, 303);
        assert.equal(after.headers.location, '/home', bad);
      }
    });

    test('after login: 200 with every identity header and an assertion Kenshin signed for this certificate', async () => {
      const cert = await w.cert(400);
      const c = w.client(cert);
      const page = await c.get('/login?rd=' + encodeURIComponent('/records/42?tab=a&b=1'));
      assert.match(page.text, /name="rd" value="\/records\/42\?tab=a&amp;b=1"/);
      const done = await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD });
      assert.equal(done.status, 303);
      assert.equal(done.headers.location, '/records/42?tab=a&b=1', 'solo has one 健診機関 and 400 days left: straight back');

      const r = await verify(c);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-kenshin-tenant'], 'T0001');
      assert.equal(r.headers['x-kenshin-institution'], '1312345678');
      assert.equal(decodeURIComponent(String(r.headers['x-kenshin-institution-name'])), '山田クリニック本院');
      assert.match(String(r.headers['x-kenshin-institution-name']), /^[\x21-\x7e]+$/, 'percent-encoded: ASCII on the wire');
      assert.equal(r.headers['x-kenshin-user'], 'solo');
      assert.equal(r.headers['x-kenshin-role'], 'user');
      assert.equal(r.headers['x-kenshin-certificate-serial'], cert.row.serial);
      assert.equal(r.headers['x-kenshin-certificate-not-after'], cert.row.not_after);
      assert.equal(r.headers['x-kenshin-certificate-days-left'], '400');
      assert.equal(r.headers['cache-control'], 'no-store');

      const token = String(r.headers['x-kenshin-assertion']);
      assert.equal(decodeProtectedHeader(token).alg, 'ES256');
      const { payload, protectedHeader } = await jwtVerify(token, await jwks(c), { issuer, audience, algorithms: ['ES256'], typ: 'kenshin-assertion+jwt', currentDate: w.clock.now() });
      assert.equal(protectedHeader.typ, 'kenshin-assertion+jwt');
      assert.equal(payload.sub, 'T0001/solo');
      assert.equal(payload.tenant, 'T0001');
      assert.equal(payload.institution, '1312345678');
      assert.equal(payload.institution_name, '山田クリニック本院');
      assert.equal(payload.login_id, 'solo');
      assert.equal(payload.role, 'user');
      assert.deepEqual(payload.certificate, { serial: cert.row.serial, not_after: cert.row.not_after, days_left: 400 });
      assert.equal(payload.iat, Math.floor(w.clock.now().getTime() / 1000));
      assert.equal(payload.exp! - payload.iat!, 60);
      // RFC 8705: the SHA-256 of the very DER this client presented, base64url.
      const thumb = createHash('sha256').update(derOf(cert.row.pem)).digest('base64url');
      assert.deepEqual(payload.cnf, { 'x5t#S256': thumb });
      // Short-lived: 61 s later it is refused by any verifier.
      await assert.rejects(jwtVerify(token, await jwks(c), { issuer, audience, currentDate: new Date(w.clock.now().getTime() + 61_000) }), { code: 'ERR_JWT_EXPIRED' });
      // Another audience's verifier refuses it.
      await assert.rejects(jwtVerify(token, await jwks(c), { issuer, audience: 'another-app', currentDate: w.clock.now() }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
    });

    test('a forged assertion does not verify against the JWKS', async () => {
      const c = w.client(await w.cert(400));
      const { privateKey } = await generateKeyPair('ES256');
      const kid = (await c.get('/.well-known/jwks.json')).json<JSONWebKeySet>().keys[0]!.kid!;
      const forged = await new SignJWT({ tenant: 'T0002' }).setProtectedHeader({ alg: 'ES256', kid, typ: 'kenshin-assertion+jwt' }).setIssuer(issuer).setAudience(audience).setSubject('T0002/other').setIssuedAt().setExpirationTime('1m').sign(privateKey);
      await assert.rejects(jwtVerify(forged, await jwks(c), { issuer, audience }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    });

    test('cheap: the session is written at most once a minute, however many checks', async () => {
      const cert = await w.cert(400);
      const c = w.client(cert);
      await loginAs(c, 'solo');
      const seen = async () => (await db.selectFrom('sessions').select('last_seen_at').where('certificate_id', '=', cert.row.id).executeTakeFirstOrThrow()).last_seen_at;
      const before = await seen();
      w.clock.advance(30_000);
      for (let i = 0; i < 5; i++) assert.equal((await verify(c)).status, 200);
      assert.equal(await seen(), before, 'no write within the minute');
      w.clock.advance(31_000);
      assert.equal((await verify(c)).status, 200);
      assert.equal(await seen(), w.clock.now().toISOString(), 'refreshed once the minute has passed');
      // And idle expiry still applies: 31 minutes without a check ends the session.
      w.clock.advance(31 * 60_000);
      assert.equal((await verify(c)).status, 401);
    });

    test('another certificate with the same cookie is refused, and the session ends', async () => {
      const mine = await w.cert(400);
      const c = w.client(mine);
      await loginAs(c, 'solo');
      assert.equal((await verify(c)).status, 200);
      const thief = w.client(await w.cert(400));
      thief.cookies.set('kenshin_session', c.cookies.get('kenshin_session')!);
      const r = await verify(thief);
      assert.equal(r.status, 401);
      assert.equal(r.json().error, 'other_certificate');
      assert.equal((await verify(c)).status, 401, 'the copied cookie ended the session for its owner too');
    });

    test('two 健診機関: the choice comes before the application, then back to rd', async () => {
      const c = w.client(await w.cert(400));
      const page = await c.get('/login?rd=%2Fexam%2F7');
      const afterLogin = await c.submit(page, '/login', { loginId: 'yamada', password: PASSWORD });
      assert.equal(afterLogin.headers.location, '/institutions?rd=%2Fexam%2F7');
      assert.equal((await verify(c)).status, 401, 'no 健診機関 chosen yet');
      assert.equal((await verify(c)).json().error, 'institution_not_chosen');
      const choose = await c.get(String(afterLogin.headers.location));
      assert.match(choose.text, /name="rd" value="\/exam\/7"/);
      const second = /name="institutionId" value="(\d+)" id="inst-1312345679"/.exec(choose.text)![1]!;
      const chosen = await c.submit(choose, '/institutions', { institutionId: second });
      assert.equal(chosen.headers.location, '/exam/7');
      const r = await verify(c);
      assert.equal(r.headers['x-kenshin-institution'], '1312345679');
      assert.equal(r.headers['x-kenshin-role'], 'admin');
    });

    test('a cached decision never outlives the session: logout and another 健診機関 are seen by the very next check', async () => {
      const c = w.client(await w.cert(400));
      const inst = await loginAs(c, 'yamada');
      const ids = [...inst.text.matchAll(/name="institutionId" value="(\d+)" id="inst-(\d+)"/g)].map((m) => ({ id: m[1]!, number: m[2]! }));
      await c.submit(inst, '/institutions', { institutionId: ids[0]!.id });
      for (let i = 0; i < 3; i++) assert.equal((await verify(c)).headers['x-kenshin-institution'], ids[0]!.number, 'answered (and cached)');
      // Back to 健診機関選択 in the portal and the other one: the application sees it at once.
      const again = await c.get('/institutions');
      await c.submit(again, '/institutions', { institutionId: ids[1]!.id });
      assert.equal((await verify(c)).headers['x-kenshin-institution'], ids[1]!.number);
      // Logout at Kenshin ends it for the application too, with no cache lifetime in between.
      const home = await c.get('/institutions');
      const token = c.cookies.get('kenshin_session')!;
      await c.submit(home, '/logout');
      // The browser dropped the cookie; an application tab still holding it must be refused too.
      c.cookies.set('kenshin_session', token);
      assert.equal((await verify(c)).status, 401);
    });

    test('the repeated check answered from memory is the same answer, and a revoked certificate gets none', async () => {
      const cert = await w.cert(400);
      const c = w.client(cert);
      await loginAs(c, 'solo');
      const first = await verify(c);
      const again = await verify(c);
      assert.equal(again.status, 200);
      for (const h of ['x-kenshin-tenant', 'x-kenshin-institution', 'x-kenshin-user', 'x-kenshin-role', 'x-kenshin-certificate-serial', 'x-kenshin-assertion']) assert.equal(again.headers[h], first.headers[h], h);
      assert.equal(again.headers['cache-control'], 'no-store');
      // Revoked: the very next check is refused, cached decision or not.
      await revokeCertificate({ db, clock: w.clock }, { serial: cert.row.serial, reason: 'keyCompromise', actor: 'test' });
      assert.notEqual((await verify(c)).status, 200);
      // And the portal knows it at once too (the certificate's row is not kept past a revocation).
      assert.match((await c.get('/')).text, /data-reason="revoked"/);
    });

    test('90 days or less: the renewal check comes first, 「あとで」 lets the user through to rd', async () => {
      const cert = await w.cert(60);
      const c = w.client(cert);
      const page = await c.get('/login?rd=%2Fexam%2F7');
      const afterLogin = await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD });
      assert.equal(afterLogin.headers.location, '/renewal/check?rd=%2Fexam%2F7');
      const v = await verify(c);
      assert.equal(v.status, 401);
      assert.equal(v.json().error, 'renewal_check_due');
      const check = await c.get(String(afterLogin.headers.location));
      assert.match(check.text, /証明書更新チェック/);
      assert.match(check.text, /action="\/renewal\/later"[\s\S]*?name="rd" value="\/exam\/7"/);
      const later = await c.submit(check, '/renewal/later');
      assert.equal(later.headers.location, '/exam/7');
      const ok = await verify(c);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['x-kenshin-certificate-days-left'], '60');
      // The portal's own flow is unchanged: without rd, 「あとで」 goes home.
      const d = w.client(await w.cert(60));
      const check2 = await loginAs(d, 'solo');
      assert.equal((await d.submit(check2, '/renewal/later')).headers.location, '/home');
    });

    test('GET /api/v1/session: the user, the 健診機関 and the renewal state, for the same cookie and certificate', async () => {
      const cert = await w.cert(60);
      const c = w.client(cert);
      assert.equal((await c.get('/api/v1/session')).json().error, 'no_session');
      assert.equal((await w.client().get('/api/v1/session')).json().error, 'no_certificate');
      await loginAs(c, 'solo');
      const r = await c.get('/api/v1/session');
      assert.equal(r.status, 200);
      const s = r.json<{ tenant: unknown; institution: unknown; user: unknown; certificate: Record<string, unknown>; renewal: Record<string, unknown> }>();
      assert.deepEqual(s.tenant, { code: 'T0001', name: '山田クリニック' });
      assert.deepEqual(s.institution, { number: '1312345678', name: '山田クリニック本院' });
      assert.deepEqual(s.user, { loginId: 'solo', role: 'user' });
      assert.equal(s.certificate.serial, cert.row.serial);
      assert.equal(s.certificate.daysLeft, 60);
      assert.equal(s.renewal.eligible, true);
      assert.equal(s.renewal.deferred, false);
      assert.equal(s.renewal.checkUrl, new URL('/renewal/check', w.server.url).href);
      const thief = w.client(await w.cert(400));
      thief.cookies.set('kenshin_session', c.cookies.get('kenshin_session')!);
      assert.equal((await thief.get('/api/v1/session')).status, 401);
    });

    test('an operator is no application user: 403, not a login loop', async () => {
      const deps = { db, clock: w.clock };
      await addTenant(deps, { code: 'OPERATORS', name: '運用者' }, 'test');
      await addUser(deps, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
      const c = w.client(await w.cert(700, { tenant: 'OPERATORS' }));
      await loginAs(c, 'ops');
      const r = await verify(c);
      assert.equal(r.status, 403);
      assert.equal(r.json().error, 'not_an_application_user');
      assert.equal(r.headers['x-kenshin-user'], undefined);
    });

    test('a locked user is let through no more: at once when locked here, within the cache lifetime when locked elsewhere', async () => {
      const c = w.client(await w.cert(400));
      await loginAs(c, 'solo');
      assert.equal((await verify(c)).status, 200);
      // Through the service, as the console and the CLI lock: the very next check refuses.
      await setUserLocked({ db, clock: w.clock }, 'T0001', 'solo', true, 'test');
      try {
        assert.equal((await verify(c)).status, 401);
      } finally {
        await setUserLocked({ db, clock: w.clock }, 'T0001', 'solo', false, 'test');
      }
      // Locked by another instance (straight in the shared database, no event here): refused once
      // the cached decision is older than its lifetime.
      await loginAs(c, 'solo');
      assert.equal((await verify(c)).status, 200);
      await db.updateTable('users').set({ locked_at: w.clock.now().toISOString() }).where('login_id', '=', 'solo').execute();
      try {
        await new Promise((r) => setTimeout(r, DECISION_TTL_MS + 50));
        assert.equal((await verify(c)).status, 401);
      } finally {
        await db.updateTable('users').set({ locked_at: null }).where('login_id', '=', 'solo').execute();
      }
    });
  });
}
