/**
 * Regenerates docs/screenshots/*.png: every portal screen in Japanese, from a fresh demo
 * installation in a temp dir, rendered by the real Chromium (Debian's /usr/bin/chromium).
 *
 *   npm run screenshots
 *
 * The browser presents the demo certificate through Playwright's clientCertificates option: these
 * are pictures of the pages, not a test of the browser's certificate store (test/e2e does that).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { loadConfig } from '../src/config.js';
import { initialise } from '../src/setup/init.js';
import { startServer } from '../src/web/server.js';
import { addInstitution, addTenant, addUser } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';

const OUT = path.resolve(import.meta.dirname, '../docs/screenshots');
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-shots-'));
  const config = loadConfig({ dataDir: dir }, { ...process.env, KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_DATA_DIR: dir, KENSHIN_DATABASE_URL: '', KENSHIN_LOG_LEVEL: 'warn', KENSHIN_METRICS_LISTEN: 'off', KENSHIN_OPERATOR_CONTACT: 'Kenshin Cloud 運用窓口 (平日 9:00-17:00) support@kenshin.example.jp' });
  const init = await initialise(config, { demo: true });
  const demo = init.demo!;
  const server = await startServer(config);
  const origin = server.url.replace(/\/$/, '');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  fs.mkdirSync(OUT, { recursive: true });
  const shot = async (page: Page, name: string) => {
    await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
    console.log(`docs/screenshots/${name}.png`);
  };
  const contextWith = (pfx: Buffer, passphrase: string): Promise<BrowserContext> =>
    browser.newContext({ viewport: { width: 1000, height: 720 }, locale: 'ja-JP', acceptDownloads: true, ignoreHTTPSErrors: true, clientCertificates: [{ origin, pfx, passphrase }] });
  try {
    const ctx = await contextWith(fs.readFileSync(demo.p12File), fs.readFileSync(demo.p12PasswordFile, 'utf8').trim());
    const page = await ctx.newPage();
    const first = await page.goto(origin + '/');
    if (!(await page.$('#loginId'))) throw new Error(`no login form (HTTP ${first?.status()}): ${(await page.content()).slice(0, 1500)}`);
    await page.fill('#loginId', demo.login);
    await shot(page, '01-login');
    await page.fill('#password', demo.loginPassword);
    await Promise.all([page.waitForURL('**/institutions'), page.click('#login-submit')]);
    await shot(page, '02-institutions');
    await Promise.all([page.waitForURL('**/renewal/check'), page.click('#select-institution')]);
    await shot(page, '03-renewal-check');
    await Promise.all([page.waitForURL('**/renewal/confirm'), page.click('#renewal-get')]);
    await shot(page, '04-renewal-confirm');
    await Promise.all([page.waitForURL('**/renewal/package'), page.click('#renewal-start')]);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-p12')]);
    const p12 = path.join(dir, download.suggestedFilename());
    await download.saveAs(p12);
    await Promise.all([page.waitForURL(/\/renewal\/package#password$/), page.click('#reveal-password')]);
    const password = (await page.textContent('#p12-password'))!.trim();
    await shot(page, '05-renewal-save');
    await page.goto(origin + '/home');
    await shot(page, '06-home-not-in-use');
    await page.click('.user-menu summary');
    await shot(page, '07-user-menu');

    const next = await contextWith(fs.readFileSync(p12), password);
    const p2 = await next.newPage();
    await p2.goto(origin + '/');
    await p2.fill('#loginId', demo.login);
    await p2.fill('#password', demo.loginPassword);
    await Promise.all([p2.waitForURL('**/institutions'), p2.click('#login-submit')]);
    await Promise.all([p2.waitForURL('**/home'), p2.click('#select-institution')]);
    await shot(p2, '08-home-new-certificate');
    await p2.goto(origin + '/renewal/check');
    await shot(p2, '09-renewal-not-needed');

    // The operator console, with an operator of the reserved OPERATORS tenant.
    const rt = server.runtime;
    const tenancy = { db: rt.database.db, clock: rt.clock };
    await addTenant(tenancy, { code: 'OPERATORS', name: '運用者' }, 'screenshots');
    await addUser(tenancy, { tenantCode: 'OPERATORS', loginId: 'ops', password: 'operator password', role: 'operator' }, 'screenshots');
    await addTenant(tenancy, { code: 'T0001', name: '山田クリニック', email: 'office@yamada.example.jp' }, 'screenshots');
    await addInstitution(tenancy, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'screenshots');
    await addUser(tenancy, { tenantCode: 'T0001', loginId: 'yamada', password: 'clinic password', role: 'admin', institutionNumbers: ['1312345678'] }, 'screenshots');
    const certDeps = await rt.certificateDeps();
    const now = Date.now();
    for (const days of [12, 25, 40, 70, 200, 400, 800]) {
      await issueCertificate(certDeps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - 86_400_000), notAfter: new Date(now + days * 86_400_000) }, actor: 'screenshots' });
    }
    const opsCert = await issueCertificate(certDeps, { tenantCode: 'OPERATORS', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'screenshots' });
    const opsCtx = await contextWith(Buffer.from(opsCert.pkcs12), opsCert.password);
    const op = await opsCtx.newPage();
    await op.goto(origin + '/');
    await op.fill('#loginId', 'ops');
    await op.fill('#password', 'operator password');
    await Promise.all([op.waitForURL('**/admin'), op.click('#login-submit')]);
    await shot(op, '20-admin-dashboard');
    await op.goto(origin + '/admin/tenants/T0001');
    await shot(op, '21-admin-tenant');
    await op.goto(origin + '/admin/certificates/new?tenant=T0001');
    await Promise.all([op.waitForURL('**/admin/certificates'), op.click('#issue-submit')]);
    await shot(op, '22-admin-issued-delivery-sheet');
    await op.goto(origin + '/admin/audit');
    await shot(op, '23-admin-audit');

    const anon = await browser.newContext({ viewport: { width: 1000, height: 720 }, ignoreHTTPSErrors: true });
    const p3 = await anon.newPage();
    await p3.goto(origin + '/');
    await shot(p3, '10-refusal-no-certificate');
    await p3.goto(origin + '/help/import');
    await shot(p3, '11-help-import');
    await p3.goto(origin + '/help/delete-old');
    await shot(p3, '12-help-delete-old');
  } finally {
    await browser.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
