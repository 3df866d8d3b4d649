import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList, CRLNumber } from '@peculiar/asn1-x509';
import { dataPaths, type CaKeyType } from '../../src/config.js';
import { createHierarchy, loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { x509 } from '../../src/ca/x509.js';
import { keyAlgorithm, importPkcs8 } from '../../src/ca/keys.js';
import { decryptPkcs8Pem } from '../../src/ca/keystore.js';
import { pemEncode } from '../../src/ca/pem.js';
import { randomSerial } from '../../src/ca/serial.js';
import { tempDir } from '../helpers/tmp.js';
import { run } from '../helpers/openssl.js';

const NOW = new Date('2026-11-25T03:00:00Z');
const PASS = 'pw-for-tests';

/** The CRL of a CA key type, signed by the authority, checked by the real openssl. */
for (const keyType of ['p256', 'rsa3072'] as CaKeyType[]) {
  describe(`CRL signer with a ${keyType} issuing CA`, async () => {
    const dir = tempDir();
    const paths = dataPaths(dir);
    await createHierarchy({ paths, keyType, commonNamePrefix: 'Kenshin Test', passphraseFromEnv: PASS, now: NOW });
    const authority = await loadIssuingAuthority(paths, PASS, undefined);
    const chain = path.join(dir, 'chain.pem');
    fs.writeFileSync(chain, fs.readFileSync(paths.rootCert, 'utf8') + fs.readFileSync(paths.issuingCert, 'utf8'));
    const thisUpdate = new Date('2026-11-25T03:00:00.456Z');
    const nextUpdate = new Date('2026-11-27T03:00:00Z');

    const crlText = (der: Uint8Array, name: string) => {
      const file = path.join(dir, `${name}.pem`);
      fs.writeFileSync(file, pemEncode(der, 'X509 CRL'));
      const checked = run('openssl', ['crl', '-in', file, '-CAfile', chain, '-noout']);
      assert.match(checked, /verify OK/, 'openssl verifies the signature with our chain');
      return run('openssl', ['crl', '-in', file, '-noout', '-text']);
    };

    test('is byte for byte the TBSCertList that @peculiar/x509 generates for the same entries', async () => {
      const entries = Array.from({ length: 40 }, (_, i) => ({ serial: randomSerial().replace(/^0+/, ''), revokedAt: new Date(NOW.getTime() - i * 7_654_321), reason: (i % 5) + 1 }));
      entries.push({ serial: '1a2b3', revokedAt: NOW, reason: 6 }); // odd length
      entries.push({ serial: 'ff' + '00'.repeat(15), revokedAt: NOW, reason: 1 }); // top bit set: 0x00 pad
      const ours = await authority.signCrl({ number: 12, thisUpdate, nextUpdate, entries });
      const ski = authority.issuing.getExtension(x509.SubjectKeyIdentifierExtension)!;
      const key = await importPkcs8(decryptPkcs8Pem(fs.readFileSync(paths.issuingKey, 'utf8'), PASS, paths.issuingKey), keyType, false);
      const theirs = await x509.X509CrlGenerator.create({
        issuer: authority.issuing.subjectName,
        thisUpdate,
        nextUpdate,
        signingKey: key,
        signingAlgorithm: keyAlgorithm(keyType),
        extensions: [new x509.AuthorityKeyIdentifierExtension(ski.keyId, false), new x509.Extension('2.5.29.20', false, AsnConvert.serialize(new CRLNumber(12)))],
        entries: entries.map((e) => ({ serialNumber: e.serial.length % 2 ? '0' + e.serial : e.serial, revocationDate: e.revokedAt, reason: e.reason })),
      });
      const tbs = (der: ArrayBuffer | Uint8Array) => Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, CertificateList).tbsCertList));
      assert.deepEqual(tbs(ours), tbs(theirs.rawData));
      // And the whole structure re-encodes to itself: our DER is canonical.
      assert.deepEqual(Buffer.from(AsnConvert.serialize(AsnConvert.parse(ours, CertificateList))), Buffer.from(ours));
    });

    test('openssl verifies it and reads every entry, reason, date and extension', async () => {
      const entries = [
        { serial: '7f' + 'ab'.repeat(15), revokedAt: new Date('2026-01-02T03:04:05.999Z'), reason: 1 },
        { serial: '80' + '01'.repeat(15), revokedAt: new Date('2026-02-03T04:05:06Z'), reason: 0 },
        { serial: 'abc', revokedAt: new Date('2051-03-04T05:06:07Z'), reason: 5 },
      ];
      const text = crlText(await authority.signCrl({ number: 3, thisUpdate, nextUpdate, entries }), `three-${keyType}`);
      assert.match(text, /Version 2/);
      assert.match(text, /X509v3 CRL Number: \n\s+3\n/);
      assert.match(text, /X509v3 Authority Key Identifier/);
      assert.match(text, /Last Update: Nov 25 03:00:00 2026 GMT/);
      assert.match(text, /Next Update: Nov 27 03:00:00 2026 GMT/);
      assert.match(text, new RegExp(`Serial Number: 7F${'AB'.repeat(15)}\\n\\s+Revocation Date: Jan  2 03:04:05 2026 GMT\\n\\s+CRL entry extensions:\\n\\s+X509v3 CRL Reason Code: \\n\\s+Key Compromise`));
      // Unspecified: no reason extension at all (RFC 5280 §5.3.1), and no empty extensions list.
      assert.match(text, new RegExp(`Serial Number: 80${'01'.repeat(15)}\\n\\s+Revocation Date: Feb  3 04:05:06 2026 GMT\\n\\s+Serial Number`));
      assert.match(text, /Serial Number: 0ABC\n\s+Revocation Date: Mar {2}4 05:06:07 2051 GMT\n\s+CRL entry extensions:\n\s+X509v3 CRL Reason Code: \n\s+Cessation Of Operation/);
    });

    test('an empty CRL has no revokedCertificates and verifies', async () => {
      const der = await authority.signCrl({ number: 1, thisUpdate, nextUpdate, entries: [] });
      assert.match(crlText(der, `empty-${keyType}`), /No Revoked Certificates/);
      assert.equal(AsnConvert.parse(der, CertificateList).tbsCertList.revokedCertificates, undefined);
    });

    test('a large CRL verifies and lists every serial', async () => {
      // Multi-byte DER lengths at every level: the list is hundreds of kilobytes.
      const entries = Array.from({ length: 5_000 }, (_, i) => ({ serial: randomSerial().replace(/^0+/, ''), revokedAt: new Date(NOW.getTime() - i * 60_000), reason: i % 7 }));
      const der = await authority.signCrl({ number: 9, thisUpdate, nextUpdate, entries });
      assert.ok(der.length > 100_000);
      const text = crlText(der, `large-${keyType}`);
      const listed = new Set([...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.replace(/^0+/, '').toLowerCase()));
      assert.deepEqual(listed, new Set(entries.map((e) => e.serial)));
    });

    test('a serial listed twice or not hexadecimal is refused', async () => {
      const s = randomSerial();
      await assert.rejects(authority.signCrl({ number: 1, thisUpdate, nextUpdate, entries: [{ serial: s, revokedAt: NOW, reason: 1 }, { serial: s.toUpperCase(), revokedAt: NOW, reason: 2 }] }), /listed twice/);
      await assert.rejects(authority.signCrl({ number: 1, thisUpdate, nextUpdate, entries: [{ serial: '12zz', revokedAt: NOW, reason: 1 }] }), /not hexadecimal/);
    });
  });
}
