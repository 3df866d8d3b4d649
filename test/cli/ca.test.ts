import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { testDialects, freshDatabaseUrl } from '../helpers/databases.js';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { run, tryRun } from '../helpers/openssl.js';
import { snapshotInstallation } from '../helpers/snapshot.js';

const PASS = 'cli-rotation-passphrase';

for (const dialect of testDialects()) {
  describe(`kenshin ca rotate / ca bundle on ${dialect}`, async () => {
    const dir = tempDir();
    const database = await freshDatabaseUrl(dialect);
    after(() => database.drop());
    const env = { KENSHIN_DATABASE_URL: database.url, KENSHIN_CA_PASSPHRASE: PASS, KENSHIN_CRL_URL: 'https://kenshin.example.jp/crl/issuing.crl' };
    const k = (args: string[], extra: Record<string, string | undefined> = {}) => kenshin(['--data-dir', dir, ...args], { env: { ...env, ...extra } });
    const file = (name: string) => path.join(dir, name);

    assert.equal((await k(['init'])).code, 0);
    assert.equal((await k(['tenant', 'add', '--code', 'T0001', '--name', '山田クリニック'])).code, 0);
    /** Issues a certificate with the CLI; returns its serial and PEM file. */
    const issue = async (name: string) => {
      const r = await k(['cert', 'issue', '--tenant', 'T0001', '--key', 'p256', '--out', file(`${name}.p12`), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const serial = r.json<{ serial: string }>().serial;
      fs.writeFileSync(file(`${name}.pem`), (await k(['cert', 'show', serial, '--json'])).json<{ pem: string }>().pem);
      return { serial, pem: file(`${name}.pem`) };
    };
    const old = [await issue('old-0'), await issue('old-1')];
    fs.copyFileSync(file('ca/issuing.crt'), file('issuing-1.pem'));

    test('refusals are one clear line, exit 2, and change nothing: not initialised, wrong passphrase, bad flags', async () => {
      const empty = tempDir();
      const none = await kenshin(['--data-dir', empty, 'ca', 'rotate'], { env: { KENSHIN_CA_PASSPHRASE: PASS } });
      assert.equal(none.code, 2);
      assert.equal(none.stderr, `kenshin: no CA in ${empty}: run \`kenshin init\` first\n`);
      assert.deepEqual(fs.readdirSync(empty), []);

      const before = await snapshotInstallation(dir, database.url);
      const wrong = await k(['ca', 'rotate'], { KENSHIN_CA_PASSPHRASE: 'not-the-passphrase' });
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /^kenshin: cannot decrypt \S+root\.key: wrong passphrase \(KENSHIN_CA_PASSPHRASE\) or damaged key file\n$/);
      assert.doesNotMatch(wrong.stderr, /not-the-passphrase/);
      const badType = await k(['ca', 'rotate', '--key-type', 'rsa1024']);
      assert.equal(badType.code, 2);
      assert.match(badType.stderr, /^kenshin: key-type: expected p256, p384 or rsa3072, got "rsa1024"\n$/);
      const json = await k(['ca', 'rotate', '--json'], { KENSHIN_CA_PASSPHRASE: 'nope' });
      assert.deepEqual(Object.keys(JSON.parse(json.stderr)).sort(), ['error', 'field', 'message']);
      assert.equal(JSON.parse(json.stderr).error, 'ca_key_unreadable');
      assert.equal((await k(['ca', 'bundle'])).code, 2);
      const unwritable = await k(['ca', 'bundle', '--crl-out', path.join(dir, 'no-such-dir', 'crl.pem')]);
      assert.equal(unwritable.code, 2);
      assert.match(unwritable.stderr, /^kenshin: cannot write \S+crl\.pem \(ENOENT\)\n$/);
      assert.deepEqual(await snapshotInstallation(dir, database.url), before);
    });

    test('ca rotate: generation 2 becomes current, the output says to restart serve, and it is audited', async () => {
      const r = await k(['ca', 'rotate']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /rotated the issuing CA: generation 1 → 2/);
      assert.match(r.stdout, /CRL DP of new certificates: https:\/\/kenshin\.example\.jp\/crl\/issuing-2\.crl/);
      assert.match(r.stdout, /its CRL stays at \/crl\/issuing\.crl/);
      assert.match(r.stdout, /Restart every `kenshin serve`/);
      assert.match(r.stdout, /kenshin ca bundle --ca-out FILE --crl-out FILE/);
      assert.match(run('openssl', ['x509', '-in', file('ca/issuing.crt'), '-noout', '-subject']), /Issuing CA 2/);
      const audit = await k(['audit', 'list', '--action', 'ca.rotated', '--json']);
      const events = audit.json<{ actor: string; target: string }[]>();
      assert.deepEqual(events.map((e) => [e.actor, e.target]), [['cli', 'ca:issuing-2']]);
      assert.equal((await k(['audit', 'verify'])).code, 0);
    });

    test('after the rotation: one revoked per generation; the bundles make openssl -crl_check_all accept the good and refuse the revoked', async () => {
      const fresh = [await issue('new-0'), await issue('new-1')];
      assert.match(run('openssl', ['x509', '-in', fresh[0]!.pem, '-noout', '-issuer']), /Issuing CA 2/);
      const r1 = await k(['cert', 'revoke', old[0]!.serial, '--reason', 'keyCompromise']);
      assert.match(r1.stdout, /; CRL #\d+ \(issuing\) published$/m);
      const r2 = await k(['cert', 'revoke', fresh[0]!.serial, '--json']);
      assert.deepEqual(r2.json<{ crls: { name: string }[] }>().crls.map((c) => c.name), ['issuing-2']);

      const b = await k(['ca', 'bundle', '--ca-out', file('proxy/ca.pem'), '--crl-out', file('proxy/crl.pem'), '--json']);
      assert.equal(b.code, 2, 'the proxy directory does not exist yet');
      fs.mkdirSync(file('proxy'));
      const bundle = await k(['ca', 'bundle', '--ca-out', file('proxy/ca.pem'), '--crl-out', file('proxy/crl.pem'), '--json']);
      assert.equal(bundle.code, 0, bundle.stderr);
      const out = bundle.json<{ certificates: number; crls: { name: string }[] }>();
      assert.equal(out.certificates, 3);
      assert.deepEqual(out.crls.map((c) => c.name), ['root', 'issuing', 'issuing-2']);
      assert.equal((fs.readFileSync(file('proxy/ca.pem'), 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length, 3);
      for (const [cert, good] of [
        [old[0]!, false],
        [old[1]!, true],
        [fresh[0]!, false],
        [fresh[1]!, true],
      ] as const) {
        const r = tryRun('openssl', ['verify', '-crl_check_all', '-CRLfile', file('proxy/crl.pem'), '-CAfile', file('proxy/ca.pem'), cert.pem]);
        assert.equal(r.ok, good, `${cert.serial}: ${r.out}`);
        if (!good) assert.match(r.out, /certificate revoked/);
      }
      const human = await k(['ca', 'bundle', '--crl-out', file('proxy/crl.pem')]);
      assert.match(human.stdout, /wrote \S+crl\.pem: 3 CRLs \(root #\d+, issuing #\d+, issuing-2 #\d+\)/);
    });

    test('ca crl: the current generation by default, --generation N, --root; each verifies against its own CA and lists only its own', async () => {
      const crlOf = async (args: string[]) => {
        const r = await k(['ca', 'crl', ...args]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout;
      };
      const serials = (pem: string) => [...run('openssl', ['crl', '-noout', '-text'], pem).matchAll(/Serial Number: (\S+)/g)].map((m) => m[1]!.replace(/^0+/, '').toLowerCase());
      const first = await crlOf(['--generation', '1', '--der', file('issuing-1.crl')]);
      fs.writeFileSync(file('g1.crl.pem'), first);
      assert.match(run('openssl', ['crl', '-in', file('g1.crl.pem'), '-CAfile', file('issuing-1.pem'), '-verify', '-noout']), /verify OK/);
      assert.equal(run('openssl', ['crl', '-inform', 'DER', '-in', file('issuing-1.crl'), '-noout', '-issuer']).trim(), run('openssl', ['crl', '-noout', '-issuer'], first).trim());
      assert.deepEqual(serials(first), [old[0]!.serial]);
      const current = await crlOf([]);
      fs.writeFileSync(file('g2.crl.pem'), current);
      assert.match(run('openssl', ['crl', '-in', file('g2.crl.pem'), '-CAfile', file('ca/issuing.crt'), '-verify', '-noout']), /verify OK/);
      assert.equal(serials(current).length, 1);
      assert.notDeepEqual(serials(current), serials(first));
      const root = await crlOf(['--root']);
      fs.writeFileSync(file('root.crl.pem'), root);
      assert.match(run('openssl', ['crl', '-in', file('root.crl.pem'), '-CAfile', file('ca/root.crt'), '-verify', '-noout']), /verify OK/);
      assert.deepEqual(serials(root), []);
      const missing = await k(['ca', 'crl', '--generation', '9']);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /there is no issuing CA generation 9/);
    });

    test('rotating twice works: generation 3 issues, and the bundles grow to 4 CAs and 4 CRLs', async () => {
      const r = await k(['ca', 'rotate', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const j = r.json<{ previous: { generation: number }; current: { generation: number; crl: string }; crlDistributionPoint: string; restartServe: boolean }>();
      assert.deepEqual([j.previous.generation, j.current.generation, j.current.crl, j.restartServe], [2, 3, 'issuing-3', true]);
      assert.equal(j.crlDistributionPoint, 'https://kenshin.example.jp/crl/issuing-3.crl');
      const third = await issue('third');
      assert.match(run('openssl', ['x509', '-in', third.pem, '-noout', '-ext', 'crlDistributionPoints']), /issuing-3\.crl/);
      const bundle = await k(['ca', 'bundle', '--ca-out', file('proxy/ca.pem'), '--crl-out', file('proxy/crl.pem'), '--json']);
      assert.equal(bundle.json<{ certificates: number }>().certificates, 4);
      assert.equal((fs.readFileSync(file('proxy/crl.pem'), 'utf8').match(/BEGIN X509 CRL/g) ?? []).length, 4);
      assert.ok(tryRun('openssl', ['verify', '-crl_check_all', '-CRLfile', file('proxy/crl.pem'), '-CAfile', file('proxy/ca.pem'), third.pem]).ok);
      assert.ok(tryRun('openssl', ['verify', '-crl_check_all', '-CRLfile', file('proxy/crl.pem'), '-CAfile', file('proxy/ca.pem'), old[1]!.pem]).ok);
      assert.deepEqual(fs.readdirSync(file('proxy')).sort(), ['ca.pem', 'crl.pem'], 'no temp files left beside the outputs');
      const events = (await k(['audit', 'list', '--action', 'ca.rotated', '--json'])).json<{ target: string }[]>();
      assert.deepEqual(events.map((e) => e.target).sort(), ['ca:issuing-2', 'ca:issuing-3']);
    });
  });
}
