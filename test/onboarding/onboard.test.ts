import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { makeWorld, type World } from '../helpers/world.js';
import { testDialects } from '../helpers/databases.js';
import { kenshin, BIN } from '../helpers/cli.js';
import { childEnv } from '../helpers/child-env.js';
import { run } from '../helpers/openssl.js';
import { slips } from '../helpers/delivery-sheets.js';
import { hashPassword, hashPasswords, hashesBesideLogins, verifyPassword } from '../../src/identity/passwords.js';

/**
 * `kenshin onboard` on 200 rows, as an operator onboarding a region would run it: a bad row refuses
 * the whole file with nothing created; fixed, it gives 200 .p12 files that open with the passwords
 * on the slips of a 400-page PDF that poppler renders; killed half-way, the same command finishes
 * the job without issuing anything twice or losing a password.
 */

const HEADER = 'tenant_code,tenant_name,contact_email,institution_number,institution_name,users,label';

/** 200 PCs: 50 tenants, 2 健診機関 each, 2 PCs per 健診機関, an admin and a user per tenant. */
function csv(prefix: string, opts: { badLine?: number } = {}): string {
  const lines = [HEADER];
  for (let i = 0; i < 200; i++) {
    const t = Math.floor(i / 4);
    const inst = Math.floor(i / 2) % 2;
    const number = `${prefix === 'A' ? '13' : '27'}${String(t).padStart(4, '0')}${String(inst).padStart(4, '0')}`;
    const line = lines.length + 1;
    lines.push([`${prefix}${String(t).padStart(4, '0')}`, `"${prefix}クリニック${t}, 本院"`, `info${t}@clinic${t}.example.jp`, line === opts.badLine ? number.slice(1) : number, `健診センター${t}-${inst}`, `${prefix.toLowerCase()}${t}-admin:管理者;${prefix.toLowerCase()}${t}-user:user`, `受付PC${i % 2}`].join(','));
  }
  return lines.join('\n') + '\n';
}

async function assertDelivered(w: World, out: string, prefix: string) {
  const db = w.runtime.database.db;
  const files = fs.readdirSync(out).filter((f) => f.endsWith('.p12'));
  assert.equal(files.length, 200);
  const pdf = path.join(out, 'delivery-sheets.pdf');
  assert.match(run('pdfinfo', [pdf]), /Pages:\s+400\n/);
  assert.match(run('pdfinfo', [pdf]), /Page size:\s+595\.28 x 841\.89 pts \(A4\)/);
  const { p12, logins } = slips(pdf);
  assert.equal(p12.size, 200, 'a slip with a password for every .p12');
  for (const f of files) {
    const pw = p12.get(f);
    assert.ok(pw, `${f} has a slip`);
    const subject = run('openssl', ['pkcs12', '-in', path.join(out, f), '-passin', `pass:${pw}`, '-nokeys', '-clcerts', '-legacy']);
    assert.match(subject, new RegExp(`subject=.*CN\\s*=\\s*${f.split('_')[0]}`));
  }
  // Every user created has its initial password on exactly one slip, and it is the one stored.
  assert.equal(logins.size, 100);
  for (const [login, pw] of [...logins].slice(0, 5)) {
    const u = await db.selectFrom('users').select('password_hash').where('login_id', '=', login).executeTakeFirstOrThrow();
    assert.ok(await verifyPassword(pw, u.password_hash), `${login}'s slip password logs in`);
  }
  // Nothing issued twice: one certificate per row, and the seals are gone once delivered.
  const certs = await db.selectFrom('certificates').innerJoin('tenants', 'tenants.id', 'certificates.tenant_id').select('certificates.id').where('tenants.code', 'like', `${prefix}%`).execute();
  assert.equal(certs.length, 200);
  const sealed = await db.selectFrom('handovers').select('id').where('package_sealed', 'is not', null).execute();
  assert.equal(sealed.length, 0);
  assert.equal((await db.selectFrom('onboarding_users').select('user_id').where('password_sealed', 'is not', null).execute()).length, 0);
  const result = fs.readFileSync(path.join(out, 'onboard-result.csv'), 'utf8').trim().split('\n');
  assert.equal(result.length, 201);
  assert.doesNotMatch(result.join('\n'), new RegExp([...p12.values()][0]!), 'no password in the result CSV');
}

for (const dialect of testDialects()) {
  describe(`kenshin onboard on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const env = { KENSHIN_DATABASE_URL: w.config.databaseUrl, KENSHIN_CA_PASSPHRASE: w.config.caPassphrase, KENSHIN_LOG_LEVEL: 'silent', KENSHIN_KEY_TYPE: 'p256' };
    const k = (args: string[]) => kenshin(['--data-dir', w.dir, ...args], { env });
    const db = w.runtime.database.db;

    test('a bad row refuses the file with file, line and column, and creates nothing; fixed, 200 certificates, 400 pages', async () => {
      const file = path.join(w.dir, 'region-a.csv');
      fs.writeFileSync(file, csv('A', { badLine: 57 }));
      const out = path.join(w.dir, 'out-a');
      const refused = await k(['onboard', '--csv', file, '--out', out]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /nothing created: 1 problem in /);
      assert.match(refused.stderr, new RegExp(`${file}:57:4 \\(institution_number\\): "\\d{9}" is not a 10-digit 機関番号`));
      assert.equal((await db.selectFrom('tenants').selectAll().execute()).length, 0);
      assert.equal(fs.existsSync(out), false);

      const dry = await k(['onboard', '--csv', file, '--out', out, '--dry-run', '--continue-on-error']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /dry run: 199 rows are valid/);
      assert.equal((await db.selectFrom('tenants').selectAll().execute()).length, 0);

      fs.writeFileSync(file, csv('A'));
      const ok = await k(['onboard', '--csv', file, '--out', out, '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.json<{ issued: number }>().issued, 200);
      assert.match(ok.stderr, /onboard: 200\/200 rows issued/);
      await assertDelivered(w, out, 'A');
      // It renders: poppler draws the first sheet and its slip.
      run('pdftoppm', ['-r', '30', '-f', '1', '-l', '2', '-png', path.join(out, 'delivery-sheets.pdf'), path.join(w.dir, 'page')]);
      assert.ok(fs.statSync(path.join(w.dir, 'page-001.png')).size > 1000);
      const audit = (await db.selectFrom('audit_events').select('action').execute()).map((e) => e.action);
      assert.equal(audit.filter((a) => a === 'certificate.issued').length, 200);
      assert.equal(audit.filter((a) => a === 'onboarding.delivered').length, 1);

      // Again: nothing to do, nothing issued.
      const again = await k(['onboard', '--csv', file, '--out', out]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /issued 0 certificates \(200 rows were done by an earlier run\)/);
      assert.match(again.stdout, /nothing left to deliver/);
    });

    test('killed half-way (kill -9), the same command finishes without issuing twice or losing a password', async () => {
      const file = path.join(w.dir, 'region-b.csv');
      fs.writeFileSync(file, csv('B'));
      const out = path.join(w.dir, 'out-b');
      const args = [BIN, '--data-dir', w.dir, 'onboard', '--csv', file, '--out', out];
      const child = spawn(process.execPath, args, { env: childEnv(env), stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      // Kill it once some rows are issued and before all are.
      for (;;) {
        const n = (await db.selectFrom('onboarding_rows').select((eb) => eb.fn.countAll<number>().as('n')).where('row_key', 'like', 'b%').executeTakeFirstOrThrow()).n;
        if (Number(n) >= 40) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGKILL');
      await exited;
      const partial = Number((await db.selectFrom('onboarding_rows').select((eb) => eb.fn.countAll<number>().as('n')).where('row_key', 'like', 'b%').executeTakeFirstOrThrow()).n);
      assert.ok(partial >= 40 && partial < 200, `killed after ${partial} rows`);
      assert.equal(fs.existsSync(path.join(out, 'delivery-sheets.pdf')), false, 'no PDF yet');

      const rerun = spawnSync(process.execPath, args, { env: childEnv(env), encoding: 'utf8', timeout: 120_000 });
      assert.equal(rerun.status, 0, rerun.stderr);
      assert.match(rerun.stdout, new RegExp(`issued ${200 - partial} certificates \\(${partial} rows were done by an earlier run\\)`));
      await assertDelivered(w, out, 'B');
    });
  });
}

test('an upload’s initial passwords are hashed beside the logins of a serving process, not ahead of them', async () => {
  // scrypt runs on libuv's thread pool, first come, first served, and logins hash there too. The
  // console's job hashed every new user's password at once: a login started meanwhile waited for
  // all of them. hashesBesideLogins() leaves it a thread. An order, not a time limit: the login is
  // done before half of the remaining hashing time has passed.
  const stored = await hashPassword('a-login-password');
  const hashing = hashPasswords(Array.from({ length: 60 }, (_, i) => `initial-password-${i}`), hashesBesideLogins());
  await new Promise((r) => setTimeout(r, 100));
  const t0 = performance.now();
  assert.equal(await verifyPassword('a-login-password', stored), true);
  const login = performance.now() - t0;
  const hashes = await hashing;
  const rest = performance.now() - t0;
  assert.equal(new Set(hashes).size, 60);
  assert.equal(await verifyPassword('initial-password-7', hashes[7]!), true, 'each hash is its own password’s, in order');
  assert.ok(login < rest / 2, `the login took ${login.toFixed(0)} ms of the hashing's remaining ${rest.toFixed(0)} ms`);
});
