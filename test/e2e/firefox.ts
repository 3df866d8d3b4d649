import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { nss } from './browser.js';

/**
 * A real Firefox ESR (Debian's firefox-esr) with its real NSS store in its own profile, driven over
 * WebDriver BiDi by puppeteer-core 24 (the last line that runs on Node 20; no geckodriver, no
 * browser download). Everything the user does happens in Firefox: its TLS stack checks our server
 * certificate against the root trusted in the profile and presents a certificate from the profile's
 * store; the certificate manager's own page and component do the import and the deletion.
 *
 * Not real: the certificate picker. Headless Firefox cannot show its "User Identification Request"
 * dialog and would wait for it, so the profile says "Select Automatically" — which is exactly the
 * setting under which Firefox keeps presenting the first-imported of two same-named certificates.
 * See docs/firefox-testing.md.
 */

const FIREFOX = '/usr/bin/firefox-esr';
const TIMEOUT_MS = 30_000;

export interface CertManagerRow {
  name: string;
  serial: string;
  expires: string;
}

export interface FirefoxWorld {
  profile: string;
  /** A new page (tab) in the running Firefox. */
  page(): Promise<Page>;
  /** The rows of 証明書マネージャー → あなたの証明書, as its columns show them. */
  yourCertificates(): Promise<CertManagerRow[]>;
  /** 「インポート...」: what the certificate manager's import does, with the password the user types. */
  importP12(file: string, password: string): Promise<void>;
  /** 「削除...」 on the row with this serial (as the certificate manager shows it). */
  deleteBySerial(serial: string): Promise<void>;
  /** Quits Firefox and starts it again on the same profile (what "close all windows and restart" is). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export function firefoxAvailable(): boolean {
  return fs.existsSync(FIREFOX);
}

/** A profile with the root trusted for servers and the given certificates imported, in that order. */
export async function startFirefoxWorld(opts: { rootPem: string; certificates: { file: string; password: string }[] }): Promise<FirefoxWorld> {
  if (!firefoxAvailable()) throw new Error(`no browser at ${FIREFOX} (Debian: apt-get install firefox-esr)`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-firefox-'));
  const profile = path.join(root, 'profile');
  fs.mkdirSync(profile);
  const db = `sql:${profile}`;
  nss('certutil', ['-N', '-d', db, '--empty-password']);
  nss('certutil', ['-A', '-d', db, '-n', 'Kenshin Test Root', '-t', 'C,,', '-i', opts.rootPem]);
  for (const c of opts.certificates) nss('pk12util', ['-d', db, '-i', c.file, '-W', c.password]);

  let browser: Browser | undefined;
  const launch = async () => {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      userDataDir: profile,
      // The certificate manager is a privileged page; this lets the test open it in a tab.
      args: ['--remote-allow-system-access'],
      // Dates in the certificate manager as a clinic in Japan sees them.
      env: { ...process.env, TZ: 'Asia/Tokyo' },
      extraPrefsFirefox: {
        'security.default_personal_cert': 'Select Automatically',
        // No traffic to outside hosts.
        'network.captive-portal-service.enabled': false,
        'app.update.enabled': false,
        'browser.safebrowsing.malware.enabled': false,
        'browser.safebrowsing.phishing.enabled': false,
      },
      timeout: TIMEOUT_MS,
      protocolTimeout: TIMEOUT_MS,
    });
  };
  await launch();

  /** A tab with the certificate manager open and its tree filled in. */
  const openCertManager = async () => {
    // The wait starts in the tab's about:blank, which the navigation replaces: puppeteer over BiDi
    // may then end it with "Waiting failed" instead of carrying it over, and on a loaded box the
    // same tab kept failing so until the deadline (CI, twice). Each attempt is a fresh tab.
    const deadline = Date.now() + 2 * TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      const page = await browser!.newPage();
      try {
        // It never fires load over BiDi: start it, then wait for its tree to be there.
        page.goto('chrome://pippki/content/certManager.xhtml').catch(() => undefined);
        await page.waitForFunction(() => Boolean((document.getElementById('user-tree') as unknown as { view?: unknown } | null)?.view), { timeout: Math.max(1000, Math.min(TIMEOUT_MS, deadline - Date.now())), polling: 200 });
        return page;
      } catch (e) {
        await page.close().catch(() => undefined);
        if (Date.now() >= deadline) {
          const cause = (e as Error).cause as Error | undefined;
          throw new Error(`the certificate manager did not open after ${attempt} attempts: ${(e as Error).message}${cause ? ` (${cause.message ?? String(cause)})` : ''}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  const certManager = async <T>(fn: string, arg?: unknown): Promise<T> => {
    const page = await openCertManager();
    try {
      return (await page.evaluate(`(${fn})(${JSON.stringify(arg ?? null)})`)) as T;
    } finally {
      await page.close().catch(() => undefined);
    }
  };

  return {
    profile,
    page: () => browser!.newPage(),
    yourCertificates: () =>
      certManager<CertManagerRow[]>(`() => {
        const tree = document.getElementById('user-tree');
        const col = (id) => tree.columns.getNamedColumn(id);
        const rows = [];
        for (let i = 0; i < tree.view.rowCount; i++) {
          const cell = (id) => tree.view.getCellText(i, col(id));
          // Token rows (the group headers) have no serial.
          if (cell('serialnumcol')) rows.push({ name: cell('certcol'), serial: cell('serialnumcol'), expires: cell('expiredcol') });
        }
        return rows;
      }`),
    importP12: async (file, password) => {
      const rc = await certManager<number>(`(a) => {
        const f = Components.classes['@mozilla.org/file/local;1'].createInstance(Components.interfaces.nsIFile);
        f.initWithPath(a.file);
        const db = Components.classes['@mozilla.org/security/x509certdb;1'].getService(Components.interfaces.nsIX509CertDB);
        return db.importPKCS12File(f, a.password);
      }`, { file, password });
      if (rc !== 0) throw new Error(`Firefox refused the .p12 (error ${rc}): wrong password or unreadable file`);
    },
    deleteBySerial: async (serial) => {
      const found = await certManager<boolean>(`(serial) => {
        const db = Components.classes['@mozilla.org/security/x509certdb;1'].getService(Components.interfaces.nsIX509CertDB);
        const c = db.getCerts().find((c) => c.serialNumber === serial);
        if (!c) return false;
        db.deleteCertificate(c);
        return true;
      }`, serial);
      if (!found) throw new Error(`no certificate with serial ${serial} in Firefox's store`);
    },
    restart: async () => {
      await browser?.close();
      await launch();
    },
    close: async () => {
      await browser?.close().catch(() => undefined);
      browser = undefined;
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
