/**
 * Bulk onboarding: `onboard` on 1,000 CSV rows (tenants, 健診機関, users, a certificate, its .p12 on
 * disk, the PDF of delivery sheets and password slips, the result CSV), against the plain issuance
 * rate (key + certificate + .p12 + database row, the figure `npm run bench` reports as issuance)
 * measured in the same run on the same pool of mint workers. Target: ≥ 0.8× that rate.
 *
 *   npm run bench -- --only onboard [--quick] [--keys p256,rsa2048]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { issueCertificate } from '../src/certificates/service.js';
import { readRows } from '../src/onboarding/rows.js';
import { onboard } from '../src/onboarding/onboard.js';
import { machine, parseArgs, round, throughput, writeResult } from './lib.js';
import { benchInstallation } from './installation.js';

const args = parseArgs(process.argv.slice(2));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-onboard-'));
const ROWS = args.quick ? 60 : 1000;

/** One PC per row: 4 PCs per tenant (2 健診機関 × 2 PCs), an admin and a user per tenant. */
function csv(prefix: string, n: number): string {
  const lines = ['tenant_code,tenant_name,contact_email,institution_number,institution_name,users,label'];
  for (let i = 0; i < n; i++) {
    const t = Math.floor(i / 4);
    const inst = Math.floor(i / 2) % 2;
    lines.push([`${prefix}${String(t).padStart(5, '0')}`, `ベンチ医院${t}`, `info${t}@bench.example.jp`, `${prefix === 'P' ? '13' : '27'}${String(t).padStart(5, '0')}${String(inst).padStart(3, '0')}`, `健診センター${t}-${inst}`, `${prefix.toLowerCase()}${t}-admin:管理者;${prefix.toLowerCase()}${t}-user:一般ユーザ`, `PC${i % 2}`].join(','));
  }
  return lines.join('\n') + '\n';
}

async function main() {
  const workers = os.availableParallelism();
  // The same pool `kenshin onboard` starts: one worker per core, no pre-generated keys.
  const { rt, pool } = await benchInstallation(dir, { code: 'ISSUE', name: '発行レート' }, { workers, keyPoolSize: 0 });
  const deps = { ...(await rt.certificateDeps(pool)), vault: rt.packageVault() };
  const results: Record<string, unknown> = { machine: machine(), rows: ROWS, workers, date: new Date().toISOString() };

  for (const keyType of args.keys) {
    const once = async () => void (await issueCertificate(deps, { tenantCode: 'ISSUE', keyType, profile: 'compatible', validity: { kind: 'default' }, actor: 'bench' }));
    await once();
    // Plain issuance at the parallelism onboard uses (two in flight per worker).
    const issue = await throughput(workers * 2, args.seconds, once);

    const prefix = keyType === 'p256' ? 'P' : 'R';
    const file = path.join(dir, `${keyType}.csv`);
    fs.writeFileSync(file, csv(prefix, ROWS));
    const out = path.join(dir, `out-${keyType}`);
    const t0 = performance.now();
    const { rows, errors } = readRows(file, fs.readFileSync(file, 'utf8'));
    const report = await onboard(deps, rows, errors, {
      file,
      outDir: out,
      keyType,
      profile: 'compatible',
      dryRun: false,
      continueOnError: false,
      actor: 'bench',
      portalUrl: 'https://kenshin.example.jp/',
      operatorContact: '運用窓口 03-0000-0000',
      concurrency: workers * 2,
    });
    const t1 = performance.now();
    const seconds = (t1 - t0) / 1000;
    if (report.issued !== ROWS) throw new Error(`onboard issued ${report.issued} of ${ROWS}`);
    const rate = ROWS / seconds;
    const pdfBytes = fs.statSync(path.join(out, 'delivery-sheets.pdf')).size;
    const entry = {
      rowsPerSecond: round(rate, 1),
      seconds: round(seconds, 1),
      users: report.usersCreated.length,
      steps: report.seconds,
      certificatesPerSecond: round(ROWS / (report.seconds.certificates ?? seconds), 1),
      pages: report.files.pages,
      pdfMegabytes: round(pdfBytes / 1024 / 1024, 1),
      issuancePerSecond: round(issue.perSecond, 1),
      ratioVsIssuance: round(rate / issue.perSecond),
      met: rate / issue.perSecond >= 0.8,
    };
    results[keyType] = entry;
    console.log(`onboard ${keyType}: ${ROWS} rows in ${entry.seconds} s = ${entry.rowsPerSecond} rows/s (PDF ${entry.pages} pages, ${entry.users} users) vs issuance ${entry.issuancePerSecond} /s = ${entry.ratioVsIssuance}×; steps ${JSON.stringify(report.seconds)}`);
  }
  await pool.close();
  await rt.close();
  console.log(`written ${writeResult('onboard', args.quick, results)}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(dir, { recursive: true, force: true }));
