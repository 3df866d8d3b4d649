// PKCS#12 delivery: checked against the real consumers (OpenSSL 3 CLI, NSS
// pk12util/certutil, a Node TLS handshake), not against our own parser.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { buildPkcs12, describePkcs12Profile, type Pkcs12Profile } from '../../src/ca/pkcs12.js';
import { bmpPassword, pkcs12Kdf, type Pkcs12KdfHash } from '../../src/ca/pkcs12-kdf.js';
import {
  generatePkcs12Password,
  PKCS12_PASSWORD_ALPHABET,
  PKCS12_PASSWORD_BITS,
  uniformRandomString,
} from '../../src/ca/pkcs12-password.js';

const FRIENDLY_NAME = 'テスト医院 有効期限 2029-11-25';

// ---------------------------------------------------------------- helpers

interface Run {
  status: number | null;
  out: string; // stdout + stderr: `openssl pkcs12 -info` prints its info on stderr
}

function run(cmd: string, args: string[], cwd: string): Run {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function ok(cmd: string, args: string[], cwd: string): string {
  const r = run(cmd, args, cwd);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

function pemCerts(text: string): X509Certificate[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map(
    (m) => new X509Certificate(m[0]),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function spacedHex(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}

type KeyType = 'rsa' | 'ec';

function newKey(type: KeyType): KeyObject {
  return type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
authorityKeyIdentifier = keyid
`;

interface Pki {
  dir: string;
  rootPem: string;
  issuingPem: string;
  clientKey: KeyObject;
  clientDer: Buffer;
  clientSerial: string;
  serverKeyPem: string;
  serverPem: string;
}

/** root -> issuing CA -> client + server, made by the openssl CLI (independent of the code under test). */
function makePki(type: KeyType): Pki {
  const dir = mkdtempSync(join(tmpdir(), `kenshin-p12-${type}-`));
  writeFileSync(join(dir, 'ca.cnf'), OPENSSL_CNF);
  const writeKey = (name: string, key: KeyObject) =>
    writeFileSync(join(dir, `${name}.key`), key.export({ type: 'pkcs8', format: 'pem' }));
  const rootKey = newKey(type);
  const issuingKey = newKey(type);
  const clientKey = newKey(type);
  const serverKey = newKey('ec');
  writeKey('root', rootKey);
  writeKey('issuing', issuingKey);
  writeKey('client', clientKey);
  writeKey('server', serverKey);

  ok('openssl', ['req', '-x509', '-new', '-key', 'root.key', '-subj', '/CN=Kenshin Test Root',
    '-days', '2', '-sha256', '-config', 'ca.cnf', '-extensions', 'root', '-out', 'root.pem'], dir);
  const sign = (name: string, subject: string, issuer: string, serial: string) => {
    ok('openssl', ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-config', 'ca.cnf', '-out', `${name}.csr`], dir);
    ok('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`,
      '-set_serial', `0x${serial}`, '-days', '2', '-sha256', '-extfile', 'ca.cnf', '-extensions', name,
      '-out', `${name}.pem`], dir);
  };
  // Top bit clear so the serial is positive with no leading 00 to trip the comparison.
  const clientSerial = `4B${randomBytes(15).toString('hex').toUpperCase()}`;
  sign('issuing', '/CN=Kenshin Test Issuing CA', 'root', randomBytes(8).toString('hex'));
  sign('client', '/O=Kenshin Test/CN=test-clinic-user', 'issuing', clientSerial);
  sign('server', '/CN=127.0.0.1', 'issuing', randomBytes(8).toString('hex'));

  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    rootPem: read('root.pem'),
    issuingPem: read('issuing.pem'),
    clientKey,
    clientDer: new X509Certificate(read('client.pem')).raw,
    clientSerial,
    serverKeyPem: read('server.key'),
    serverPem: read('server.pem'),
  };
}

/** The end-entity key bag as an independent parser (pkijs) sees it; the key bag sits outside the encryption. */
function inspectKeyBag(p12: Uint8Array) {
  const pfx = pkijs.PFX.fromBER(new Uint8Array(p12));
  const authSafe = pkijs.AuthenticatedSafe.fromBER((pfx.authSafe.content as asn1js.OctetString).getValue());
  const contentTypes = authSafe.safeContents.map((ci) => ci.contentType);
  const dataInfo = authSafe.safeContents.find((ci) => ci.contentType === '1.2.840.113549.1.7.1');
  assert.ok(dataInfo, 'no plain data ContentInfo for the key bag');
  const safeContents = pkijs.SafeContents.fromBER((dataInfo.content as asn1js.OctetString).getValue());
  assert.equal(safeContents.safeBags.length, 1);
  const bag = safeContents.safeBags[0]!;
  const attributeDer = (bag.bagAttributes ?? []).map((a) => Buffer.from(a.toSchema().toBER(false)));
  const attr = (type: string) => {
    const found = (bag.bagAttributes ?? []).filter((a) => a.type === type);
    assert.equal(found.length, 1, `attribute ${type}`);
    return found[0]!.values[0] as asn1js.BaseBlock & { valueBlock: { valueHexView: Uint8Array } };
  };
  const encryptedData = authSafe.safeContents.find((ci) => ci.contentType === '1.2.840.113549.1.7.6');
  assert.ok(encryptedData, 'no encryptedData ContentInfo for the certificates');
  return {
    version: pfx.version,
    contentTypes,
    bagId: bag.bagId,
    keyAlgorithm: (bag.bagValue as pkijs.PKCS8ShroudedKeyBag).encryptionAlgorithm.algorithmId,
    certAlgorithm: new pkijs.EncryptedData({ schema: encryptedData.content }).encryptedContentInfo
      .contentEncryptionAlgorithm.algorithmId,
    macAlgorithm: pfx.macData?.mac.digestAlgorithm.algorithmId,
    attributeDer,
    friendlyName: attr('1.2.840.113549.1.9.20'),
    localKeyId: attr('1.2.840.113549.1.9.21'),
  };
}

// ---------------------------------------------------------------- password

describe('generatePkcs12Password', () => {
  it('uses an alphabet without look-alikes', () => {
    for (const c of '0Oo1lIi') assert.ok(!PKCS12_PASSWORD_ALPHABET.includes(c), `alphabet contains ${c}`);
    assert.match(PKCS12_PASSWORD_ALPHABET, /^[\x21-\x7e]+$/);
    assert.equal(new Set(PKCS12_PASSWORD_ALPHABET).size, PKCS12_PASSWORD_ALPHABET.length, 'duplicate symbols bias the draw');
  });

  it('makes 4 groups of 5 symbols, >= 96 bits, never repeating, all symbols used', () => {
    const alphabet = new Set(PKCS12_PASSWORD_ALPHABET);
    const seen = new Set<string>();
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const pw = generatePkcs12Password();
      assert.match(pw, /^[^-]{5}-[^-]{5}-[^-]{5}-[^-]{5}$/);
      const symbols = pw.replaceAll('-', '');
      for (const c of symbols) {
        assert.ok(alphabet.has(c), `unexpected symbol ${c} in ${pw}`);
        counts.set(c, (counts.get(c) ?? 0) + 1);
      }
      assert.ok(symbols.length * Math.log2(alphabet.size) >= 96);
      seen.add(pw);
    }
    assert.equal(seen.size, 1000);
    assert.ok(PKCS12_PASSWORD_BITS >= 96);
    assert.equal(PKCS12_PASSWORD_BITS, 20 * Math.log2(PKCS12_PASSWORD_ALPHABET.length));
    // 20000 draws over 32 symbols: 625 expected each, sigma ~25. A biased or
    // truncated mapping lands far outside this band.
    assert.equal(counts.size, alphabet.size);
    for (const [c, n] of counts) assert.ok(n > 450 && n < 800, `symbol ${c} drawn ${n} times`);
  });

  it('rejects bytes above the last whole multiple of the alphabet size (no modulo bias)', () => {
    const alphabet55 = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789';
    assert.equal(alphabet55.length, 55); // 256 - 256 % 55 = 220: bytes 220..255 must be dropped
    const bytes = [255, 220, 0, 219, 54, 55, 221, 110];
    let pos = 0;
    const source = (n: number) => Uint8Array.from({ length: n }, () => bytes[pos++ % bytes.length]!);
    const s = uniformRandomString(alphabet55, 5, source);
    assert.equal(s, [0, 219 % 55, 54, 0, 0].map((i) => alphabet55[i]).join(''));
    // 3 symbols: 255 is the only rejected byte.
    const t = uniformRandomString('xyz', 3, () => Uint8Array.from([255, 254, 255, 0, 1]));
    assert.equal(t, `${'xyz'[254 % 3]}xy`);
  });
});

// ---------------------------------------------------------------- KDF

/** Straight transcription of RFC 7292 B.2 with BigInt arithmetic, to check the optimised code against. */
function referenceKdf(hashName: Pkcs12KdfHash, password: string, salt: Buffer, id: number, r: number, n: number): Buffer {
  const u = createHash(hashName).digest().length;
  const v = hashName === 'sha384' || hashName === 'sha512' ? 128 : 64;
  const rep = (x: Buffer) => Buffer.from(Array.from({ length: Math.ceil(x.length / v) * v }, (_, i) => x[i % x.length]!));
  let i = Buffer.concat([rep(salt), rep(bmpPassword(password))]);
  const out: Buffer[] = [];
  for (let block = 0; block < Math.ceil(n / u); block++) {
    let a = createHash(hashName).update(Buffer.alloc(v, id)).update(i).digest();
    for (let k = 1; k < r; k++) a = createHash(hashName).update(a).digest();
    out.push(a);
    const b = BigInt(`0x${rep(a).subarray(0, v).toString('hex')}`);
    const mod = 1n << BigInt(8 * v);
    const next: Buffer[] = [];
    for (let j = 0; j < i.length; j += v) {
      const ij = (BigInt(`0x${i.subarray(j, j + v).toString('hex')}`) + b + 1n) % mod;
      next.push(Buffer.from(ij.toString(16).padStart(2 * v, '0'), 'hex'));
    }
    i = Buffer.concat(next);
  }
  return Buffer.concat(out).subarray(0, n);
}

describe('pkcs12Kdf (RFC 7292 Appendix B)', () => {
  it('matches the published SHA-1 vectors (S. Henson test.txt, as used by OpenSSL/GnuTLS/BouncyCastle)', () => {
    const vectors: [1 | 2 | 3, string, string, number, number, string][] = [
      [1, 'smeg', '0A58CF64530D823F', 1, 24, '8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3'],
      [2, 'smeg', '0A58CF64530D823F', 1, 8, '79993dfe048d3b76'],
      [1, 'smeg', '642B99AB44FB4B1F', 1, 24, 'f3a95fec48d7711e985cfe67908c5ab79fa3d7c5caa5d966'],
      [2, 'smeg', '642B99AB44FB4B1F', 1, 8, 'c0a38d64a79bea1d'],
      [3, 'smeg', '3D83C0E4546AC140', 1, 20, '8d967d88f6caa9d714800ab3d48051d63f73a312'],
      [1, 'queeg', '05DEC959ACFF72F7', 1000, 24, 'ed2034e36328830ff09df1e1a07dd357185dac0d4f9eb3d4'],
      [2, 'queeg', '05DEC959ACFF72F7', 1000, 8, '11dedad7758d4860'],
      [1, 'queeg', '1682C0FC5B3F7EC5', 1000, 24, '483dd6e919d7de2e8e648ba8f862f3fbfbdc2bcb2c02957f'],
      [2, 'queeg', '1682C0FC5B3F7EC5', 1000, 8, '9d461d1b00355c50'],
      [3, 'queeg', '263216FCC2FAB31C', 1000, 20, '5ec4c7a80df652294c3925b6489a7ab857c83476'],
    ];
    for (const [id, password, salt, iterations, length, expected] of vectors) {
      const got = pkcs12Kdf({ hash: 'sha1', password, salt: Buffer.from(salt, 'hex'), id, iterations, length });
      assert.equal(got.toString('hex'), expected, `${password}/${salt}/id ${id}`);
    }
  });

  it('matches a plain RFC transcription for other hashes, lengths and salts', () => {
    const cases: [Pkcs12KdfHash, number, number, number][] = [
      ['sha1', 0, 2048, 24], ['sha1', 17, 3, 100], ['sha1', 64, 2, 41], ['sha1', 65, 1, 20],
      ['sha256', 16, 2048, 32], ['sha256', 8, 5, 70], ['sha512', 20, 3, 130], ['sha384', 3, 2, 49],
    ];
    for (const [hashName, saltLength, iterations, length] of cases) {
      const salt = randomBytes(saltLength);
      const password = generatePkcs12Password();
      for (const id of [1, 2, 3] as const) {
        assert.deepEqual(
          pkcs12Kdf({ hash: hashName, password, salt, id, iterations, length }),
          referenceKdf(hashName, password, salt, id, iterations, length),
          `${hashName} salt ${saltLength} r ${iterations} n ${length} id ${id}`,
        );
      }
    }
  });

  describe('reproduces what OpenSSL wrote', () => {
    let pki: Pki;
    before(() => {
      pki = makePki('ec');
    });
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    for (const macalg of ['sha1', 'sha256'] as const) {
      it(`MAC key (ID 3, ${macalg}) and, for 3DES, key and IV (IDs 1, 2)`, () => {
        const password = 'K7QXM-4HZPA-W9RNB-3TEFJ';
        const out = `openssl-${macalg}.p12`;
        ok('openssl', ['pkcs12', '-export', '-inkey', 'client.key', '-in', 'client.pem',
          '-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', macalg,
          '-passout', `pass:${password}`, '-out', out], pki.dir);
        const pfx = pkijs.PFX.fromBER(readFileSync(join(pki.dir, out)));
        const macData = pfx.macData!;
        const authSafeDer = Buffer.from((pfx.authSafe.content as asn1js.OctetString).getValue());
        const macKey = pkcs12Kdf({
          hash: macalg, password, id: 3, length: macalg === 'sha1' ? 20 : 32,
          salt: macData.macSalt.valueBlock.valueHexView, iterations: macData.iterations ?? 1,
        });
        assert.equal(macData.iterations, 2048);
        assert.deepEqual(
          createHmac(macalg, macKey).update(authSafeDer).digest(),
          Buffer.from(macData.mac.digest.valueBlock.valueHexView),
        );

        const authSafe = pkijs.AuthenticatedSafe.fromBER(authSafeDer);
        const keyInfo = authSafe.safeContents.find((ci) => ci.contentType === '1.2.840.113549.1.7.1')!;
        const bag = pkijs.SafeContents.fromBER((keyInfo.content as asn1js.OctetString).getValue()).safeBags[0]!;
        const shrouded = bag.bagValue as pkijs.PKCS8ShroudedKeyBag;
        assert.equal(shrouded.encryptionAlgorithm.algorithmId, '1.2.840.113549.1.12.1.3');
        const params = shrouded.encryptionAlgorithm.algorithmParams as asn1js.Sequence;
        const [saltNode, iterNode] = params.valueBlock.value as [asn1js.OctetString, asn1js.Integer];
        const kdf = { hash: 'sha1', password, salt: saltNode.valueBlock.valueHexView, iterations: iterNode.valueBlock.valueDec } as const;
        const decipher = createDecipheriv(
          'des-ede3-cbc',
          pkcs12Kdf({ ...kdf, id: 1, length: 24 }),
          pkcs12Kdf({ ...kdf, id: 2, length: 8 }),
        );
        const pkcs8 = Buffer.concat([decipher.update(shrouded.encryptedData.valueBlock.valueHexView), decipher.final()]);
        assert.deepEqual(pkcs8, pki.clientKey.export({ type: 'pkcs8', format: 'der' }));
      });
    }
  });
});

// ---------------------------------------------------------------- buildPkcs12

const EXPECTED: Record<Pkcs12Profile, { info: RegExp[]; keyOid: string; macOid: string }> = {
  compatible: {
    info: [
      /^MAC: sha1, Iteration 2048$/m,
      /^PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048$/m,
      /^Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048$/m,
    ],
    keyOid: '1.2.840.113549.1.12.1.3',
    macOid: '1.3.14.3.2.26',
  },
  modern: {
    info: [
      /^MAC: sha256, Iteration 2048$/m,
      /^PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256$/m,
      /^Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256$/m,
    ],
    keyOid: '1.2.840.113549.1.5.13',
    macOid: '2.16.840.1.101.3.4.2.1',
  },
};

for (const keyType of ['rsa', 'ec'] as const) {
  describe(`buildPkcs12 with a ${keyType === 'rsa' ? 'RSA-2048' : 'ECDSA P-256'} client key`, () => {
    let pki: Pki;
    before(() => {
      pki = makePki(keyType);
    });
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    for (const profile of ['compatible', 'modern'] as const) {
      describe(`profile ${profile}`, () => {
        const password = generatePkcs12Password();
        let file: string;
        let p12: Uint8Array;
        before(async () => {
          p12 = await buildPkcs12({
            privateKeyPkcs8: pki.clientKey.export({ type: 'pkcs8', format: 'der' }),
            certificate: pki.clientDer,
            chain: [new X509Certificate(pki.issuingPem).raw],
            friendlyName: FRIENDLY_NAME,
            password,
            profile,
          });
          file = `${profile}.p12`;
          writeFileSync(join(pki.dir, file), p12);
        });

        it('has the documented structure and attributes (pkijs)', () => {
          const bag = inspectKeyBag(p12);
          assert.equal(bag.version, 3);
          // OpenSSL's order: encrypted certificates first, then the key.
          assert.deepEqual(bag.contentTypes, ['1.2.840.113549.1.7.6', '1.2.840.113549.1.7.1']);
          assert.equal(bag.bagId, '1.2.840.113549.1.12.10.1.2');
          assert.equal(bag.keyAlgorithm, EXPECTED[profile].keyOid);
          assert.equal(bag.certAlgorithm, EXPECTED[profile].keyOid);
          assert.equal(bag.macAlgorithm, EXPECTED[profile].macOid);
          assert.ok(bag.friendlyName instanceof asn1js.BmpString);
          assert.deepEqual(
            Buffer.from(bag.friendlyName.valueBlock.valueHexView),
            Buffer.from(FRIENDLY_NAME, 'utf16le').swap16(),
          );
          // DER: SET OF members in ascending order of their encodings.
          assert.equal(bag.attributeDer.length, 2);
          assert.ok(Buffer.compare(bag.attributeDer[0]!, bag.attributeDer[1]!) < 0, 'bag attributes not in DER order');
          assert.ok(bag.localKeyId instanceof asn1js.OctetString);
          assert.deepEqual(
            Buffer.from(bag.localKeyId.valueBlock.valueHexView),
            createHash('sha1').update(pki.clientDer).digest(),
          );
          assert.match(describePkcs12Profile(profile).keyEncryption, profile === 'compatible' ? /3-KeyTripleDES/ : /AES-256-CBC/);
        });

        it('openssl pkcs12 -info reads it with only the default provider (no -legacy) and names the expected algorithms', () => {
          const info = ok('openssl', ['pkcs12', '-info', '-in', file, '-passin', `pass:${password}`, '-noout',
            '-provider', 'default'], pki.dir);
          for (const re of EXPECTED[profile].info) assert.match(info, re);
          assert.doesNotMatch(info, /RC2|RC4|40-bit/i);
          assert.equal(info.match(/^Certificate bag$/gm)?.length, 2, 'end-entity + issuing CA');
          assert.equal(info.match(/^Shrouded Keybag/gm)?.length, 1);
        });

        it('openssl refuses a wrong password', () => {
          const r = run('openssl', ['pkcs12', '-info', '-in', file, '-passin', `pass:${password}X`, '-noout'], pki.dir);
          assert.notEqual(r.status, 0);
          assert.match(r.out, /Mac verify error/);
        });

        it('openssl extracts the key, the cert and the issuing CA (not the root); the cert verifies for sslclient', () => {
          const pass = ['-passin', `pass:${password}`];
          const all = ok('openssl', ['pkcs12', '-in', file, '-nodes', ...pass], pki.dir);
          const keyIds = [...all.matchAll(/localKeyID: ([0-9A-F ]+?) ?$/gm)].map((m) => m[1]);
          assert.deepEqual(keyIds, Array(2).fill(spacedHex(createHash('sha1').update(pki.clientDer).digest())),
            'same localKeyID on the key bag and the end-entity cert bag, none on the CA');

          const client = pemCerts(ok('openssl', ['pkcs12', '-in', file, '-clcerts', '-nokeys', ...pass], pki.dir));
          assert.equal(client.length, 1);
          assert.deepEqual(client[0]!.raw, pki.clientDer);
          const chain = pemCerts(ok('openssl', ['pkcs12', '-in', file, '-cacerts', '-nokeys', ...pass], pki.dir));
          const root = new X509Certificate(pki.rootPem);
          const issuing = new X509Certificate(pki.issuingPem);
          assert.deepEqual(chain.map((c) => c.fingerprint256), [issuing.fingerprint256]);
          assert.ok(!chain.some((c) => c.fingerprint256 === root.fingerprint256), 'root must not be in the p12');

          const keyPem = ok('openssl', ['pkcs12', '-in', file, '-nocerts', '-nodes', ...pass], pki.dir);
          const keyMatch = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(keyPem);
          assert.ok(keyMatch, 'no private key extracted');
          assert.equal(client[0]!.checkPrivateKey(createPrivateKey(keyMatch[0])), true);

          writeFileSync(join(pki.dir, `${profile}-client.pem`), client[0]!.toString());
          writeFileSync(join(pki.dir, `${profile}-chain.pem`), chain.map((c) => c.toString()).join(''));
          const verify = ok('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', 'root.pem',
            '-untrusted', `${profile}-chain.pem`, `${profile}-client.pem`], pki.dir);
          assert.match(verify, new RegExp(`^${profile}-client\\.pem: OK$`, 'm'));
        });

        it('NSS pk12util imports it; the cert is listed under the friendlyName and the key is present', () => {
          const db = `sql:nss-${profile}`;
          mkdirSync(join(pki.dir, `nss-${profile}`));
          ok('certutil', ['-N', '-d', db, '--empty-password'], pki.dir);
          const bad = run('pk12util', ['-i', file, '-d', db, '-W', 'wrong-password'], pki.dir);
          assert.notEqual(bad.status, 0, 'pk12util accepted a wrong password');
          assert.match(ok('pk12util', ['-i', file, '-d', db, '-W', password], pki.dir), /PKCS12 IMPORT SUCCESSFUL/);

          const list = ok('certutil', ['-L', '-d', db], pki.dir);
          assert.match(list, new RegExp(`^${escapeRegExp(FRIENDLY_NAME)}\\s+u,u,u$`, 'm'));
          const byNickname = pemCerts(ok('certutil', ['-L', '-d', db, '-n', FRIENDLY_NAME, '-a'], pki.dir));
          assert.deepEqual(byNickname.map((c) => c.raw), [pki.clientDer]);
          const keys = ok('certutil', ['-K', '-d', db], pki.dir);
          assert.match(keys, new RegExp(`^<\\s*0> ${keyType}\\s+[0-9a-f]{40}\\s+${escapeRegExp(FRIENDLY_NAME)}$`, 'm'));
          assert.doesNotMatch(keys, /<\s*1>/, 'exactly one key');
        });

        it('works as the client identity of a real mutual-TLS handshake (Node tls, pfx + passphrase)', async () => {
          const seen = await mutualTls(pki, p12, password);
          assert.equal(seen.authorizationError, null);
          assert.equal(seen.authorized, true);
          assert.equal(seen.serial, pki.clientSerial);
          assert.equal(seen.serial, new X509Certificate(pki.clientDer).serialNumber);
          assert.equal(seen.reply, 'hello from the server');
        });
      });
    }
  });
}

interface Seen {
  authorized: boolean;
  authorizationError: Error | null;
  serial: string;
  reply: string;
}

async function mutualTls(pki: Pki, p12: Uint8Array, passphrase: string): Promise<Seen> {
  const server = tls.createServer({
    key: pki.serverKeyPem,
    cert: pki.serverPem + pki.issuingPem,
    ca: pki.rootPem, // only the root: the client must send the issuing CA from its p12
    requestCert: true,
    rejectUnauthorized: true,
  });
  try {
    const onServer = new Promise<Omit<Seen, 'reply'>>((resolve, reject) => {
      server.once('secureConnection', (socket) => {
        resolve({
          authorized: socket.authorized,
          authorizationError: socket.authorizationError ?? null,
          serial: socket.getPeerCertificate().serialNumber,
        });
        socket.end('hello from the server');
      });
      server.once('tlsClientError', reject);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const reply = new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, pfx: Buffer.from(p12), passphrase, ca: pki.rootPem });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    const [fromServer, text] = await Promise.all([onServer, reply]);
    return { ...fromServer, reply: text };
  } finally {
    server.close();
  }
}

// ---------------------------------------------------------------- input validation

describe('buildPkcs12 input checks', () => {
  let pki: Pki;
  let base: Parameters<typeof buildPkcs12>[0];
  before(() => {
    pki = makePki('ec');
    base = {
      privateKeyPkcs8: pki.clientKey.export({ type: 'pkcs8', format: 'der' }),
      certificate: pki.clientDer,
      chain: [],
      friendlyName: FRIENDLY_NAME,
      password: 'ABCDE-FGHJK-LMNPQ-RSTUV',
      profile: 'compatible',
    };
  });
  after(() => rmSync(pki.dir, { recursive: true, force: true }));

  for (const password of ['パスワード', 'ABCDE-FGHJK-é', 'ＡＢＣＤＥ', 'tab\tinside', '']) {
    it(`refuses the password ${JSON.stringify(password)}`, async () => {
      for (const profile of ['compatible', 'modern'] as const) {
        await assert.rejects(buildPkcs12({ ...base, profile, password }), /printable ASCII/);
      }
    });
  }

  it('accepts a friendlyName outside the BMP (surrogate pair, e.g. 𠮷)', async () => {
    const p12 = await buildPkcs12({ ...base, friendlyName: '𠮷野医院' });
    const bag = inspectKeyBag(p12);
    assert.deepEqual(Buffer.from(bag.friendlyName.valueBlock.valueHexView).toString('hex'), 'd842dfb7' + '91ce' + '533b' + '9662');
  });

  it('control: the same openssl check rejects an OpenSSL -legacy (RC2-40) file', () => {
    ok('openssl', ['pkcs12', '-export', '-legacy', '-inkey', 'client.key', '-in', 'client.pem',
      '-passout', `pass:${base.password}`, '-out', 'legacy.p12'], pki.dir);
    const r = run('openssl', ['pkcs12', '-info', '-in', 'legacy.p12', '-passin', `pass:${base.password}`, '-noout',
      '-provider', 'default'], pki.dir);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /RC2/);
  });

  it('returns bytes that own their ArrayBuffer (safe to transfer to/from a worker)', async () => {
    const p12 = await buildPkcs12(base);
    assert.equal(p12.byteOffset, 0);
    assert.equal(p12.buffer.byteLength, p12.byteLength);
  });

  it('honours a custom iteration count (INTEGER with the high bit set needs a leading 00)', async () => {
    writeFileSync(join(pki.dir, 'iter200.p12'), await buildPkcs12({ ...base, iterations: 200 }));
    const info = ok('openssl', ['pkcs12', '-info', '-in', 'iter200.p12', '-passin', `pass:${base.password}`, '-noout'], pki.dir);
    assert.match(info, /^MAC: sha1, Iteration 200$/m);
    assert.match(info, /^Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 200$/m);
  });

  it('refuses chain entries that are not DER certificates (e.g. PEM)', async () => {
    await assert.rejects(buildPkcs12({ ...base, chain: [Buffer.from(pki.issuingPem)] }), /DER-encoded/);
    const der = new X509Certificate(pki.issuingPem).raw;
    await assert.rejects(buildPkcs12({ ...base, chain: [der.subarray(0, der.length - 1)] }), /DER-encoded/);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const other = newKey('ec').export({ type: 'pkcs8', format: 'der' });
    await assert.rejects(buildPkcs12({ ...base, privateKeyPkcs8: other }), /does not match/);
  });

  it('refuses a bad friendlyName, iteration count or profile', async () => {
    await assert.rejects(buildPkcs12({ ...base, friendlyName: '' }), /friendlyName/);
    await assert.rejects(buildPkcs12({ ...base, friendlyName: 'a\uD800b' }), /surrogate/);
    await assert.rejects(buildPkcs12({ ...base, iterations: 0 }), /iterations/);
    await assert.rejects(buildPkcs12({ ...base, iterations: 1.5 }), /iterations/);
    await assert.rejects(buildPkcs12({ ...base, profile: 'legacy' as Pkcs12Profile }), /profile/);
  });
});
