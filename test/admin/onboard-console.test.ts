import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld, loginAs, PASSWORD, type PortalWorld } from '../helpers/portal-world.js';
import type { TlsClient, Response } from '../helpers/client.js';
import { addTenant, addUser } from '../../src/tenancy/service.js';
import { run } from '../helpers/openssl.js';
import { slips } from '../helpers/delivery-sheets.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Bulk onboarding from the console, as an operator does it in a browser: upload a CSV (Excel's
 * Shift_JIS or UTF-8), read the preview with every problem by line and column, start, watch the
 * progress page, download the PDF, the .p12 files as one ZIP and the result CSV, then delete them.
 */

const HEADER = 'tenant_code,tenant_name,contact_email,institution_number,institution_name,users,label';
function rows(n: number, opts: { badLine?: number } = {}): string {
  const lines = [HEADER];
  for (let i = 0; i < n; i++) {
    const line = lines.length + 1;
    const number = `14${String(i).padStart(8, '0')}`;
    lines.push([`C${String(Math.floor(i / 2)).padStart(3, '0')}`, `コンソール医院${Math.floor(i / 2)}`, `c${Math.floor(i / 2)}@example.jp`, line === opts.badLine ? '14-123' : number, `健診所${i}`, `c${Math.floor(i / 2)}-admin:管理者`, ''].join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** What a browser sends for the upload form: multipart/form-data with the hidden fields first. */
function multipart(fields: Record<string, string>, file: { name: string; bytes: Buffer }): { raw: Buffer; headers: Record<string, string> } {
  const boundary = '----kenshinTestBoundary7MA4YWxkTrZu0gW';
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="csv"; filename="${file.name}"\r\nContent-Type: text/csv\r\n\r\n`), file.bytes, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { raw: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

const csrfOf = (page: Response) => /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;

async function upload(c: TlsClient, name: string, bytes: Buffer, extra: Record<string, string> = {}) {
  const form = await c.get('/admin/onboard');
  assert.equal(form.status, 200);
  const body = multipart({ _csrf: csrfOf(form), key: 'p256', profile: 'compatible', ...extra }, { name, bytes });
  return c.request('POST', '/admin/onboard', body);
}

/** Polls the job page as its meta refresh does, until the run is no longer in progress. */
async function untilSettled(c: TlsClient, url: string): Promise<{ page: Response; sawProgress: boolean }> {
  let sawProgress = false;
  for (let i = 0; i < 600; i++) {
    const page = await c.get(url);
    if (/http-equiv="refresh"/.test(page.text)) {
      sawProgress = true;
      assert.match(page.text, /<progress max="\d+" value="\d+">/);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    return { page, sawProgress };
  }
  throw new Error('the run did not finish');
}

for (const dialect of testDialects()) {
  describe(`bulk onboarding in the console on ${dialect}`, async () => {
    const w: PortalWorld = await makePortalWorld(dialect);
    const db = w.runtime.database.db;
    await addTenant({ db, clock: w.clock }, { code: 'OPERATORS', name: '運用者' }, 'test');
    await addUser({ db, clock: w.clock }, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
    const opsCert = await w.cert(700, { tenant: 'OPERATORS' });
    const tenantsBefore = async () => (await db.selectFrom('tenants').select('code').execute()).length;

    test('a Shift_JIS CSV with a bad row: the preview names line and column, nothing is created, it cannot start as it is', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const before = await tenantsBefore();
      const certsBefore = (await db.selectFrom('certificates').select('id').execute()).length;
      // Excel on a Japanese Windows writes "CSV (comma delimited)" in Shift_JIS.
      const sjis = spawnSync('iconv', ['-f', 'UTF-8', '-t', 'SHIFT_JIS'], { input: rows(6, { badLine: 4 }) }).stdout;
      assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(sjis), 'really not UTF-8');
      const res = await upload(c, '一括.csv', sjis);
      assert.equal(res.status, 303);
      const page = await c.follow(res);
      assert.equal(page.status, 200);
      assert.match(page.text, /コンソール医院0/, 'Shift_JIS read as Japanese, not mojibake');
      assert.match(page.text, /id="onboard-problems"/);
      assert.match(page.text, /<tr><td>4<\/td><td>4 \(institution_number\)<\/td>/);
      assert.match(page.text, /id="onboard-sample"/);
      assert.match(page.text, /id="onboard-counts">5 行: 証明書 5 枚を発行/, 'the bad row is not counted');
      assert.equal(await tenantsBefore(), before, 'a preview creates nothing');
      const started = await c.submit(page, page.text.match(/action="(\/admin\/onboard\/[0-9a-f]+\/start)"/)![1]!);
      assert.equal(started.status, 409);
      assert.match(started.text, /rows have problems/);
      assert.equal((await db.selectFrom('certificates').select('id').execute()).length, certsBefore);
      const audit = await db.selectFrom('audit_events').select('action').where('action', 'like', 'onboarding.%').execute();
      assert.ok(audit.some((a) => a.action === 'onboarding.previewed'));
      assert.ok(!audit.some((a) => a.action === 'onboarding.started'));
    });

    test('a good CSV: start, progress, PDF + ZIP of .p12 that open with the slips’ passwords, result CSV, then delete', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const preview = await c.follow(await upload(c, 'batch.csv', Buffer.from('\ufeff' + rows(24))));
      assert.match(preview.text, /24 行: 証明書 24 枚を発行、契約先 12・健診機関 24・ユーザー 12 を新規登録/);
      const jobUrl = /action="(\/admin\/onboard\/[0-9a-f]+)\/start"/.exec(preview.text)![1]!;
      const started = await c.submit(preview, `${jobUrl}/start`);
      assert.equal(started.status, 303, started.text.replace(/[\s\S]*<main>/, "").slice(0, 1500));
      const { page } = await untilSettled(c, jobUrl);
      assert.match(page.text, /id="onboard-done"/, page.text.slice(0, 3000));
      assert.match(page.text, /証明書 24 枚を発行しました/);

      const dir = tempDir('onboard-console-');
      const pdf = await c.get(page.text.match(/href="([^"]+\.pdf)" id="onboard-pdf"/)![1]!);
      assert.equal(pdf.headers['content-type'], 'application/pdf');
      assert.equal(pdf.headers['cache-control'], 'no-store');
      fs.writeFileSync(path.join(dir, 'sheets.pdf'), pdf.body);
      assert.match(run('pdfinfo', [path.join(dir, 'sheets.pdf')]), /Pages:\s+48\n/);
      const zip = await c.get(`${jobUrl}/certificates.zip`);
      assert.equal(zip.status, 200);
      assert.equal(zip.headers['content-type'], 'application/zip');
      fs.writeFileSync(path.join(dir, 'certs.zip'), zip.body);
      run('unzip', ['-q', path.join(dir, 'certs.zip'), '-d', path.join(dir, 'p12')]);
      const files = fs.readdirSync(path.join(dir, 'p12'));
      assert.equal(files.length, 24);
      const { p12 } = slips(path.join(dir, 'sheets.pdf'));
      for (const f of files) {
        const pw = p12.get(f);
        assert.ok(pw, `${f} has its slip`);
        assert.match(run('openssl', ['pkcs12', '-in', path.join(dir, 'p12', f), '-passin', `pass:${pw}`, '-nokeys', '-clcerts', '-legacy']), new RegExp(`CN\\s*=\\s*${f.split('_')[0]}`));
      }
      const result = await c.get(page.text.match(/href="([^"]+\.csv)" id="onboard-csv"/)![1]!);
      assert.equal(result.text.trim().split('\n').length, 25);

      // The files are the only copy of the passwords: deleted on request, audited, gone from disk.
      const jobId = jobUrl.split('/').pop()!;
      const onDisk = path.join(w.runtime.config.dataDir, 'onboarding', jobId);
      assert.ok(fs.existsSync(onDisk));
      assert.equal((fs.statSync(onDisk).mode & 0o077), 0, 'owner only');
      const deleted = await c.follow(await c.submit(page, `${jobUrl}/delete-files`));
      assert.match(deleted.text, /id="onboard-files-deleted"/);
      assert.ok(!fs.existsSync(onDisk));
      assert.equal((await c.get(`${jobUrl}/certificates.zip`)).status, 404);
      const actions = (await db.selectFrom('audit_events').select('action').where('target', '=', `onboarding:${jobId}`).orderBy('id').execute()).map((a) => a.action);
      assert.deepEqual(actions, ['onboarding.previewed', 'onboarding.started', 'onboarding.downloaded', 'onboarding.downloaded', 'onboarding.downloaded', 'onboarding.files_deleted']);
    });

    test('a run cut short by a restart shows as interrupted and resumes without issuing twice', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const preview = await c.follow(await upload(c, 'again.csv', Buffer.from(rows(24).replace(/C0/g, 'D0').replace(/14(\d{8})/g, '15$1'))));
      const jobUrl = /action="(\/admin\/onboard\/[0-9a-f]+)\/start"/.exec(preview.text)![1]!;
      // What a process killed mid-run leaves: the job "running" with no process behind it.
      await db.updateTable('onboarding_jobs').set({ status: 'running' }).where('id', '=', jobUrl.split('/').pop()!).execute();
      const interrupted = await c.get(jobUrl);
      assert.match(interrupted.text, /id="onboard-interrupted"/);
      const resumed = await c.submit(interrupted, `${jobUrl}/start`);
      assert.equal(resumed.status, 303);
      const { page } = await untilSettled(c, jobUrl);
      assert.match(page.text, /id="onboard-done"/);
      const certs = await db.selectFrom('certificates').innerJoin('tenants', 'tenants.id', 'certificates.tenant_id').select('certificates.id').where('tenants.code', 'like', 'D0%').execute();
      assert.equal(certs.length, 24);
    });

    test('only operators, only with the CSRF token, only CSV text', async () => {
      const clinic = w.client(await w.cert(300));
      await loginAs(clinic, 'solo');
      assert.equal((await clinic.get('/admin/onboard')).status, 403);
      const forged = multipart({ _csrf: 'x' }, { name: 'a.csv', bytes: Buffer.from(rows(2)) });
      assert.equal((await clinic.request('POST', '/admin/onboard', forged)).status, 403);

      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const before = (await db.selectFrom('onboarding_jobs').select('id').execute()).length;
      assert.equal((await c.request('POST', '/admin/onboard', forged)).status, 403, 'a wrong CSRF token');
      const binary = await upload(c, 'photo.csv', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x80, 0x80]));
      assert.equal(binary.status, 400);
      assert.match(binary.text, /neither UTF-8 nor Shift_JIS/);
      const noHeader = await upload(c, 'x.csv', Buffer.from('a,b,c\n1,2,3\n'));
      assert.equal(noHeader.status, 303, 'a readable file with the wrong columns gets a preview listing what is missing');
      assert.match((await c.follow(noHeader)).text, /the header has no &quot;tenant_code&quot; column/);
      assert.equal((await c.get('/admin/onboard/ffffffffffffffffffffffff')).status, 404);
      assert.equal((await c.get('/admin/onboard/..%2F..%2Fetc')).status, 404);
      assert.equal((await db.selectFrom('onboarding_jobs').select('id').execute()).length, before + 1);
    });
  });
}
