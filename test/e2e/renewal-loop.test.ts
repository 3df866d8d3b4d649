import { displaySerial } from '../../src/ca/serial.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeWorld } from '../helpers/world.js';
import { tempDir } from '../helpers/tmp.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startFront } from '../helpers/front.js';
import { DAY_MS } from '../../src/clock.js';
import { startBrowserWorld, type BrowserWorld } from './browser.js';

/**
 * The seed manual's loop in a real Chromium with its real NSS store: log in with a certificate 60
 * days from expiry, pick a 健診機関, 取得する → 開始する, download with 「こちら」, read the password
 * with 「確認する」, copy it with 「コピーする」, import the file with pk12util and that password, and
 * log in with the new certificate in a new context. Then the short paths and the expired page.
 */

// Chromium checks certificate dates against the real clock, so the installation is made "now".
const realNow = Date.now();
const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_OPERATOR_CONTACT: '運用窓口 03-0000-0000' }, now: new Date(realNow).toISOString() });
const deps = await w.runtime.certificateDeps();
const tenancy = { db: deps.db, clock: w.clock };
const PASSWORD = 'correct horse battery';
await addTenant(tenancy, { code: 'T0001', name: '山田クリニック' }, 'test');
await addInstitution(tenancy, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'test');
await addInstitution(tenancy, { tenantCode: 'T0001', number: '1312345679', name: '山田クリニック分院' }, 'test');
await addUser(tenancy, { tenantCode: 'T0001', loginId: 'yamada', password: PASSWORD, role: 'admin', institutionNumbers: ['1312345678', '1312345679'] }, 'test');
await addUser(tenancy, { tenantCode: 'T0001', loginId: 'solo', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
await addTenant(tenancy, { code: 'T0002', name: '別の医院' }, 'test');
// The real server with its worker pool, as `kenshin serve` runs it (behind nginx with KENSHIN_TEST_VIA=nginx).
const front = await startFront(w);
const origin = new URL(front.url).origin;
const issuerCn = /^CN=(.+)$/m.exec(new crypto.X509Certificate(fs.readFileSync(w.runtime.paths.issuingCert)).subject)?.[1] ?? assert.fail('issuing CA without CN');
const files = tempDir('kenshin-e2e-loop-');

async function issue(tenantCode: string, daysLeft: number) {
  const r = await issueCertificate(deps, {
    tenantCode,
    keyType: 'rsa2048',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(realNow - (1095 - daysLeft) * DAY_MS), notAfter: new Date(realNow + daysLeft * DAY_MS) },
    actor: 'test',
  });
  const file = path.join(files, `${r.serial}.p12`);
  fs.writeFileSync(file, r.pkcs12);
  return { ...r, file };
}

async function browserWith(t: TestContext, cert: { file: string; password: string }): Promise<BrowserWorld> {
  const bw = await startBrowserWorld({ origin, issuerCn });
  t.after(() => bw.close());
  bw.trustCa(w.runtime.paths.rootCert, 'Kenshin Test Root');
  bw.importP12(cert.file, cert.password);
  return bw;
}

test('the renewal loop in Chromium: 取得する → 開始する → こちら / 確認する / コピーする → import → new certificate', async (t) => {
  const old = await issue('T0001', 60);
  const bw = await browserWith(t, old);
  const ctx = await bw.newContext({ acceptDownloads: true, clipboard: true });
  const page = await ctx.newPage();

  const login = await page.goto(front.url);
  assert.equal(login?.status(), 200);
  assert.match(await page.innerText('#certificate'), new RegExp(displaySerial(old.serial)), 'the serial as browsers show it');
  await page.fill('#loginId', 'yamada');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL('**/institutions'), page.click('#login-submit')]);
  assert.match(await page.innerText('h1'), /健診機関選択/);
  await page.check('#inst-1312345679');
  await Promise.all([page.waitForURL('**/renewal/check'), page.getByRole('button', { name: '選択', exact: true }).click()]);
  assert.match(await page.innerText('#certificate'), /60 日/);
  await Promise.all([page.waitForURL('**/renewal/confirm'), page.getByRole('link', { name: '取得する', exact: true }).click()]);
  await Promise.all([page.waitForURL('**/renewal/package'), page.getByRole('button', { name: '開始する', exact: true }).click()]);

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'こちら', exact: true }).click()]);
  assert.equal(download.suggestedFilename(), `T0001_${new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo' }).format(new Date(realNow)).replace(/-/g, '')}.p12`);
  const p12 = path.join(files, 'renewed.p12');
  await download.saveAs(p12);

  await Promise.all([page.waitForURL(/\/renewal\/package#password$/), page.getByRole('button', { name: '確認する', exact: true }).click()]);
  const password = (await page.innerText('#p12-password')).trim();
  // The help from the save screen and Back: the same screen with the password, no resubmission.
  await Promise.all([page.waitForURL('**/help/delete-old?back=*'), page.locator('#help-delete-link').click()]);
  assert.match(await page.innerText('.user-menu summary'), /yamada/, 'the help keeps the user menu');
  assert.match(await page.innerText('#pair-new'), /:/);
  await page.goBack();
  assert.equal((await page.innerText('#p12-password')).trim(), password, 'Back shows the save screen again');
  await page.reload();
  assert.equal((await page.innerText('#p12-password')).trim(), password, 'so does a reload');
  assert.match(password, /^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/);
  await page.getByRole('button', { name: 'コピーする', exact: true }).click();
  await page.waitForFunction(() => document.getElementById('copy-status')?.textContent !== '');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), password);

  // The user's import: pk12util fails unless the password shown on the page opens the file.
  bw.importP12(p12, password);
  // Same context: Chromium keeps presenting the old certificate, and home says the new one is not in use.
  await page.goto(front.url + 'home');
  const advice = await page.innerText('#not-in-use');
  assert.match(advice, /ブラウザをすべて閉じて/);
  // The advice names the certificate to choose by the serial the browser shows.
  const newSerial = (await page.innerText('#pair-new .serial')).trim();
  assert.ok(advice.includes(newSerial), advice);

  // A restarted browser picks the later-expiring certificate: log in with it.
  await bw.restart();
  const next = await (await bw.newContext()).newPage();
  await next.goto(front.url);
  const shown = await next.innerText('#certificate');
  assert.doesNotMatch(shown, new RegExp(displaySerial(old.serial)));
  assert.ok(shown.includes(newSerial), 'both certificates in the store: the restarted Chromium presents the new one');
  await next.fill('#loginId', 'yamada');
  await next.fill('#password', PASSWORD);
  await Promise.all([next.waitForURL('**/institutions'), next.click('#login-submit')]);
  await Promise.all([next.waitForURL('**/home'), next.getByRole('button', { name: '選択', exact: true }).click()]);
  assert.match(await next.innerText('#taken-up'), /新しい証明書で接続しています、有効期限 \d{4}-\d\d-\d\d/);
  const renewal = await deps.db.selectFrom('renewals').selectAll().where('predecessor_id', '=', old.row.id).executeTakeFirstOrThrow();
  assert.ok(renewal.taken_up_at, 'the first request with the new certificate marked the renewal taken up');

  // One institution and outside the window: straight to home, no selection, no check screen.
  const solo = await (await bw.newContext()).newPage();
  await solo.goto(front.url);
  await solo.fill('#loginId', 'solo');
  await solo.fill('#password', PASSWORD);
  await Promise.all([solo.waitForURL('**/home'), solo.click('#login-submit')]);
  assert.match(await solo.innerText('#home-institution'), /1312345678/);
});

test('an expired certificate gets the expired page in Chromium', async (t) => {
  // Valid for the browser's (real) clock, expired for the server's: moves the server clock on.
  const cert = await issue('T0002', 10);
  const bw = await browserWith(t, cert);
  w.clock.advance(11 * DAY_MS);
  t.after(() => w.clock.advance(-11 * DAY_MS));
  const page = await (await bw.newContext()).newPage();
  const res = await page.goto(front.url);
  assert.equal(res?.status(), 403);
  assert.equal(await page.getAttribute('#refusal', 'data-reason'), 'expired');
  assert.match(await page.innerText('main'), /運用窓口 03-0000-0000/);
});
