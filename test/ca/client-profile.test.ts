import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../src/config.js';
import { createHierarchy, loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { generateKeyPair } from '../../src/ca/keys.js';
import { buildSubject, type SubjectParts } from '../../src/ca/subject.js';
import { pemEncode } from '../../src/ca/pem.js';

const subjectDer = (p: SubjectParts) => new Uint8Array(buildSubject(p).toArrayBuffer());
import { randomSerial } from '../../src/ca/serial.js';
import { resolveValidity } from '../../src/certificates/validity.js';
import { tempDir } from '../helpers/tmp.js';
import { certText, run, tryRun } from '../helpers/openssl.js';
import { epochSeconds } from '../helpers/dates.js';

// A fixed date keeps the expected dates literal; openssl is handed the same instant (-attime).
const NOW = new Date('2026-11-25T03:00:00Z');

async function authority(crlUrl?: string) {
  const dir = tempDir();
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: 'pw', now: NOW });
  return { dir, paths, ca: await loadIssuingAuthority(paths, 'pw', crlUrl) };
}

for (const keyType of ['rsa2048', 'p256'] as const) {
  test(`client certificate profile (${keyType}) as openssl reads it`, async () => {
    const { dir, paths, ca } = await authority('http://crl.example.test/issuing.crl');
    const keys = await generateKeyPair(keyType);
    const { notBefore, notAfter } = resolveValidity({ kind: 'default' }, { years: 3, backdateMinutes: 5 }, NOW);
    const cert = ca.signClient({ subjectDer: subjectDer({ tenantCode: 'T0001', tenantName: 'テスト健診センター', label: '受付PC' }), publicKey: keys.publicKey, keyType, notBefore, notAfter });
    const pem = pemEncode(cert.der, 'CERTIFICATE');
    const text = certText(pem);
    assert.match(text, /Subject: CN=T0001, O=テスト健診センター, OU=受付PC/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, keyType === 'rsa2048' ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /Extended Key Usage: \s*TLS Web Client Authentication\n/);
    assert.doesNotMatch(text, /TLS Web Server Authentication/);
    assert.match(text, /Subject Key Identifier/);
    assert.match(text, /Authority Key Identifier/);
    assert.match(text, /URI:http:\/\/crl\.example\.test\/issuing\.crl/);
    // 3 calendar years from now; notBefore 5 minutes back for slow PC clocks.
    assert.match(text, /Not Before: Nov 25 02:55:00 2026 GMT/);
    assert.match(text, /Not After : Nov 25 03:00:00 2029 GMT/);
    const file = path.join(dir, 'client.pem');
    fs.writeFileSync(file, pem);
    assert.match(run('openssl', ['verify', '-attime', epochSeconds(NOW), '-purpose', 'sslclient', '-CAfile', paths.rootCert, '-untrusted', paths.issuingCert, file]), /OK/);
    assert.ok(!tryRun('openssl', ['verify', '-attime', epochSeconds(NOW), '-purpose', 'sslserver', '-CAfile', paths.rootCert, '-untrusted', paths.issuingCert, file]).ok);
  });
}

test('no CRL distribution point unless one is configured', async () => {
  const { ca } = await authority();
  const keys = await generateKeyPair('p256');
  const cert = ca.signClient({ subjectDer: subjectDer({ tenantCode: 'T1', tenantName: 'n' }), publicKey: keys.publicKey, keyType: 'p256', notBefore: NOW, notAfter: new Date(NOW.getTime() + 1e9) });
  assert.doesNotMatch(certText(pemEncode(cert.der, 'CERTIFICATE')), /CRL Distribution/);
});

test('serials are 128-bit random and positive even with the top bit set', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 500; i++) {
    const s = randomSerial();
    // 16 full bytes; a zero first byte is redrawn so the serial never shrinks below 128 bits.
    assert.match(s, /^(?!00)[0-9a-f]{32}$/);
    seen.add(s);
  }
  assert.equal(seen.size, 500);
  const { ca } = await authority();
  const keys = await generateKeyPair('p256');
  const serial = 'f' + '0'.repeat(31);
  const cert = ca.signClient({ subjectDer: subjectDer({ tenantCode: 'T1', tenantName: 'n' }), publicKey: keys.publicKey, keyType: 'p256', notBefore: NOW, notAfter: new Date(NOW.getTime() + 1e9), serial });
  // openssl prints a negative serial with a leading "-"; the DER carries a 0x00 pad byte instead.
  assert.match(run('openssl', ['x509', '-noout', '-serial'], pemEncode(cert.der, 'CERTIFICATE')), /^serial=F0{31}\n/);
  const asn1 = run('openssl', ['asn1parse'], pemEncode(cert.der, 'CERTIFICATE'));
  assert.match(asn1, /l= *17 prim: INTEGER +:F0{31}/);
});

test('a leap-day certificate expires on 28 February three years later', () => {
  const { notAfter } = resolveValidity({ kind: 'default' }, { years: 3, backdateMinutes: 5 }, new Date('2028-02-29T10:00:00Z'));
  assert.equal(notAfter.toISOString(), '2031-02-28T10:00:00.000Z');
});

test('our subject key identifier equals the library’s RFC 5280 method-1 value, for RSA and EC', async () => {
  const { keyIdentifier } = await import('../../src/ca/key-identifier.js');
  const { x509 } = await import('../../src/ca/x509.js');
  for (const type of ['rsa2048', 'p256', 'p384'] as const) {
    const keys = await generateKeyPair(type);
    const lib = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
    assert.equal(keyIdentifier(keys.publicKey), lib.keyId, type);
  }
});
