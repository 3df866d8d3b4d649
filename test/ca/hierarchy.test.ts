import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../src/config.js';
import { createHierarchy, loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { Refusal } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { run, tryRun } from '../helpers/openssl.js';
import { epochSeconds } from '../helpers/dates.js';

// A fixed date keeps the expected dates literal; openssl is handed the same instant (-attime).
const NOW = new Date('2026-11-25T03:00:00Z');

async function freshCa(passphrase: string | null = 'pw-for-tests') {
  const dir = tempDir();
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: passphrase ?? undefined, now: NOW });
  return paths;
}

test('init creates a root and an issuing CA that openssl accepts as a chain', async () => {
  const paths = await freshCa();
  assert.match(run('openssl', ['verify', '-attime', epochSeconds(NOW), '-CAfile', paths.rootCert, paths.issuingCert]), /OK/);
  const root = run('openssl', ['x509', '-in', paths.rootCert, '-noout', '-text']);
  assert.match(root, /CA:TRUE/);
  assert.match(root, /Certificate Sign, CRL Sign/);
  const issuing = run('openssl', ['x509', '-in', paths.issuingCert, '-noout', '-text']);
  assert.match(issuing, /CA:TRUE, pathlen:0/);
  assert.match(issuing, /Authority Key Identifier/);
  assert.match(run('openssl', ['x509', '-in', paths.issuingCert, '-noout', '-issuer']), /Kenshin Test Root CA/);
});

test('CA keys are encrypted PKCS#8, mode 0600, readable only with the passphrase', async () => {
  const paths = await freshCa();
  for (const key of [paths.rootKey, paths.issuingKey]) {
    assert.match(fs.readFileSync(key, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    assert.ok(tryRun('openssl', ['pkey', '-in', key, '-passin', 'pass:pw-for-tests', '-noout']).ok);
    assert.ok(!tryRun('openssl', ['pkey', '-in', key, '-passin', 'pass:wrong', '-noout']).ok);
  }
  // With the passphrase from the environment, none is written to disk.
  assert.ok(!fs.existsSync(paths.caPassphraseFile));
});

test('without KENSHIN_CA_PASSPHRASE a generated passphrase is kept beside the data, mode 0600', async () => {
  const paths = await freshCa(null);
  assert.equal(fs.statSync(paths.caPassphraseFile).mode & 0o777, 0o600);
  const pass = fs.readFileSync(paths.caPassphraseFile, 'utf8').trim();
  assert.ok(pass.length >= 40);
  assert.ok(tryRun('openssl', ['pkey', '-in', paths.issuingKey, '-passin', `pass:${pass}`, '-noout']).ok);
  const authority = await loadIssuingAuthority(paths, undefined, undefined);
  assert.equal(authority.keyType, 'p256');
});

test('a second init is refused and leaves the CA files untouched', async () => {
  const paths = await freshCa();
  const before = fs.readdirSync(paths.caDir).map((f) => fs.readFileSync(path.join(paths.caDir, f), 'utf8'));
  await assert.rejects(
    createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Other', passphraseFromEnv: 'x', now: NOW }),
    (e: unknown) => e instanceof Refusal && e.code === 'already_initialized',
  );
  const afterFiles = fs.readdirSync(paths.caDir).map((f) => fs.readFileSync(path.join(paths.caDir, f), 'utf8'));
  assert.deepEqual(afterFiles, before);
  assert.deepEqual(fs.readdirSync(paths.dataDir).filter((f) => f.startsWith('.ca-init')), []);
});

test('a wrong passphrase is a clear refusal that does not echo the secret', async () => {
  const paths = await freshCa();
  await assert.rejects(loadIssuingAuthority(paths, 'not-the-passphrase', undefined), (e: unknown) => {
    assert.ok(e instanceof Refusal);
    assert.equal(e.code, 'ca_key_unreadable');
    assert.ok(!e.message.includes('not-the-passphrase'));
    assert.match(e.message, /issuing\.key/);
    return true;
  });
});

test('an issuing key swapped for another CA key is refused', async () => {
  const a = await freshCa();
  const b = await freshCa();
  fs.copyFileSync(b.issuingKey, a.issuingKey);
  await assert.rejects(loadIssuingAuthority(a, 'pw-for-tests', undefined), (e: unknown) => e instanceof Refusal && e.code === 'ca_key_unreadable');
});
