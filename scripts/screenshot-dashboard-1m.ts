/**
 * docs/screenshots/24-admin-dashboard-1m.png (and -sorted-by-tenant): the operator dashboard of an
 * installation filled by the database benchmark (a million certificates, 100,000 tenants), in the
 * real Chromium, with how long each page took to arrive.
 *
 *   node --import tsx bench/database.ts --dialects sqlite --keep     # prints the kept directory
 *   node --import tsx scripts/screenshot-dashboard-1m.ts DIR
 *
 * It adds an operator (OPERATORS tenant, user `ops`, a certificate) to that installation if it has
 * none. The fill dates its certificates from when it ran, so take the picture soon after.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/web/server.js';
import { addTenant, addUser } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';

const OUT = path.resolve(import.meta.dirname, '../docs/screenshots');
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];
const PASSWORD = 'operator password';

async function main() {
  const dir = process.argv[2];
  if (!dir || !fs.existsSync(path.join(dir, 'kenshin.sqlite'))) throw new Error('usage: screenshot-dashboard-1m.ts DIR (a data directory kept by bench/database.ts --keep)');
  const config = loadConfig({ dataDir: dir }, { ...process.env, KENSHIN_CA_PASSPHRASE: 'bench-passphrase', KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_DATABASE_URL: '', KENSHIN_LOG_LEVEL: 'warn', KENSHIN_METRICS_LISTEN: 'off', KENSHIN_MINT_WORKERS: '1' });
  const server = await startServer(config);
  const origin = server.url.replace(/\/$/, '');
  const rt = server.runtime;
  const tenancy = { db: rt.database.db, clock: rt.clock };
  if (!(await rt.database.db.selectFrom('tenants').select('id').where('code', '=', 'OPERATORS').executeTakeFirst())) {
    await addTenant(tenancy, { code: 'OPERATORS', name: '運用者' }, 'screenshots');
    await addUser(tenancy, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'screenshots');
  }
  const opsCert = await issueCertificate(await rt.certificateDeps(), { tenantCode: 'OPERATORS', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'screenshots' });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 }, locale: 'ja-JP', ignoreHTTPSErrors: true, clientCertificates: [{ origin, pfx: Buffer.from(opsCert.pkcs12), passphrase: opsCert.password }] });
    const page = await ctx.newPage();
    await page.goto(origin + '/');
    await page.fill('#loginId', 'ops');
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL('**/admin'), page.click('#login-submit')]);
    fs.mkdirSync(OUT, { recursive: true });
    for (const [name, url] of [['24-admin-dashboard-1m', '/admin'], ['25-admin-dashboard-1m-by-tenant', '/admin?sort=tenant']] as const) {
      const t0 = performance.now();
      const r = await page.goto(origin + url);
      const ms = performance.now() - t0;
      if (r?.status() !== 200) throw new Error(`${url}: HTTP ${r?.status()}`);
      await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
      console.log(`docs/screenshots/${name}.png  (${url} arrived in ${ms.toFixed(0)} ms)`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
