import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { testDialects, freshDatabaseUrl } from '../helpers/databases.js';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { run, tryRun } from '../helpers/openssl.js';
import { snapshotInstallation } from '../helpers/snapshot.js';
import { jstDate, threeYearsAfter } from '../helpers/dates.js';

for (const dialect of testDialects()) {
  describe(`kenshin CLI on ${dialect}`, async () => {
    const dir = tempDir();
    const database = await freshDatabaseUrl(dialect);
    after(() => database.drop());
    const env = { KENSHIN_DATABASE_URL: database.url };
    const k = (args: string[], opts: { stdin?: string; env?: Record<string, string | undefined> } = {}) =>
      kenshin(['--data-dir', dir, ...args], { env: { ...env, ...opts.env }, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) });

    const init = await k(['init', '--demo', '--json']);
    assert.equal(init.code, 0, init.stderr);
    const demo = init.json<{ demo: { p12File: string; p12PasswordFile: string; serial: string; login: string; loginPassword: string } }>().demo;

    test('init --demo leaves a demo certificate 60 days from expiry that openssl opens with its password', async () => {
      const pw = fs.readFileSync(demo.p12PasswordFile, 'utf8').trim();
      assert.match(run('openssl', ['pkcs12', '-in', demo.p12File, '-passin', `pass:${pw}`, '-info', '-noout']), /pbeWithSHA1And3-KeyTripleDES-CBC/);
      const show = await k(['cert', 'show', demo.serial, '--json']);
      assert.equal(show.code, 0);
      assert.equal(show.json().daysLeft, 60);
      assert.equal(show.json().status, 'active');
      assert.equal(fs.statSync(demo.p12PasswordFile).mode & 0o777, 0o600);
      assert.match(demo.loginPassword, /^\S{8,}$/);
    });

    test('ca cert prints the root, --chain adds the issuing CA', async () => {
      const root = await k(['ca', 'cert']);
      assert.equal(root.code, 0);
      assert.equal((root.stdout.match(/BEGIN CERTIFICATE/g) ?? []).length, 1);
      assert.equal(root.stdout.trim(), fs.readFileSync(path.join(dir, 'ca/root.crt'), 'utf8').trim());
      const chain = await k(['ca', 'cert', '--chain']);
      assert.equal((chain.stdout.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
      const json = (await k(['ca', 'cert', '--json'])).json<{ root: string; issuing: string }>();
      assert.equal(json.root.trim(), root.stdout.trim());
      assert.match(json.issuing, /BEGIN CERTIFICATE/);
    });

    test('tenant, institution and user add', async () => {
      assert.equal((await k(['tenant', 'add', '--code', 'T0001', '--name', '山田クリニック', '--email', 'office@yamada.example.jp'])).code, 0);
      assert.equal((await k(['institution', 'add', '--tenant', 'T0001', '--number', '1312345678', '--name', '山田クリニック本院'])).code, 0);
      const u = await k(['user', 'add', '--tenant', 'T0001', '--login', 'yamada', '--institutions', '1312345678', '--role', 'admin', '--password-stdin', '--json'], { stdin: 'a long password\n' });
      assert.equal(u.code, 0, u.stderr);
      assert.deepEqual(u.json(), { tenant: 'T0001', login: 'yamada', role: 'admin', institutions: ['1312345678'] });
      const list = await k(['tenant', 'list', '--json']);
      assert.deepEqual(list.json<{ code: string }[]>().map((t) => t.code), ['DEMO', 'T0001']);
    });

    for (const profile of ['compatible', 'modern'] as const) {
      for (const key of ['rsa2048', 'p256'] as const) {
        test(`cert issue --profile ${profile} --key ${key}: OpenSSL and NSS import it with the printed password`, async () => {
          const out = path.join(dir, `t0001-${profile}-${key}.p12`);
          const before = new Date();
          const r = await k(['cert', 'issue', '--tenant', 'T0001', '--out', out, '--profile', profile, '--key', key, '--label', '受付PC', '--json']);
          const after = new Date();
          assert.equal(r.code, 0, r.stderr);
          const { password, serial, notAfter } = r.json<{ password: string; serial: string; notAfter: string }>();
          assert.equal(fs.statSync(out).mode & 0o777, 0o600);
          // 3 years from the moment of issue (the CLI reads the real clock).
          assert.ok(notAfter >= threeYearsAfter(new Date(before.getTime() - 1000)) && notAfter <= threeYearsAfter(after), notAfter);
          const info = run('openssl', ['pkcs12', '-in', out, '-passin', `pass:${password}`, '-info', '-noout']);
          assert.match(info, profile === 'compatible' ? /MAC: sha1/ : /MAC: sha256/);
          assert.ok(!tryRun('openssl', ['pkcs12', '-in', out, '-passin', 'pass:wrong', '-info', '-noout']).ok);
          const nss = tempDir('kenshin-nss-');
          run('certutil', ['-N', '-d', `sql:${nss}`, '--empty-password']);
          assert.match(run('pk12util', ['-i', out, '-d', `sql:${nss}`, '-W', password]), /PKCS12 IMPORT SUCCESSFUL/);
          assert.match(run('certutil', ['-L', '-d', `sql:${nss}`]), new RegExp(`山田クリニック 有効期限 ${jstDate(notAfter)}`));
          assert.match(run('certutil', ['-K', '-d', `sql:${nss}`]), key === 'p256' ? /<\s*0>\s+ec/ : /<\s*0>\s+rsa/);
          const shown = await k(['cert', 'show', serial, '--json']);
          assert.equal(shown.json().subject, 'CN=T0001, O=山田クリニック, OU=受付PC');
          assert.equal(shown.json().keyType, key);
        });
      }
    }

    test('cert list filters by tenant and by expiry; revoke is refused twice', async () => {
      const expiring = await k(['cert', 'list', '--expiring-within', '90', '--json']);
      assert.deepEqual(expiring.json<{ serial: string }[]>().map((c) => c.serial), [demo.serial]);
      const t1 = await k(['cert', 'list', '--tenant', 'T0001', '--json']);
      assert.equal(t1.json<unknown[]>().length, 4);
      const text = await k(['cert', 'list']);
      assert.match(text.stdout, /^SERIAL\s+TENANT\s+STATUS/);
      // A page at a time with a cursor, the same rows in the same order as the whole list.
      const all = (await k(['cert', 'list', '--json'])).json<{ serial: string }[]>().map((c) => c.serial);
      const paged: string[] = [];
      let cursor: string | undefined;
      do {
        const page = (await k(['cert', 'list', '--limit', '2', '--json', ...(cursor ? ['--cursor', cursor] : [])])).json<{ rows: { serial: string }[]; next?: string }>();
        paged.push(...page.rows.map((c) => c.serial));
        cursor = page.next;
      } while (cursor);
      assert.deepEqual(paged, all);
      const human = await k(['cert', 'list', '--limit', '2']);
      assert.match(human.stderr, /^next page: --cursor \S+\n$/);
      const csv = await k(['cert', 'list', '--csv']);
      assert.equal(csv.stdout.split('\n')[0], 'serial,tenant,status,not_after,days_left');
      assert.equal(csv.stdout.trim().split('\n').length, all.length + 1);
      const bad = await k(['cert', 'list', '--limit', '2', '--cursor', 'nope']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /cursor/);
      const serial = t1.json<{ serial: string }[]>()[0]!.serial;
      const rev = await k(['cert', 'revoke', serial, '--reason', 'keyCompromise', '--json']);
      assert.equal(rev.code, 0);
      assert.equal(rev.json().status, 'revoked');
      const again = await k(['cert', 'revoke', serial]);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /already revoked/);
    });

    test('cert issue --reissue: after expiry, a new certificate with the same subject, linked to the old one', async () => {
      const old = await k(['cert', 'issue', '--tenant', 'T0001', '--label', '受付PC', '--out', path.join(dir, 'old.p12'), '--key', 'p256', '--not-before', '2023-01-01T00:00:00Z', '--not-after', '2026-01-01T00:00:00Z', '--json']);
      assert.equal(old.code, 0, old.stderr);
      const oldSerial = old.json<{ serial: string }>().serial;
      assert.equal((await k(['cert', 'show', oldSerial, '--json'])).json().status, 'expired');
      const re = await k(['cert', 'issue', '--reissue', oldSerial, '--out', path.join(dir, 'reissued.p12'), '--key', 'p256', '--json']);
      assert.equal(re.code, 0, re.stderr);
      const { serial, password, subject } = re.json<{ serial: string; password: string; subject: string }>();
      assert.equal(subject, 'CN=T0001, O=山田クリニック, OU=受付PC');
      const shown = (await k(['cert', 'show', serial, '--json'])).json<{ predecessorSerial: string; issuedVia: string; status: string }>();
      assert.deepEqual([shown.predecessorSerial, shown.issuedVia, shown.status], [oldSerial, 'reissue', 'active']);
      assert.deepEqual((await k(['cert', 'show', oldSerial, '--json'])).json().successorSerials, [serial]);
      assert.match(run('openssl', ['pkcs12', '-in', path.join(dir, 'reissued.p12'), '-passin', `pass:${password}`, '-info', '-noout']), /MAC: sha1/);
      // Revoking the old one "with every successor" takes the re-issued one too.
      const rev = await k(['cert', 'revoke', oldSerial, '--reason', 'keyCompromise', '--with-successors', '--json']);
      assert.equal(rev.code, 0, rev.stderr);
      assert.deepEqual(rev.json().alsoRevoked, [serial]);
      assert.equal((await k(['cert', 'show', serial, '--json'])).json().status, 'revoked');
    });

    /** Each bad input: exit 2, one line naming the problem, database and files exactly as before. */
    const refusals: [string, string[], RegExp, { stdin?: string; env?: Record<string, string> }?][] = [
      ['unknown tenant', ['cert', 'issue', '--tenant', 'NOPE', '--out', path.join(dir, 'nope.p12')], /unknown tenant "NOPE"/],
      ['duplicate tenant code', ['tenant', 'add', '--code', 'T0001', '--name', 'x'], /tenant code "T0001" already exists/],
      ['institution number of 9 digits', ['institution', 'add', '--tenant', 'T0001', '--number', '131234567', '--name', 'x'], /number: "131234567" is not a 10-digit 機関番号/],
      ['institution number with letters', ['institution', 'add', '--tenant', 'T0001', '--number', '13123456AB', '--name', 'x'], /number: .* 10-digit/],
      ['a login that exists', ['user', 'add', '--tenant', 'T0001', '--login', 'yamada', '--password-stdin'], /login ID "yamada" already exists/, { stdin: 'another password' }],
      ['a password on the command line', ['user', 'add', '--tenant', 'T0001', '--login', 'new'], /password-stdin: is required/],
      ['dates in the wrong order', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--not-before', '2027-01-01T00:00:00Z', '--not-after', '2026-01-01T00:00:00Z'], /not-after: must be later than not-before/],
      ['a date that is not a date', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--not-before', 'soon', '--not-after', '2026-01-01T00:00:00Z'], /not-before: "soon" is not an ISO-8601 date/],
      ['a year past 9999 (X.509 cannot say it)', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--not-before', '2026-01-01T00:00:00Z', '--not-after', '+099999-01-01T00:00:00Z'], /^kenshin: not-after: "\+099999-01-01T00:00:00Z" is not an ISO-8601 date from 1950 to 9999/],
      ['a date that JavaScript reads but is not ISO-8601', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--not-before', 'March 7, 2026', '--not-after', '2029-01-01T00:00:00Z'], /^kenshin: not-before: "March 7, 2026" is not an ISO-8601 date/],
      ['audit list --from that is not a date', ['audit', 'list', '--from', 'not-a-date'], /^kenshin: from: "not-a-date" is not a date \(YYYY-MM-DD\)/],
      ['audit list --to that is not a day', ['audit', 'list', '--to', '2026-02-30'], /^kenshin: to: "2026-02-30" is not a date \(YYYY-MM-DD\)/],
      ['revoke with a wrong CA passphrase', ['cert', 'revoke', demo.serial, '--reason', 'keyCompromise'], /^kenshin: cannot decrypt .*\.key: wrong passphrase .*; nothing was revoked/, { env: { KENSHIN_CA_PASSPHRASE: 'wrong' } }],
      ['--valid-days with dates', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--valid-days', '10', '--not-after', '2030-01-01'], /valid-days: use either/],
      ['an unknown key type', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12'), '--key', 'dsa'], /key: expected rsa2048 or p256/],
      ['an output file that exists', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 't0001-modern-p256.p12')], /already exists; refusing to overwrite/],
      ['an output directory that does not exist', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'no/such/dir/x.p12')], /cannot write .*x\.p12 \(ENOENT\)/],
      ['a wrong CA passphrase', ['cert', 'issue', '--tenant', 'T0001', '--out', path.join(dir, 'x.p12')], /cannot decrypt .*issuing\.key: wrong passphrase/, { env: { KENSHIN_CA_PASSPHRASE: 'wrong' } }],
      ['an unknown serial', ['cert', 'show', 'abcdef'], /no certificate with serial abcdef/],
      ['re-issue of an unknown serial', ['cert', 'issue', '--reissue', 'abcdef', '--out', path.join(dir, 'r.p12')], /no certificate with serial abcdef/],
      ['re-issue with a tenant', ['cert', 'issue', '--reissue', 'abcdef', '--tenant', 'T0001', '--out', path.join(dir, 'r.p12')], /reissue: takes the tenant and label/],
      ['issue without a tenant', ['cert', 'issue', '--out', path.join(dir, 'r.p12')], /tenant: is required/],
      ['an unknown revocation reason', ['cert', 'revoke', demo.serial, '--reason', 'lost'], /reason: expected one of/],
      ['a second init', ['init'], /already initialised/],
      ['a missing required option', ['tenant', 'add', '--code', 'X'], /required option '--name <NAME>' not specified/],
      ['a bad listen address', ['serve', '--listen', 'localhost'], /listen: expected HOST:PORT/],
      ['a unix socket in direct mode', ['serve', '--listen', 'unix:/tmp/kenshin-test.sock'], /a unix socket is for proxy mode/],
      ['a relative unix socket', ['serve', '--listen', 'unix:kenshin.sock'], /listen: expected unix:\/absolute\/path/],
    ];
    for (const [name, args, message, opts] of refusals) {
      test(`refused cleanly: ${name}`, async () => {
        const before = await snapshotInstallation(dir, database.url);
        const r = await k(args, opts ?? {});
        assert.equal(r.code, 2, `exit code for ${name}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line, got: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, 'no stack trace');
        assert.equal(r.stdout, '');
        assert.deepEqual(await snapshotInstallation(dir, database.url), before);
      });
    }

    test('refusals in --json mode are one JSON line naming the code and field', async () => {
      const r = await k(['institution', 'add', '--tenant', 'T0001', '--number', '12', '--name', 'x', '--json']);
      assert.equal(r.code, 2);
      assert.deepEqual(JSON.parse(r.stderr), { error: 'invalid_input', field: 'number', message: 'number: "12" is not a 10-digit 機関番号 (got 2 characters)' });
    });
  });
}

test('the CLI covers the console’s tenancy work: edit, lock/unlock, reset password, institutions, audit list', async () => {
  const dir = tempDir();
  const k = (args: string[], stdin?: string) => kenshin(['--data-dir', dir, ...args], stdin === undefined ? {} : { stdin });
  assert.equal((await k(['init', '--demo'])).code, 0);
  assert.equal((await k(['tenant', 'edit', '--code', 'DEMO', '--email', 'office@demo.example.jp', '--json'])).json().email, 'office@demo.example.jp');
  assert.equal((await k(['user', 'lock', '--tenant', 'DEMO', '--login', 'demo'])).code, 0);
  assert.equal((await k(['user', 'unlock', '--tenant', 'DEMO', '--login', 'demo'])).code, 0);
  const reset = await k(['user', 'reset-password', '--tenant', 'DEMO', '--login', 'demo', '--json']);
  assert.match(reset.json<{ password: string }>().password, /^\S{12}$/);
  assert.deepEqual((await k(['user', 'institutions', '--tenant', 'DEMO', '--login', 'demo', '--institutions', '1310000001', '--json'])).json().institutions, ['1310000001']);
  const bad = await k(['user', 'institutions', '--tenant', 'DEMO', '--login', 'demo', '--institutions', '9999999999']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /9999999999 does not belong to tenant DEMO/);
  const unknown = await k(['user', 'lock', '--tenant', 'DEMO', '--login', 'ghost']);
  assert.equal(unknown.code, 2);
  const list = await k(['audit', 'list', '--tenant', 'DEMO', '--json']);
  const actions = list.json<{ action: string }[]>().map((r) => r.action);
  for (const a of ['tenant.updated', 'user.locked', 'user.unlocked', 'user.password_reset', 'user.institutions_set']) assert.ok(actions.includes(a), a);
  assert.match((await k(['audit', 'list', '--action', 'user.locked', '--csv'])).stdout, /^id,at,tenant,actor,action,target,details,hash\r\n\d+,/);
});
