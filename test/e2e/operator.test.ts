import { displaySerial, normaliseSerial } from '../../src/ca/serial.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { makeWorld } from '../helpers/world.js';
import { tempDir } from '../helpers/tmp.js';
import { addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { DAY_MS } from '../../src/clock.js';
import { startBrowserWorld } from './browser.js';

/**
 * The operator's side in a real Chromium with its NSS store: an operator creates a tenant, a 健診機関
 * and a user, issues a certificate and downloads it; the clinic's browser imports it and logs in.
 * Then a re-issue after expiry logs in, and a revocation is refused at the clinic's next request.
 */
const realNow = Date.now();
const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0' }, now: new Date(realNow).toISOString() });
const tenancy = { db: w.runtime.database.db, clock: w.clock };
await addTenant(tenancy, { code: 'OPERATORS', name: '運用者' }, 'test');
await addUser(tenancy, { tenantCode: 'OPERATORS', loginId: 'ops', password: 'operator password', role: 'operator' }, 'test');
const certDeps = await w.runtime.certificateDeps();
const opsCert = await issueCertificate(certDeps, { tenantCode: 'OPERATORS', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' });
const server = await startServer(w.config, { clock: w.clock });
w.onClose(() => server.close());
const origin = new URL(server.url).origin;
const issuerCn = /^CN=(.+)$/m.exec(new crypto.X509Certificate(fs.readFileSync(w.runtime.paths.issuingCert)).subject)?.[1] ?? assert.fail('no CN');
const files = tempDir('kenshin-e2e-ops-');

/** Issues (or re-issues) from the console and downloads the file: returns its path and password. */
async function issueFromConsole(op: Page, query: string, name: string): Promise<{ file: string; password: string; serial: string }> {
  await op.goto(`${server.url}admin/certificates/new?${query}`);
  await Promise.all([op.waitForURL('**/admin/certificates'), op.click('#issue-submit')]);
  const password = (await op.innerText('#issued-password')).trim();
  // The sheet shows the serial as browsers do ("0A:1B:…"); the database and URLs keep the stored form.
  const serial = normaliseSerial((await op.innerText('#delivery-sheet code')).trim())!;
  const [download] = await Promise.all([op.waitForEvent('download'), op.click('#delivery-download')]);
  const file = path.join(files, name);
  await download.saveAs(file);
  return { file, password, serial };
}

async function clinicLogin(page: Page, loginId: string, password: string) {
  await page.goto(server.url);
  await page.fill('#loginId', loginId);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL('**/home'), page.click('#login-submit')]);
}

test('operator: tenant, 健診機関, user, certificate → the clinic imports it and logs in; re-issue; revoke', async (t) => {
  const opsFile = path.join(files, 'ops.p12');
  fs.writeFileSync(opsFile, opsCert.pkcs12);
  const opsBrowser = await startBrowserWorld({ origin, issuerCn });
  t.after(() => opsBrowser.close());
  opsBrowser.trustCa(w.runtime.paths.rootCert, 'Kenshin Root');
  opsBrowser.importP12(opsFile, opsCert.password);
  const op = await (await opsBrowser.newContext({ acceptDownloads: true })).newPage();
  await op.goto(server.url);
  await op.fill('#loginId', 'ops');
  await op.fill('#password', 'operator password');
  await Promise.all([op.waitForURL('**/admin'), op.click('#login-submit')]);

  await op.goto(server.url + 'admin/tenants');
  await op.fill('#tenant-form input[name=code]', 'T0200');
  await op.fill('#tenant-form input[name=name]', '青空クリニック');
  await op.fill('#tenant-form input[name=email]', 'office@aozora.example.jp');
  await Promise.all([op.waitForURL('**/admin/tenants/T0200'), op.click('#tenant-form button')]);
  await op.fill('form[action$="/institutions"] input[name=number]', '1388888888');
  await op.fill('form[action$="/institutions"] input[name=name]', '青空クリニック本院');
  await Promise.all([op.waitForURL('**/admin/tenants/T0200'), op.click('form[action$="/institutions"] button')]);
  await op.fill('#user-form input[name=login]', 'aozora');
  await op.fill('#user-form input[name=institutions]', '1388888888');
  await Promise.all([op.waitForResponse((r) => r.url().endsWith('/admin/tenants/T0200/users')), op.click('#user-form button')]);
  const userPassword = /aozora の新しいパスワード: (\S+) /.exec(await op.innerText('#form-notice'))?.[1];
  assert.ok(userPassword, 'the new user password is shown once');

  const first = await issueFromConsole(op, 'tenant=T0200', 't0200.p12');

  // The clinic's PC: its own browser and store, the file imported with the password from the slip.
  const clinic = await startBrowserWorld({ origin, issuerCn });
  t.after(() => clinic.close());
  clinic.trustCa(w.runtime.paths.rootCert, 'Kenshin Root');
  clinic.importP12(first.file, first.password);
  const page = await (await clinic.newContext()).newPage();
  await clinicLogin(page, 'aozora', userPassword);
  assert.match(await page.innerText('#home-institution'), /青空クリニック本院/);
  assert.match(await page.innerText('#certificate'), new RegExp(displaySerial(first.serial)));

  // Re-issue after expiry: an old certificate of the tenant that expired (Chromium never offers it).
  const expired = await issueCertificate(certDeps, {
    tenantCode: 'T0200',
    keyType: 'p256',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(realNow - 1100 * DAY_MS), notAfter: new Date(realNow - 5 * DAY_MS) },
    actor: 'test',
  });
  const second = await issueFromConsole(op, `reissue=${expired.serial}`, 't0200-reissued.p12');
  clinic.importP12(second.file, second.password);
  await clinic.restart();
  const after = await (await clinic.newContext()).newPage();
  await clinicLogin(after, 'aozora', userPassword);
  assert.match(await after.innerText('#certificate'), new RegExp(displaySerial(second.serial)), 'the browser now presents the re-issued certificate');

  // Revocation from the console: the clinic's next request is refused.
  await op.goto(`${server.url}admin/certificates/${second.serial}`);
  await op.selectOption('#revoke-form select[name=reason]', 'keyCompromise');
  await Promise.all([op.waitForURL(`**/admin/certificates/${second.serial}`), op.click('#revoke-submit')]);
  const refused = await (await clinic.newContext()).newPage();
  const res = await refused.goto(server.url + 'home');
  assert.equal(res?.status(), 403);
  assert.equal(await refused.getAttribute('#refusal', 'data-reason'), 'revoked');
});
