import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../src/config.js';
import { createHierarchy, loadAuthorityMaterial, loadCaSet, loadIssuingAuthority, loadTrustedCaPems } from '../../src/ca/hierarchy.js';
import { crlName, crlUrlForGeneration, currentIssuingFiles, finishPendingRotation, listIssuingFiles } from '../../src/ca/generations.js';
import { prepareRotation } from '../../src/ca/rotate.js';
import { Refusal } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { run } from '../helpers/openssl.js';
import { epochSeconds } from '../helpers/dates.js';

// A fixed date keeps the expected dates literal; openssl is handed the same instant (-attime).
const NOW = new Date('2026-11-25T03:00:00Z');
const PASS = 'pw-for-tests';

async function freshCa() {
  const paths = dataPaths(tempDir());
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: PASS, now: NOW });
  return paths;
}

/** Every file under ca/ with its bytes: "nothing changed" means this is equal before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out[f] = fs.readFileSync(p, 'base64');
  }
  return out;
}

const cn = (file: string) => run('openssl', ['x509', '-in', file, '-noout', '-subject', '-nameopt', 'sep_comma_plus_space']).trim();

test('CRL names and distribution points: generation 1 keeps the URL in the field, later ones get their own', () => {
  assert.equal(crlName(1), 'issuing');
  assert.equal(crlName(2), 'issuing-2');
  assert.equal(crlUrlForGeneration(undefined, 2), undefined);
  assert.equal(crlUrlForGeneration('https://pki.example.jp/crl/issuing.crl', 1), 'https://pki.example.jp/crl/issuing.crl');
  assert.equal(crlUrlForGeneration('https://pki.example.jp/crl/issuing.crl', 2), 'https://pki.example.jp/crl/issuing-2.crl');
  assert.equal(crlUrlForGeneration('https://pki.example.jp/crl/issuing.crl.pem', 12), 'https://pki.example.jp/crl/issuing-12.crl.pem');
  assert.equal(crlUrlForGeneration('http://pki.example.jp/kenshin-crl', 3), 'http://pki.example.jp/kenshin-crl-3');
  assert.equal(crlUrlForGeneration('http://pki.example.jp/crl/', 2), 'http://pki.example.jp/crl/issuing-2.crl');
});

test('rotate: a new issuing CA under the same root becomes current; the previous one is retired with its key', async () => {
  const paths = await freshCa();
  const before = fs.readFileSync(paths.issuingCert, 'utf8');
  const r = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  r.commit();
  r.finish();
  assert.equal(r.previous.generation, 1);
  assert.equal(r.next.generation, 2);
  assert.equal(r.next.crl, 'issuing-2');
  assert.ok(!fs.existsSync(path.join(paths.caDir, 'next')));
  assert.deepEqual(fs.readdirSync(paths.caDir).filter((f) => f.startsWith('.')), [], 'no staging left behind');
  // The current CA: new files at the old place, chaining to the same root, pathLen 0, AKI = root SKI.
  assert.match(cn(paths.issuingCert), /CN=Kenshin Test Issuing CA 2, O=Kenshin Test/);
  assert.match(run('openssl', ['verify', '-attime', epochSeconds(NOW), '-CAfile', paths.rootCert, paths.issuingCert]), /OK/);
  const text = run('openssl', ['x509', '-in', paths.issuingCert, '-noout', '-text']);
  assert.match(text, /CA:TRUE, pathlen:0/);
  const rootSki = /Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(run('openssl', ['x509', '-in', paths.rootCert, '-noout', '-text']))![1]!;
  assert.match(text, new RegExp(`Authority Key Identifier: *\\n\\s*(keyid:)?${rootSki}`));
  assert.equal(fs.statSync(paths.issuingKey).mode & 0o777, 0o600);
  run('openssl', ['pkey', '-in', paths.issuingKey, '-passin', `pass:${PASS}`, '-noout']);
  // The retired generation: byte-identical to what was current, key included, still 0600.
  const retired = path.join(paths.caDir, 'retired');
  assert.equal(fs.readFileSync(path.join(retired, 'issuing-1.crt'), 'utf8'), before);
  assert.equal(fs.statSync(path.join(retired, 'issuing-1.key')).mode & 0o777, 0o600);
  assert.deepEqual(
    listIssuingFiles(paths).map((g) => [g.generation, g.current]),
    [
      [1, false],
      [2, true],
    ],
  );
  assert.equal(loadTrustedCaPems(paths).length, 3, 'root + both issuing CAs are trusted');
  // What signs new certificates (in-process and in the mint workers) is generation 2, with its own DP.
  const material = await loadAuthorityMaterial(paths, PASS, 'https://pki.example.jp/crl/issuing.crl');
  assert.equal(material.crlUrl, 'https://pki.example.jp/crl/issuing-2.crl');
  assert.equal(Buffer.from(material.issuingDer).toString('base64'), fs.readFileSync(paths.issuingCert, 'utf8').replace(/-----[^-]+-----|\s/g, ''));
  // Every generation's key is loadable for its CRL, with the DP of its own generation.
  const set = await loadCaSet(paths, PASS, undefined);
  assert.deepEqual(set.generations.map((g) => [g.generation, g.current, g.authority.issuing.subject]), [
    [1, false, 'CN=Kenshin Test Issuing CA 1, O=Kenshin Test'],
    [2, true, 'CN=Kenshin Test Issuing CA 2, O=Kenshin Test'],
  ]);
});

test('rotating twice gives generation 3 and keeps both retired generations', async () => {
  const paths = await freshCa();
  for (let i = 0; i < 2; i++) {
    const r = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
    r.commit();
    r.finish();
  }
  assert.match(cn(paths.issuingCert), /Issuing CA 3/);
  assert.deepEqual(fs.readdirSync(path.join(paths.caDir, 'retired')).sort(), ['issuing-1.crt', 'issuing-1.key', 'issuing-2.crt', 'issuing-2.key']);
  assert.deepEqual(listIssuingFiles(paths).map((g) => g.generation), [1, 2, 3]);
  // Generations come from the certificates, not from the files: pruning a retired one renumbers nothing.
  fs.rmSync(path.join(paths.caDir, 'retired', 'issuing-1.crt'));
  assert.equal(currentIssuingFiles(paths).generation, 3);
  assert.equal((await loadAuthorityMaterial(paths, PASS, 'https://h/crl/issuing.crl')).crlUrl, 'https://h/crl/issuing-3.crl');
});

test('a crash at any step leaves a usable issuing CA, and the next rotation completes the interrupted one', async () => {
  const paths = await freshCa();
  const gen1 = fs.readFileSync(paths.issuingCert, 'utf8');
  const currentSubject = async () => (await loadIssuingAuthority(paths, PASS, undefined)).issuing.subject;

  // Crash after archiving and staging, before the commit: generation 1 is still current, once.
  const abandoned = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  assert.match(await currentSubject(), /Issuing CA 1/);
  assert.deepEqual(listIssuingFiles(paths).map((g) => g.generation), [1], 'the archived copy of the current CA is not a second generation');
  abandoned.abort();

  // Crash after the commit, before the copy: ca/next is the current CA; ca/issuing.* still holds generation 1.
  const r = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  r.commit();
  assert.equal(fs.readFileSync(paths.issuingCert, 'utf8'), gen1);
  assert.match(await currentSubject(), /Issuing CA 2/);
  // …and halfway through the copy: the key already new, the certificate still old. Still consistent.
  fs.copyFileSync(path.join(paths.caDir, 'next', 'issuing.key'), paths.issuingKey);
  assert.match(await currentSubject(), /Issuing CA 2/);
  assert.deepEqual(listIssuingFiles(paths).map((g) => [g.generation, g.current]), [
    [1, false],
    [2, true],
  ]);

  // The next rotation finishes the copy first, says so, and goes on to generation 3.
  const again = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  assert.equal(again.finishedInterrupted, true);
  assert.equal(again.previous.generation, 2);
  again.commit();
  again.finish();
  assert.deepEqual(listIssuingFiles(paths).map((g) => g.generation), [1, 2, 3]);
  assert.match(await currentSubject(), /Issuing CA 3/);
  assert.equal(finishPendingRotation(paths), false);
});

test('a commit taken back (the audit transaction failed) leaves the previous CA current', async () => {
  const paths = await freshCa();
  const r = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  r.commit();
  r.abort();
  assert.equal(currentIssuingFiles(paths).generation, 1);
  assert.ok(!fs.existsSync(path.join(paths.caDir, 'next')));
  assert.deepEqual(fs.readdirSync(paths.caDir).filter((f) => f.startsWith('.')), []);
});

test('two rotations prepared at once: the second commit is refused and changes nothing', async () => {
  const paths = await freshCa();
  const a = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  const b = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  a.commit();
  assert.throws(() => b.commit(), (e: unknown) => e instanceof Refusal && e.code === 'ca_rotation_conflict');
  b.abort();
  a.finish();
  assert.deepEqual(listIssuingFiles(paths).map((g) => g.generation), [1, 2]);
  assert.equal(currentIssuingFiles(paths).fingerprint, a.next.fingerprint);
});

test('refusals before any write: not initialised, wrong passphrase, a damaged root key', async () => {
  const empty = dataPaths(tempDir());
  await assert.rejects(prepareRotation({ paths: empty, passphraseFromEnv: PASS, now: NOW }), (e: unknown) => e instanceof Refusal && e.code === 'not_initialized');

  const paths = await freshCa();
  const before = snapshot(paths.caDir);
  await assert.rejects(prepareRotation({ paths, passphraseFromEnv: 'not-the-passphrase', now: NOW }), (e: unknown) => {
    assert.ok(e instanceof Refusal);
    assert.equal(e.code, 'ca_key_unreadable');
    assert.match(e.message, /root\.key: wrong passphrase/);
    assert.ok(!e.message.includes('not-the-passphrase'));
    return true;
  });
  fs.copyFileSync(paths.issuingKey, paths.rootKey); // decrypts, but is not the root's key
  const swapped = snapshot(paths.caDir);
  await assert.rejects(prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW }), (e: unknown) => e instanceof Refusal && e.code === 'ca_key_unreadable' && /root\.key/.test(e.message));
  assert.deepEqual(snapshot(paths.caDir), swapped);
  assert.notDeepEqual(before, swapped);
});

test('--key-type: the new generation may change the key type; by default it keeps the current one', async () => {
  const paths = await freshCa();
  const kept = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  assert.equal(kept.next.keyType, 'p256');
  kept.abort();
  const r = await prepareRotation({ paths, passphraseFromEnv: PASS, keyType: 'p384', now: NOW });
  r.commit();
  r.finish();
  assert.match(run('openssl', ['x509', '-in', paths.issuingCert, '-noout', '-text']), /secp384r1|P-384/);
  assert.equal((await loadIssuingAuthority(paths, PASS, undefined)).keyType, 'p384');
});

test('with the root key kept offline (root.key absent) the issuing CAs still load; only the root CRL is not signed here', async () => {
  const paths = await freshCa();
  const r = await prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW });
  r.commit();
  r.finish();
  fs.renameSync(paths.rootKey, paths.rootKey + '.offline');
  const set = await loadCaSet(paths, PASS, undefined);
  assert.equal(set.root, undefined);
  assert.deepEqual(set.generations.map((g) => g.generation), [1, 2]);
  await assert.rejects(prepareRotation({ paths, passphraseFromEnv: PASS, now: NOW }), (e: unknown) => e instanceof Refusal && e.code === 'ca_key_unreadable' && /root\.key/.test(e.message));
});
