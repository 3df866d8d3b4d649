import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeWorld } from '../helpers/world.js';
import { kenshin } from '../helpers/cli.js';
import { makeOpensslCa } from '../helpers/openssl-ca.js';
import { run } from '../helpers/openssl.js';

/**
 * What `kenshin ca trust / adopt` and `kenshin cert import` refuse, each with one line naming what
 * is wrong, exit code 2, and nothing stored: a migration that half-happens is worse than none.
 */
describe('taking over: refusals', async () => {
  const w = await makeWorld('sqlite');
  const env = { KENSHIN_DATABASE_URL: w.config.databaseUrl, KENSHIN_CA_PASSPHRASE: w.config.caPassphrase, KENSHIN_LOG_LEVEL: 'silent' };
  const k = (args: string[], stdin?: string) => kenshin(['--data-dir', w.dir, ...args], { env, ...(stdin !== undefined ? { stdin } : {}) });
  const old = makeOpensslCa(path.join(w.dir, 'old'), { name: 'Old CA' });
  const other = makeOpensslCa(path.join(w.dir, 'other'), { name: 'Other CA' });
  const leaf = old.issue({ cn: 'T0001', o: '山田クリニック' });
  const externalDir = path.join(w.runtime.paths.caDir, 'external');
  const events = async () => (await w.runtime.database.db.selectFrom('audit_events').select('action').execute()).map((e) => e.action);
  const stored = () => (fs.existsSync(externalDir) ? fs.readdirSync(externalDir).filter((n) => !n.startsWith('.')) : []);

  // An intermediate under the "other" root, to test chains.
  const inter = path.join(w.dir, 'inter');
  fs.mkdirSync(inter);
  run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${inter}/i.key`, '-out', `${inter}/i.csr`, '-subj', '/CN=Old Intermediate', '-config', other.conf]);
  run('openssl', ['ca', '-config', other.conf, '-batch', '-in', `${inter}/i.csr`, '-out', `${inter}/i.crt`, '-extensions', 'v3_ca', '-notext', '-days', '1000']);

  test('ca trust / adopt refuse a non-CA, a missing or wrong chain, a key that does not match, and a CA already known', async () => {
    const cases: [string[], RegExp, string?][] = [
      [['ca', 'trust', '--cert', leaf.certFile], /is not a CA certificate/],
      [['ca', 'trust', '--cert', `${inter}/i.crt`], /is signed by CN=Other CA.*give that CA .*--chain/],
      [['ca', 'trust', '--cert', `${inter}/i.crt`, '--chain', old.certFile], /is not signed by CN=Old CA.*does not verify/],
      [['ca', 'adopt', '--cert', old.certFile, '--key', other.keyFile], /is not the key of CN=Old CA/],
      [['ca', 'adopt', '--cert', old.certFile, '--key', old.encryptedKeyFile], /is encrypted: give its passphrase with --passphrase-stdin/],
      [['ca', 'adopt', '--cert', old.certFile, '--key', old.encryptedKeyFile, '--passphrase-stdin'], /cannot decrypt .*wrong passphrase/, 'not it'],
      [['ca', 'trust', '--cert', w.runtime.paths.issuingCert], /one of Kenshin's own CAs/],
      [['ca', 'trust', '--cert', old.certFile, '--crl', other.crlFile()], /not signed by this CA or its chain/],
      [['ca', 'trust', '--cert', path.join(w.dir, 'missing.pem')], /cannot read .*missing\.pem/],
    ];
    for (const [args, message, stdin] of cases) {
      const r = await k(args, stdin);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.doesNotMatch(r.stderr, /old system passphrase|PRIVATE KEY/);
    }
    assert.deepEqual(stored(), [], 'nothing stored');
    assert.ok(!(await events()).some((a) => a.startsWith('ca.')), 'nothing audited');
    // A chain that verifies is accepted; the same CA again is refused.
    const ok = await k(['ca', 'trust', '--cert', `${inter}/i.crt`, '--chain', other.certFile]);
    assert.equal(ok.code, 0, ok.stderr);
    const again = await k(['ca', 'adopt', '--cert', `${inter}/i.crt`, '--key', `${inter}/i.key`, '--chain', other.certFile]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already known to Kenshin/);
    assert.equal(stored().length, 1);
  });

  test('cert import: all or nothing, each refusal named by file and line; --continue-on-error imports the rest', async () => {
    assert.equal((await k(['ca', 'trust', '--cert', old.certFile])).code, 0);
    const server = old.issue({ cn: 'T0001', o: '山田クリニック' }, { eku: 'serverAuth' });
    const stranger = other.issue({ cn: 'T0001', o: '山田クリニック' });
    const dir = path.join(w.dir, 'to-import');
    fs.mkdirSync(dir);
    for (const [i, f] of [leaf.certFile, server.certFile, stranger.certFile].entries()) fs.copyFileSync(f, path.join(dir, `${i}.pem`));
    fs.writeFileSync(path.join(dir, '3.pem'), 'not a certificate');

    const noTenant = await k(['cert', 'import', dir, '--tenant-from', 'cn']);
    assert.equal(noTenant.code, 2);
    assert.match(noTenant.stderr, /nothing imported: 4 of 4 certificates refused/);
    assert.match(noTenant.stderr, /0\.pem: tenant T0001 does not exist/);
    assert.match(noTenant.stderr, /1\.pem.*not for client authentication/);
    assert.match(noTenant.stderr, /2\.pem.*not signed by a CA Kenshin trusts or adopted \(issuer CN=Other CA/);
    assert.match(noTenant.stderr, /3\.pem: not an X.509 certificate/);

    const partial = await k(['cert', 'import', dir, '--tenant-from', 'cn', '--create-tenants']);
    assert.equal(partial.code, 2, 'still all or nothing');
    assert.equal((await w.runtime.database.db.selectFrom('certificates').selectAll().execute()).length, 0);
    assert.equal((await w.runtime.database.db.selectFrom('tenants').selectAll().execute()).length, 0, 'no tenant created either');

    const map = path.join(w.dir, 'map.csv');
    fs.writeFileSync(map, 'serial,tenant\nzz,T0001\n');
    const badMap = await k(['cert', 'import', dir, '--tenants', map]);
    assert.equal(badMap.code, 2);
    assert.match(badMap.stderr, /map\.csv:2: "zz" is not a hexadecimal serial/);
    assert.equal((await k(['cert', 'import', dir])).code, 2, 'a tenant rule is required');

    const rest = await k(['cert', 'import', dir, '--tenant-from', 'cn', '--create-tenants', '--continue-on-error', '--json']);
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(rest.json<{ counts: { imported: number; rejected: number } }>().counts.imported, 1);
    assert.equal(rest.json<{ counts: { imported: number; rejected: number } }>().counts.rejected, 3);
    const tenant = await w.runtime.database.db.selectFrom('tenants').selectAll().executeTakeFirstOrThrow();
    assert.deepEqual([tenant.code, tenant.name], ['T0001', '山田クリニック'], 'named after the subject\'s O');
  });
});
