import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'puppeteer-core';
import { displaySerial } from '../../src/ca/serial.js';
import { makeWorld } from '../helpers/world.js';
import { tempDir } from '../helpers/tmp.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startFront } from '../helpers/front.js';
import { DAY_MS } from '../../src/clock.js';
import { startFirefoxWorld } from './firefox.js';

/**
 * The manual's renewal in a real Firefox ESR, following only what the pages tell a Firefox user:
 * 取得する → 開始する → こちら / 確認する → import in Firefox's certificate manager → the page says
 * Firefox keeps the old certificate and which one to delete (serial and expiry, as the certificate
 * manager shows them) → the user finds that row among two of the same name, deletes it, restarts
 * Firefox → the new certificate is in use. Firefox's store holds both certificates on the way.
 */

// Firefox checks certificate dates against the real clock: the installation is made "now".
const realNow = Date.now();
const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0' }, now: new Date(realNow).toISOString() });
const deps = await w.runtime.certificateDeps();
const tenancy = { db: deps.db, clock: w.clock };
const PASSWORD = 'correct horse battery';
await addTenant(tenancy, { code: 'T0001', name: '山田クリニック' }, 'test');
await addInstitution(tenancy, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'test');
await addUser(tenancy, { tenantCode: 'T0001', loginId: 'solo', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
const front = await startFront(w);
const files = tempDir('kenshin-e2e-firefox-');
const screenshots = process.env.KENSHIN_SCREENSHOTS_DIR; // `npm run screenshots` sets it; tests never write to docs/

async function shot(page: Page, name: string) {
  if (screenshots) await page.screenshot({ path: path.join(screenshots, `${name}.png`) as `${string}.png`, fullPage: true });
}

const text = (page: Page, selector: string) => page.$eval(selector, (e) => (e as HTMLElement).innerText);

async function click(page: Page, selector: string) {
  await Promise.all([page.waitForNavigation({ timeout: 30_000 }), page.click(selector)]);
}

async function logIn(page: Page) {
  await page.goto(front.url);
  await page.type('#loginId', 'solo');
  await page.type('#password', PASSWORD);
  await click(page, '#login-submit');
}

test('Firefox ESR: the whole renewal, both certificates in its store, until the new one is in use', async (t) => {
  const r = await issueCertificate(deps, {
    tenantCode: 'T0001',
    keyType: 'rsa2048',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(realNow - 1035 * DAY_MS), notAfter: new Date(realNow + 60 * DAY_MS) },
    actor: 'test',
  });
  const oldFile = path.join(files, 'old.p12');
  fs.writeFileSync(oldFile, r.pkcs12);
  const ff = await startFirefoxWorld({ rootPem: w.runtime.paths.rootCert, certificates: [{ file: oldFile, password: r.password }] });
  t.after(() => ff.close());

  let page = await ff.page();
  await logIn(page);
  // One 健診機関 and 60 days left: straight to the check screen.
  assert.match(page.url(), /\/renewal\/check$/);
  assert.match(await text(page, '#certificate'), new RegExp(displaySerial(r.serial)));
  await click(page, '#renewal-get');
  await click(page, '#renewal-start');
  assert.match(page.url(), /\/renewal\/package$/);
  // The Firefox steps come first, and no advice meant for Windows.
  assert.match((await page.$eval('#steps-firefox', (e) => e.className)) ?? '', /yours/);
  assert.match(await text(page, '#backup-line'), /証明書マネージャーからインポート/);
  assert.doesNotMatch(await text(page, '#backup-line'), /ダブルクリックで実行/);

  // 「こちら」: the download, fetched by Firefox itself (its TLS, its session).
  const href = await page.$eval('#download-p12', (a) => (a as HTMLAnchorElement).href);
  const b64 = await page.evaluate(async (u: string) => {
    const bytes = new Uint8Array(await (await fetch(u)).arrayBuffer());
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }, href);
  const newFile = path.join(files, 'new.p12');
  fs.writeFileSync(newFile, Buffer.from(b64, 'base64'));
  // 「確認する」 shows the password.
  await click(page, '#reveal-password');
  const password = (await text(page, '#p12-password')).trim();
  assert.match(password, /^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/);
  await shot(page, 'firefox-07-save');

  // What the page says: import it in Firefox's certificate manager.
  await ff.importP12(newFile, password);
  const rows = await ff.yourCertificates();
  assert.equal(rows.length, 2, 'both certificates are in Firefox\'s store');
  assert.equal(rows[0]!.name, rows[1]!.name, 'and they are listed under the same name');

  // Restarted, as every browser is told: Firefox still presents the old certificate. (The server's
  // clock follows the real one, which has moved on by the time a user has restarted.)
  w.clock.advance(60_000);
  await ff.restart();
  page = await ff.page();
  await logIn(page);
  assert.match(page.url(), /\/home$/, 'already renewed: no check screen');
  const notice = await text(page, '#not-in-use');
  assert.match(notice, /ログインし直した後も、更新前の証明書で接続しています。/, 'the page sees the advice did not work');
  assert.match(notice, /Firefox は同じ名前の証明書が2つあると/);
  await shot(page, 'firefox-08-home-still-old');

  // Which one to delete, in the words and formats of Firefox's certificate manager (en-US here).
  await page.goto(front.url + 'home?lang=en');
  const en = await text(page, '#not-in-use');
  const m = /serial number ([0-9A-F:]+), expiry ([A-Z][a-z]+ \d{1,2}, \d{4})\)/.exec(en);
  assert.ok(m, en);
  const [, serialToDelete, expiryToDelete] = m;
  const row = (await ff.yourCertificates()).find((c) => c.serial === serialToDelete);
  assert.ok(row, `the certificate manager lists serial ${serialToDelete}: ${JSON.stringify(rows)}`);
  assert.equal(row.expires, expiryToDelete, 'and shows the same expiry the page names');
  await page.goto(front.url + 'home?lang=ja');

  // 「削除...」 on that row, then restart Firefox: the new certificate is in use.
  await ff.deleteBySerial(serialToDelete!);
  const left = await ff.yourCertificates();
  assert.equal(left.length, 1);
  await ff.restart();
  page = await ff.page();
  await logIn(page);
  assert.match(await text(page, '#taken-up'), /新しい証明書で接続しています/);
  assert.equal((await page.$('#not-in-use')), null);
  const renewal = await deps.db.selectFrom('renewals').selectAll().where('predecessor_id', '=', r.row.id).executeTakeFirstOrThrow();
  const successor = await deps.db.selectFrom('certificates').selectAll().where('id', '=', renewal.successor_id).executeTakeFirstOrThrow();
  assert.ok(renewal.taken_up_at);
  assert.equal(left[0]!.serial, displaySerial(successor.serial), 'the one left is the new certificate');
  await shot(page, 'firefox-09-home-new');
});
