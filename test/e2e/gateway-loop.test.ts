import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { makePortalWorld, PASSWORD, type PortalWorld } from '../helpers/portal-world.js';
import { AUDIENCE, startGateway, startUpstream } from '../helpers/gateway.js';
import { freePort } from '../helpers/nginx.js';
import { tempDir } from '../helpers/tmp.js';
import { startServer } from '../../src/web/server.js';
import { systemClock } from '../../src/clock.js';
import { startBrowserWorld, type BrowserWorld } from './browser.js';

/**
 * The seed manual's order, through the gateway, in a real Chromium with its real NSS store: a deep
 * link into the application → Kenshin's login → 健診機関 → the renewal check (60 days left) →
 * 「あとで」 → back at the deep link, where the example application shows what it verified in the
 * signed assertion. Then what a client must never get through: its own X-Kenshin-* headers or a
 * forged assertion, and another certificate presenting the same cookie.
 *
 * Once with nginx running deploy/nginx-gateway.conf, once with Kenshin's built-in proxy.
 */

interface Site {
  w: PortalWorld;
  url: string;
  issuerCn: string;
}

async function nginxSite(): Promise<Site> {
  const w = await makePortalWorld('sqlite');
  const gw = await startGateway(w);
  return { w, url: gw.url, issuerCn: issuerCnOf(w) };
}

async function builtInSite(): Promise<Site> {
  const w = await makePortalWorld('sqlite');
  const appPort = await freePort();
  const port = await freePort();
  const url = `https://127.0.0.1:${port}/`;
  await startUpstream(w, { LISTEN: `127.0.0.1:${appPort}`, KENSHIN_ISSUER: url, KENSHIN_AUDIENCE: AUDIENCE, NODE_EXTRA_CA_CERTS: w.runtime.paths.rootCert });
  const server = await startServer(
    { ...w.config, listen: { host: '127.0.0.1', port }, publicUrl: url, publicUrlConfigured: true, gatewayAudience: AUDIENCE, upstreamUrl: `http://127.0.0.1:${appPort}` },
    { clock: systemClock },
  );
  w.onClose(() => server.close());
  return { w, url, issuerCn: issuerCnOf(w) };
}

function issuerCnOf(w: PortalWorld): string {
  return /^CN=(.+)$/m.exec(new crypto.X509Certificate(fs.readFileSync(w.runtime.paths.issuingCert)).subject)?.[1] ?? assert.fail('issuing CA without CN');
}

async function browserWith(t: TestContext, site: Site, daysLeft: number, tenant = 'T0001'): Promise<BrowserWorld> {
  const cert = await site.w.cert(daysLeft, { tenant });
  const file = path.join(tempDir('kenshin-e2e-gw-'), `${cert.row.serial}.p12`);
  fs.writeFileSync(file, cert.file);
  const bw = await startBrowserWorld({ origin: site.url, issuerCn: site.issuerCn });
  t.after(() => bw.close());
  bw.trustCa(site.w.runtime.paths.rootCert, 'Kenshin Test Root');
  bw.importP12(file, cert.password);
  return bw;
}

for (const [name, make] of [
  ['nginx (deploy/nginx-gateway.conf)', nginxSite],
  ['the built-in proxy (KENSHIN_UPSTREAM_URL)', builtInSite],
] as const) {
  describe(`Chromium through the gateway: ${name}`, async () => {
    const site = await make();
    const deepLink = '/records/42?tab=a&b=1';

    test('deep link → login → 健診機関 → 証明書更新チェック → 「あとで」 → the application at the deep link; forged headers do not reach it', async (t) => {
      const bw = await browserWith(t, site, 60);
      const ctx = await bw.newContext();
      const page = await ctx.newPage();

      await page.goto(site.url + deepLink.slice(1));
      assert.equal(new URL(page.url()).pathname, '/login');
      assert.equal(new URL(page.url()).searchParams.get('rd'), deepLink);
      await page.fill('#loginId', 'yamada');
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForURL('**/institutions?**'), page.click('#login-submit')]);
      assert.match(await page.innerText('h1'), /健診機関選択/);
      await page.check('#inst-1312345679');
      await Promise.all([page.waitForURL('**/renewal/check?**'), page.getByRole('button', { name: '選択', exact: true }).click()]);
      assert.match(await page.innerText('#certificate'), /60 日/);
      await Promise.all([page.waitForURL((u) => u.pathname === '/records/42'), page.getByRole('button', { name: 'あとで', exact: true }).click()]);

      assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, deepLink);
      assert.equal(await page.innerText('h1'), '健診アプリ');
      assert.equal(await page.innerText('#tenant'), 'T0001');
      assert.equal(await page.innerText('#institution'), '1312345679');
      assert.equal(await page.innerText('#institution-name'), '山田クリニック分院');
      assert.equal(await page.innerText('#user'), 'yamada');
      // The application's own banner links to Kenshin's check (the manual's 補足1).
      assert.match(await page.innerText('.banner'), /残り 60 日/);

      // The client's own identity headers and a forged assertion (signed, but not by Kenshin) are
      // replaced before the application sees the request.
      const { privateKey } = await generateKeyPair('ES256');
      const forgedAssertion = await new SignJWT({ tenant: 'T0002', login_id: 'other' })
        .setProtectedHeader({ alg: 'ES256', typ: 'kenshin-assertion+jwt' })
        .setIssuer(site.url)
        .setAudience(AUDIENCE)
        .setExpirationTime('1m')
        .sign(privateKey);
      await ctx.setExtraHTTPHeaders({ 'X-Kenshin-Tenant': 'T0002', 'X-Kenshin-User': 'other', 'X-Kenshin-Role': 'admin', 'X-Kenshin-Assertion': forgedAssertion });
      const seen = await page.goto(site.url + 'records/42?format=json');
      assert.equal(seen?.status(), 200);
      const body = (await seen!.json()) as { claims: { tenant: string; login_id: string }; headers: Record<string, string> };
      assert.equal(body.claims.tenant, 'T0001');
      assert.equal(body.claims.login_id, 'yamada');
      assert.equal(body.headers['x-kenshin-tenant'], 'T0001');
      assert.equal(body.headers['x-kenshin-user'], 'yamada');
      assert.equal(body.headers['x-kenshin-role'], 'admin'); // yamada is a 管理者: the real role, not the forged one
      assert.notEqual(body.headers['x-kenshin-assertion'], forgedAssertion);
    });

    test("another certificate's browser with the same cookie gets the login, not the application", async (t) => {
      const owner = await browserWith(t, site, 400);
      const ownerCtx = await owner.newContext();
      const page = await ownerCtx.newPage();
      await page.goto(site.url + 'exam/7');
      await page.fill('#loginId', 'solo');
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForURL((u) => u.pathname === '/exam/7'), page.click('#login-submit')]);
      assert.equal(await page.innerText('#user'), 'solo');
      const cookie = (await ownerCtx.cookies(site.url)).find((c) => c.name === 'kenshin_session') ?? assert.fail('no session cookie');

      const thief = await browserWith(t, site, 400);
      const thiefCtx = await thief.newContext();
      await thiefCtx.addCookies([{ ...cookie }]);
      const stolen = await thiefCtx.newPage();
      await stolen.goto(site.url + 'exam/7');
      assert.equal(new URL(stolen.url()).pathname, '/login');
      assert.equal(await stolen.locator('#user').count(), 0, 'the application was not shown');
      // And the owner's session ended when another certificate presented its cookie.
      await page.goto(site.url + 'exam/7');
      assert.equal(new URL(page.url()).pathname, '/login');
    });
  });
}
