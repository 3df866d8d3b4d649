import { displaySerial } from '../../src/ca/serial.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { BrowserContext, Page } from 'playwright-core';
import { makeWorld } from '../helpers/world.js';
import { tempDir } from '../helpers/tmp.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, type IssueResult } from '../../src/certificates/service.js';
import { buildSubject } from '../../src/ca/subject.js';
import { startServer } from '../../src/web/server.js';
import { DAY_MS } from '../../src/clock.js';
import { startBrowserWorld, type BrowserWorld } from './browser.js';

/**
 * The HTTPS service in a real Chromium: its own TLS stack and NSS store, with our root trusted there
 * and the .p12 imported by pk12util (what a user's import amounts to). One installation and server
 * for the file; each test gets its own browser world (HOME, NSS DB, profile).
 */

// Chromium checks validity against the real clock, so the whole installation (CA, server
// certificate, the server's clock) is made "now" rather than at the suite's fixed date.
const realNow = Date.now();
const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0' }, now: new Date(realNow).toISOString() });
const deps = await w.runtime.certificateDeps();
const tenant = await addTenant({ db: deps.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
const server = await startServer(w.config, { clock: w.clock });
w.onClose(() => server.close());
const origin = new URL(server.url).origin;
const rootPem = w.runtime.paths.rootCert;
// The auto-select filter names the issuing CA, as the deployment's policy would.
const issuerCn = /^CN=(.+)$/m.exec(new crypto.X509Certificate(fs.readFileSync(w.runtime.paths.issuingCert)).subject)?.[1] ?? assert.fail('issuing CA without CN');
const files = tempDir('kenshin-e2e-p12-');

/** Issues a certificate for T0001 valid from an hour ago for `days`, and writes its .p12 to a file. */
async function issue(days: number): Promise<IssueResult & { file: string }> {
  const r = await issueCertificate(deps, {
    tenantCode: 'T0001',
    keyType: 'p256',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(realNow - 3600_000), notAfter: new Date(realNow + days * DAY_MS) },
    actor: 'test',
  });
  const file = path.join(files, `${r.serial}.p12`);
  fs.writeFileSync(file, r.pkcs12);
  return { ...r, file };
}

const current = await issue(30);
const renewed = await issue(3 * 365); // same subject, later expiry

async function world(t: TestContext): Promise<BrowserWorld> {
  const bw = await startBrowserWorld({ origin, issuerCn });
  t.after(() => bw.close());
  return bw;
}

/** Loads `/` in a new page of ctx: the status and the page text (which names the presented certificate). */
async function open(ctx: BrowserContext): Promise<{ status: number; text: string; page: Page }> {
  const page = await ctx.newPage();
  const res = await page.goto(server.url);
  assert.ok(res, 'no response');
  return { status: res.status(), text: await page.innerText('body'), page };
}

const shows = (text: string, serial: string) => text.includes(displaySerial(serial));
const sameSerial = (a: string | undefined, b: string) => a !== undefined && a.toLowerCase().replace(/^0+/, '') === b.toLowerCase().replace(/^0+/, '');

// The listener is an https server; Fastify's type for it says http.
const listener = server.app.server as unknown as HttpsServer;

interface Handshake {
  socket: TLSSocket;
  resumed: boolean;
  serial: string | undefined;
}

/** Every TLS connection the server completes while the test runs: how it was set up, and a handle to drop it. */
function watchHandshakes(t: TestContext): Handshake[] {
  const seen: Handshake[] = [];
  const onConnection = (socket: TLSSocket) => seen.push({ socket, resumed: socket.isSessionReused(), serial: socket.getPeerCertificate().serialNumber });
  listener.on('secureConnection', onConnection);
  t.after(() => void listener.off('secureConnection', onConnection));
  return seen;
}

/** Makes the browser's next request need a full handshake: its connections closed, its session tickets useless. */
async function forceFullHandshake(connections: Handshake[]): Promise<void> {
  listener.setTicketKeys(crypto.randomBytes(48));
  // Wait for the close: Chromium then finds the socket dead before reusing it, instead of racing us.
  await Promise.all(connections.map(({ socket }) => (socket.closed ? undefined : new Promise((resolve) => socket.once('close', resolve).destroy()))));
}

const sha256 = (der: Buffer | Uint8Array) => crypto.createHash('sha256').update(der).digest('hex');
/** Of the first certificate in a PEM file. */
const pemFingerprint = (file: string) => sha256(new crypto.X509Certificate(fs.readFileSync(file)).raw);

const limits = { timeout: 90_000 }; // a hang (e.g. an auto-select rule that matches nothing) fails here, not in CI's global timeout

test('Chromium logs in over mTLS from its NSS store: the page shows the imported certificate', limits, async (t) => {
  const bw = await world(t);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  bw.importP12(current.file, current.password); // throws with pk12util's message if the password does not fit
  const ctx = await bw.newContext();
  const { status, text } = await open(ctx);
  assert.equal(status, 200);
  assert.ok(shows(text, current.serial), `serial ${current.serial} not on the page:\n${text}`);
  assert.ok(!shows(text, renewed.serial));
});

test('the server chain Chromium shows is verified up to our root in NSS (no certificate errors ignored)', limits, async (t) => {
  const bw = await world(t);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  bw.importP12(current.file, current.password);
  const ctx = await bw.newContext();
  const page = await ctx.newPage();
  // What the address bar's lock reports: Chromium's own verdict and the chain it built.
  const cdp = await ctx.newCDPSession(page);
  const secure = new Promise<{ securityState: string; certificateSecurityState?: { certificate: string[]; certificateNetworkError?: string } }>((resolve) => {
    cdp.on('Security.visibleSecurityStateChanged', (e) => {
      if (e.visibleSecurityState.certificateSecurityState) resolve(e.visibleSecurityState);
    });
  });
  await cdp.send('Security.enable');
  const res = await page.goto(server.url);
  assert.equal(res?.status(), 200);
  const state = await Promise.race([secure, delay(15_000, undefined, { ref: false }).then(() => assert.fail('Chromium reported no certificate security state'))]);
  assert.equal(state.securityState, 'secure');
  assert.equal(state.certificateSecurityState?.certificateNetworkError, undefined);
  const chain = (state.certificateSecurityState?.certificate ?? []).map((b64) => sha256(Buffer.from(b64, 'base64')));
  const { serverCert, issuingCert } = w.runtime.paths;
  assert.deepEqual(chain, [serverCert, issuingCert, rootPem].map(pemFingerprint), 'the chain is not our server certificate → issuing CA → root');

  // And the trust does come from NSS: a browser without our root refuses the same server.
  const untrusting = await world(t);
  const other = await (await untrusting.newContext()).newPage();
  await assert.rejects(other.goto(server.url), /ERR_CERT_AUTHORITY_INVALID/);
});

test('a renewed certificate (same subject, later expiry) is used by a new context; an open context keeps its choice', limits, async (t) => {
  const bw = await world(t);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  bw.importP12(current.file, current.password);
  const handshakes = watchHandshakes(t);
  const before = await bw.newContext();
  assert.ok(shows((await open(before)).text, current.serial));

  bw.importP12(renewed.file, renewed.password);
  // Not just a kept-alive socket or a resumed TLS session: a full handshake in the open context
  // still presents the first certificate, because Chromium remembers its choice per context.
  await forceFullHandshake(handshakes.splice(0));
  const again = await open(before);
  assert.equal(again.status, 200);
  assert.ok(shows(again.text, current.serial), 'the open context changed certificate without a restart');
  const full = handshakes.filter((h) => !h.resumed).map((h) => h.serial);
  assert.ok(full.length > 0 && full.every((serial) => sameSerial(serial, current.serial)), `full handshakes: ${JSON.stringify(full)}`);

  const fresh = await open(await bw.newContext());
  assert.equal(fresh.status, 200);
  assert.ok(shows(fresh.text, renewed.serial), `a new context did not pick the later-expiring certificate:\n${fresh.text}`);

  await bw.restart();
  const restarted = await open(await bw.newContext());
  assert.ok(shows(restarted.text, renewed.serial), 'after a browser restart');
});

test('a browser with no client certificate gets the 401 page', limits, async (t) => {
  const bw = await world(t);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  const { status, text } = await open(await bw.newContext());
  assert.equal(status, 401);
  assert.ok(!shows(text, current.serial) && !shows(text, renewed.serial));
});

test('a certificate from our CA that the database does not know gets the 403 page', limits, async (t) => {
  // Minted but never recorded: Chromium's filter (our issuing CA) still selects it.
  const minted = await deps.minter.mint({
    subjectDer: new Uint8Array(buildSubject({ tenantCode: tenant.code, tenantName: tenant.name }).toArrayBuffer()),
    displayName: tenant.name,
    keyType: 'p256',
    profile: 'compatible',
    notBefore: new Date(realNow - 3600_000),
    notAfter: new Date(realNow + 30 * DAY_MS),
  });
  const file = path.join(files, 'unrecorded.p12');
  fs.writeFileSync(file, minted.pkcs12);
  const bw = await world(t);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  bw.importP12(file, minted.password);
  const { status } = await open(await bw.newContext());
  assert.equal(status, 403);
});

test('harness: a wrong .p12 password is refused by pk12util; downloads and the clipboard work when asked for', limits, async (t) => {
  const bw = await world(t);
  assert.throws(() => bw.importP12(current.file, 'not-the-password'), /SEC_ERROR_BAD_PASSWORD/);
  bw.trustCa(rootPem, 'Kenshin Test Root CA');
  const ctx = await bw.newContext({ acceptDownloads: true, clipboard: true });
  const { page } = await open(ctx); // the 401 page: any page of our origin will do
  assert.equal(await page.evaluate(async () => (await navigator.clipboard.writeText('pw-1234'), navigator.clipboard.readText())), 'pw-1234');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.evaluate(() => {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob(['p12 bytes']));
      a.download = 'T0001.p12';
      document.body.append(a);
      a.click();
    }),
  ]);
  assert.equal(download.suggestedFilename(), 'T0001.p12');
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'p12 bytes');
});
