import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { run, tryRun } from '../helpers/openssl.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, reissueCertificate, revokeCertificate, type CertificateDeps } from '../../src/certificates/service.js';
import { crlBundlePem, currentCrlNamed, currentCrls, publishCrlsFor } from '../../src/certificates/crl-set.js';
import { rotateIssuingCa } from '../../src/setup/rotate-ca.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { loadAuthorityMaterial, loadTrustedCaPems } from '../../src/ca/hierarchy.js';
import { startMintPool } from '../../src/ca/mint-pool.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { DAY_MS } from '../../src/clock.js';
import { epochSeconds } from '../helpers/dates.js';

const CRL_URL = 'https://pki.example.jp/crl/issuing.crl';

/** What openssl says about a certificate: issuer CN, AKI, CRL distribution point. */
function facts(pem: string): { issuer: string; aki: string; dp: string } {
  const text = run('openssl', ['x509', '-noout', '-text', '-issuer', '-nameopt', 'sep_comma_plus_space'], pem);
  return {
    issuer: /^issuer=(.*)$/m.exec(text)![1]!,
    aki: /Authority Key Identifier: *\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)![1]!,
    dp: /CRL Distribution Points: *\n[\s\S]*?URI:(\S+)/.exec(text)![1]!,
  };
}

function ski(file: string): string {
  return /Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(run('openssl', ['x509', '-in', file, '-noout', '-text']))![1]!;
}

/** The serials a CRL lists, as openssl prints them (uppercase hex, leading zero dropped). */
function listedSerials(crlPem: string): string[] {
  return [...run('openssl', ['crl', '-noout', '-text'], crlPem).matchAll(/Serial Number: (\S+)/g)].map((m) => m[1]!.replace(/^0+/, '').toLowerCase());
}

for (const dialect of testDialects()) {
  describe(`issuing-CA rotation on ${dialect}`, async () => {
    const w = await makeWorld(dialect, { env: { KENSHIN_CRL_URL: CRL_URL } });
    const { paths } = w.runtime;
    const db = w.runtime.database.db;
    await addTenant({ db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
    const issue = (deps: CertificateDeps) => issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' });
    const gen1Deps = await w.runtime.certificateDeps();
    const gen1 = [await issue(gen1Deps), await issue(gen1Deps)];
    const gen1Ca = path.join(w.dir, 'issuing-1.pem');
    fs.copyFileSync(paths.issuingCert, gen1Ca);

    const rotate = () => rotateIssuingCa({ db, clock: w.clock, paths, passphraseFromEnv: w.config.caPassphrase, crlUrl: w.config.crlUrl }, { actor: 'test' });
    /** A process started after the rotation (what `restart serve` gives). */
    const restarted = async (): Promise<Runtime> => {
      const rt = await openRuntime(w.config, { clock: w.clock });
      w.onClose(() => rt.close());
      return rt;
    };
    const rotated = await rotate();
    const rt2 = await restarted();
    const gen2Deps = await rt2.certificateDeps();
    const gen2 = [await issue(gen2Deps), await issue(gen2Deps)];
    const gen2Ca = path.join(w.dir, 'issuing-2.pem');
    fs.copyFileSync(paths.issuingCert, gen2Ca);
    const crlDeps = async (rt: Runtime) => ({ db, clock: w.clock, cas: await rt.caSet() });

    test('new certificates come from generation 2: issuer, AKI and CRL distribution point, checked by openssl', async () => {
      assert.equal(rotated.previous.generation, 1);
      assert.equal(rotated.current.generation, 2);
      assert.equal(rotated.crlDistributionPoint, 'https://pki.example.jp/crl/issuing-2.crl');
      const old = facts(gen1[0]!.certificatePem);
      assert.equal(old.issuer, 'CN=Kenshin Test Issuing CA 1, O=Kenshin Test');
      assert.equal(old.aki, ski(gen1Ca));
      assert.equal(old.dp, CRL_URL, 'generation 1 keeps the URL already in the field');
      const fresh = facts(gen2[0]!.certificatePem);
      assert.equal(fresh.issuer, 'CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
      assert.equal(fresh.aki, ski(gen2Ca));
      assert.notEqual(fresh.aki, old.aki);
      assert.equal(fresh.dp, 'https://pki.example.jp/crl/issuing-2.crl');
      const leaf = path.join(w.dir, 'fresh.pem');
      fs.writeFileSync(leaf, gen2[0]!.certificatePem);
      assert.match(run('openssl', ['verify', '-attime', epochSeconds(w.clock.now()), '-purpose', 'sslclient', '-CAfile', paths.rootCert, '-untrusted', gen2Ca, leaf]), /OK/);
      assert.ok(!tryRun('openssl', ['verify', '-attime', epochSeconds(w.clock.now()), '-CAfile', paths.rootCert, '-untrusted', gen1Ca, leaf]).ok, 'not signed by the old CA');
      // The database names each certificate's own issuer (what its CRL is selected by).
      assert.equal(gen2[0]!.row.issuer_fingerprint, rotated.current.fingerprint);
      assert.equal(gen1[0]!.row.issuer_fingerprint, rotated.previous.fingerprint);
    });

    test('a re-issue of an old-CA certificate and the mint worker pool both sign with generation 2', async () => {
      const re = await reissueCertificate(gen2Deps, { serial: gen1[1]!.serial, keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' });
      assert.equal(facts(re.certificatePem).issuer, 'CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
      assert.equal(re.row.issuer_fingerprint, rotated.current.fingerprint);
      const pool = startMintPool(await loadAuthorityMaterial(paths, w.config.caPassphrase, w.config.crlUrl), 1);
      try {
        const minted = await issue({ ...gen2Deps, minter: pool });
        const f = facts(minted.certificatePem);
        assert.equal(f.issuer, 'CN=Kenshin Test Issuing CA 2, O=Kenshin Test');
        assert.equal(f.dp, 'https://pki.example.jp/crl/issuing-2.crl');
        // The .p12 carries the new issuing CA as its chain.
        const p12 = path.join(w.dir, 'pool.p12');
        fs.writeFileSync(p12, minted.pkcs12);
        const bags = run('openssl', ['pkcs12', '-in', p12, '-passin', `pass:${minted.password}`, '-nokeys', '-cacerts']);
        assert.match(bags, /subject=.*Kenshin Test Issuing CA 2/);
        assert.doesNotMatch(bags, /Issuing CA 1/);
      } finally {
        await pool.close();
      }
    });

    test('revoking one of each: each CA’s CRL is signed by its own key and lists exactly its own serial', async () => {
      await revokeCertificate({ db, clock: w.clock }, { serial: gen1[0]!.serial, reason: 'keyCompromise', actor: 'test' });
      await revokeCertificate({ db, clock: w.clock }, { serial: gen2[0]!.serial, reason: 'keyCompromise', actor: 'test' });
      const published = await publishCrlsFor(await crlDeps(rt2), [gen1[0]!.serial, gen2[0]!.serial]);
      assert.deepEqual(published.map((p) => p.name), ['issuing', 'issuing-2']);
      for (const [name, caFile, serial, otherCa] of [
        ['issuing', gen1Ca, gen1[0]!.serial, gen2Ca],
        ['issuing-2', gen2Ca, gen2[0]!.serial, gen1Ca],
      ] as const) {
        const crl = published.find((p) => p.name === name)!.crl;
        const file = path.join(w.dir, `${name}.crl.pem`);
        fs.writeFileSync(file, crl.pem);
        assert.match(run('openssl', ['crl', '-in', file, '-CAfile', caFile, '-verify', '-noout']), /verify OK/);
        assert.ok(!tryRun('openssl', ['crl', '-in', file, '-CAfile', otherCa, '-verify', '-noout']).ok, `${name} is not signed by the other generation`);
        assert.deepEqual(listedSerials(crl.pem), [serial]);
      }
      // The root CRL: signed by the root, lists no issuing CA, lives a month.
      const root = (await currentCrlNamed(await crlDeps(rt2), 'root'))!.crl;
      const rootFile = path.join(w.dir, 'root.crl.pem');
      fs.writeFileSync(rootFile, root.pem);
      assert.match(run('openssl', ['crl', '-in', rootFile, '-CAfile', paths.rootCert, '-verify', '-noout']), /verify OK/);
      assert.deepEqual(listedSerials(root.pem), []);
      assert.equal(new Date(root.nextUpdate).getTime() - new Date(root.thisUpdate).getTime(), 30 * DAY_MS);
    });

    test('openssl verify -crl_check_all with the two bundles: good certificates of both generations pass, revoked ones fail', async () => {
      const caBundle = path.join(w.dir, 'ca-bundle.pem');
      const crlBundle = path.join(w.dir, 'crl-bundle.pem');
      fs.writeFileSync(caBundle, loadTrustedCaPems(paths).join(''));
      const crls = await currentCrls(await crlDeps(rt2));
      assert.deepEqual(crls.map((c) => c.name), ['root', 'issuing', 'issuing-2']);
      fs.writeFileSync(crlBundle, crlBundlePem(crls));
      assert.equal((fs.readFileSync(crlBundle, 'utf8').match(/BEGIN X509 CRL/g) ?? []).length, 3);
      const cases = [
        [gen1[0]!, false],
        [gen1[1]!, true],
        [gen2[0]!, false],
        [gen2[1]!, true],
      ] as const;
      for (const [i, [cert, good]] of cases.entries()) {
        const leaf = path.join(w.dir, `check-${i}.pem`);
        fs.writeFileSync(leaf, cert.certificatePem);
        const r = tryRun('openssl', ['verify', '-attime', epochSeconds(w.clock.now()), '-crl_check_all', '-CRLfile', crlBundle, '-CAfile', caBundle, leaf]);
        assert.equal(r.ok, good, r.out);
        if (!good) assert.match(r.out, /certificate revoked/);
      }
      // Without the root CRL, crl_check_all cannot pass: why the bundle carries it.
      const noRoot = path.join(w.dir, 'crl-no-root.pem');
      fs.writeFileSync(noRoot, crlBundlePem(crls.filter((c) => c.name !== 'root')));
      const leaf = path.join(w.dir, 'check-1.pem');
      assert.match(tryRun('openssl', ['verify', '-attime', epochSeconds(w.clock.now()), '-crl_check_all', '-CRLfile', noRoot, '-CAfile', caBundle, leaf]).out, /unable to get certificate CRL/);
    });

    test('the rotation is audited as ca.rotated, and the audit chain verifies', async () => {
      const events = await db.selectFrom('audit_events').selectAll().where('action', '=', 'ca.rotated').execute();
      assert.equal(events.length, 1);
      assert.equal(events[0]!.actor, 'test');
      assert.equal(events[0]!.target, 'ca:issuing-2');
      const d = JSON.parse(events[0]!.details) as { previous: { generation: number; fingerprint: string }; current: { generation: number; fingerprint: string }; crlDistributionPoint: string };
      assert.deepEqual([d.previous.generation, d.previous.fingerprint], [1, rotated.previous.fingerprint]);
      assert.deepEqual([d.current.generation, d.current.fingerprint], [2, rotated.current.fingerprint]);
      assert.equal(d.crlDistributionPoint, 'https://pki.example.jp/crl/issuing-2.crl');
      assert.deepEqual(await verifyAuditChain(db), { ok: true, events: (await db.selectFrom('audit_events').select('id').execute()).length });
    });

    test('rotating again gives generation 3; the CRLs of every generation stay published and are refreshed daily', async () => {
      const third = await rotate();
      assert.equal(third.current.generation, 3);
      const rt3 = await restarted();
      const gen3 = await issue(await rt3.certificateDeps());
      assert.equal(facts(gen3.certificatePem).dp, 'https://pki.example.jp/crl/issuing-3.crl');
      const before = await currentCrls(await crlDeps(rt3));
      assert.deepEqual(before.map((c) => c.name), ['root', 'issuing', 'issuing-2', 'issuing-3']);
      w.clock.advance(25 * 3600_000);
      const after = await currentCrls(await crlDeps(rt3));
      for (const [i, c] of after.entries()) {
        assert.equal(c.crl.number, before[i]!.crl.number + 1, `${c.name} is re-signed after a day`);
        assert.equal(c.crl.thisUpdate, w.clock.now().toISOString());
      }
      // The old generations still list their own revocations.
      assert.deepEqual(listedSerials(after.find((c) => c.name === 'issuing')!.crl.pem), [gen1[0]!.serial]);
      assert.deepEqual(listedSerials(after.find((c) => c.name === 'issuing-2')!.crl.pem), [gen2[0]!.serial]);
      assert.deepEqual(listedSerials(after.find((c) => c.name === 'issuing-3')!.crl.pem), []);
    });
  });
}
