// PKCS#12 (RFC 7292) files that deliver a client certificate and its key.
//
// Layout, the same as `openssl pkcs12 -export` so importers see what they
// are tested against:
//   PFX v3
//     authSafe: data -> AuthenticatedSafe
//       [0] encryptedData -> SafeContents: certBag(end entity) + certBag(chain...)
//       [1] data          -> SafeContents: pkcs8ShroudedKeyBag
//     macData: HMAC over the AuthenticatedSafe DER, key from the RFC 7292 KDF
//
// localKeyId (SHA-1 of the certificate, like OpenSSL) pairs the key with its
// certificate: importers (Windows, NSS) rely on it, not on public-key
// matching, to attach the key to the certificate. friendlyName becomes the
// Windows "Friendly name" and the NSS nickname (what Firefox shows when it
// asks which certificate to send).
//
// Profiles:
// * compatible: pbeWithSHAAnd3-KeyTripleDES-CBC for key AND certificates,
//   HMAC-SHA1 MAC. Imports everywhere: every Windows, macOS Keychain,
//   Firefox/NSS, OpenSSL 3 and Node without the legacy provider. OpenSSL's
//   pre-3.0 default encrypted the certificates with RC2-40, which OpenSSL 3
//   (hence Node's tls `pfx`) refuses without `-legacy`; 3DES is in the
//   default provider, so it is the one legacy cipher that works on both
//   old and new stacks.
// * modern: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for both, HMAC-SHA256
//   MAC via the RFC 7292 KDF: the algorithms of `openssl pkcs12 -export` in
//   OpenSSL 3. Windows before 10 1709 / Server 2019 cannot import it, and
//   macOS Keychain has long failed on exactly these files ("MAC verification
//   failed during PKCS12 import (wrong password?)"). Only for importers known
//   to handle it.

import {
  createCipheriv,
  createHmac,
  createPrivateKey,
  hash,
  pbkdf2,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import { promisify } from 'node:util';
import { pkcs12Kdf, pkcs12KdfDigestLength, PKCS12_KDF_ID, type Pkcs12KdfHash } from './pkcs12-kdf.js';

const pbkdf2Async = promisify(pbkdf2);

export type Pkcs12Profile = 'compatible' | 'modern';

export interface Pkcs12Input {
  /** Unencrypted PKCS#8 DER of the end-entity key (RSA or EC P-256). */
  privateKeyPkcs8: Uint8Array;
  /** DER of the end-entity certificate. */
  certificate: Uint8Array;
  /** DER of CA certificates to include (the issuing CA; never the root: the caller decides). */
  chain: Uint8Array[];
  /** Set on the key bag and the end-entity cert bag. */
  friendlyName: string;
  /** Printable ASCII; see assertPassword. */
  password: string;
  profile: Pkcs12Profile;
  /** Default 2048 (see pkcs12-password.ts for why that is enough). */
  iterations?: number;
  /**
   * The caller generated this key and had its public key certified moments ago (ca/mint.ts), so
   * the pair is known to match and the ~1-2 ms check is skipped. Anyone packing a key and a
   * certificate that came from elsewhere must leave this unset.
   */
  pairGeneratedTogether?: boolean;
}

export const PKCS12_DEFAULT_ITERATIONS = 2048;

/** 128-bit salts (NIST SP 800-132); importers accept any length (Windows itself writes 20). */
const SALT_LENGTH = 16;

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbeWithSHAAnd3KeyTripleDESCBC: '1.2.840.113549.1.12.1.3',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

export interface Pkcs12ProfileDescription {
  keyEncryption: string;
  certificateEncryption: string;
  mac: string;
  iterations: number;
  importsOn: string;
}

const PROFILES: Readonly<Record<Pkcs12Profile, Pkcs12ProfileDescription>> = {
  compatible: {
    keyEncryption: `pbeWithSHAAnd3-KeyTripleDES-CBC (${OID.pbeWithSHAAnd3KeyTripleDESCBC}), RFC 7292 KDF over SHA-1`,
    certificateEncryption: `pbeWithSHAAnd3-KeyTripleDES-CBC (${OID.pbeWithSHAAnd3KeyTripleDESCBC}), RFC 7292 KDF over SHA-1`,
    mac: 'HMAC-SHA1, key from the RFC 7292 KDF over SHA-1',
    iterations: PKCS12_DEFAULT_ITERATIONS,
    importsOn: 'all Windows versions, macOS Keychain, Firefox/NSS, OpenSSL 1.x and 3.x (no -legacy), Node tls pfx',
  },
  modern: {
    keyEncryption: `PBES2 (${OID.pbes2}): PBKDF2-HMAC-SHA256, AES-256-CBC`,
    certificateEncryption: `PBES2 (${OID.pbes2}): PBKDF2-HMAC-SHA256, AES-256-CBC`,
    mac: 'HMAC-SHA256, key from the RFC 7292 KDF over SHA-256',
    iterations: PKCS12_DEFAULT_ITERATIONS,
    importsOn: 'OpenSSL 3 (its default format), Firefox/NSS, Node tls pfx, Windows 10 1709+ / Server 2019+; not older Windows, not reliably macOS Keychain',
  },
};

export function describePkcs12Profile(profile: Pkcs12Profile): Pkcs12ProfileDescription {
  const description = PROFILES[profile];
  if (description === undefined) throw new TypeError(`unknown PKCS#12 profile: ${String(profile)}`);
  return description;
}

export async function buildPkcs12(input: Pkcs12Input): Promise<Uint8Array> {
  const { password, profile, friendlyName } = input;
  const iterations = input.iterations ?? PKCS12_DEFAULT_ITERATIONS;
  describePkcs12Profile(profile);
  assertPassword(password);
  assertFriendlyName(friendlyName);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) {
    throw new RangeError('iterations must be an integer in 1..10000000');
  }
  // Views, not copies: Buffer.from(uint8array) would copy the plaintext key
  // into Node's shared 8 KiB Buffer pool, next to whatever else lives there.
  const privateKey = view(input.privateKeyPkcs8);
  const certificate = view(input.certificate);
  const chain = input.chain.map(view);
  if (!input.pairGeneratedTogether) assertKeyMatchesCertificate(privateKey, certificate);
  chain.forEach(assertDerSequence);

  const attributes = [
    attribute(OID.friendlyName, tlv(0x1e, utf16be(friendlyName))), // BMPString
    attribute(OID.localKeyId, octetString(hash('sha1', certificate, 'buffer'))),
  ];

  const certBags = [
    safeBag(OID.certBag, certBag(certificate), attributes),
    ...chain.map((c) => safeBag(OID.certBag, certBag(c), [])),
  ];
  const [certEncryption, keyEncryption] = await Promise.all([
    encrypt(profile, password, iterations, sequence(...certBags)),
    encrypt(profile, password, iterations, privateKey),
  ]);
  const keyBag = safeBag(
    OID.pkcs8ShroudedKeyBag,
    sequence(keyEncryption.algorithm, octetString(keyEncryption.ciphertext)),
    attributes,
  );

  const authenticatedSafe = sequence(
    contentInfo(
      OID.encryptedData,
      sequence(
        integer(0),
        sequence(oid(OID.data), certEncryption.algorithm, tlv(0x80, certEncryption.ciphertext)), // [0] IMPLICIT OCTET STRING
      ),
    ),
    contentInfo(OID.data, octetString(sequence(keyBag))),
  );

  const pfx = sequence(
    integer(3),
    contentInfo(OID.data, octetString(authenticatedSafe)),
    macData(profile === 'compatible' ? 'sha1' : 'sha256', password, iterations, authenticatedSafe),
  );
  // A copy with its own exact-size ArrayBuffer: a small Buffer is a slice of
  // the shared pool, so `.buffer` (e.g. a postMessage transfer list; Node 20
  // then silently copies the whole pool) would carry unrelated memory along.
  return new Uint8Array(pfx);
}

function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Printable ASCII only. The RFC 7292 KDF (3DES bags and the MAC of every
 * profile) hashes the password as UTF-16BE, PBES2 hashes its UTF-8 bytes, and
 * importers disagree on how to get from what the user typed to either (code
 * page vs UTF-8, NFC vs NFD on macOS). With ASCII all encodings agree. An empty
 * password is refused too: importers differ on "empty" vs "absent".
 */
function assertPassword(password: string): void {
  if (typeof password !== 'string' || !/^[\x20-\x7e]+$/.test(password)) {
    throw new Error(
      'PKCS#12 password must be non-empty printable ASCII: the PKCS#12 KDF encodes the password as UTF-16 ' +
        'while PBES2 uses UTF-8, so a non-ASCII password does not open the same way in every importer',
    );
  }
}

/**
 * BMPString is formally UCS-2; characters beyond the BMP (e.g. 𠮷 in a clinic
 * name) are written as UTF-16 surrogate pairs, which is what Windows and
 * OpenSSL do and read back. Lone surrogates cannot be encoded meaningfully.
 */
function assertFriendlyName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new Error('PKCS#12 friendlyName must be a non-empty string');
  if (/\p{Surrogate}/u.test(name)) throw new Error('PKCS#12 friendlyName contains a lone UTF-16 surrogate');
}

/** A mismatched pair would import "successfully" and then fail at the TLS handshake in the clinic. */
function assertKeyMatchesCertificate(pkcs8: Buffer, certificate: Buffer): void {
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  if (!new X509Certificate(certificate).checkPrivateKey(key)) {
    throw new Error('PKCS#12: the private key does not match the end-entity certificate');
  }
}

interface Encryption {
  /** DER AlgorithmIdentifier */
  algorithm: Buffer;
  ciphertext: Buffer;
}

async function encrypt(profile: Pkcs12Profile, password: string, iterations: number, plaintext: Buffer): Promise<Encryption> {
  const salt = randomBytes(SALT_LENGTH);
  if (profile === 'compatible') {
    const kdf = { hash: 'sha1', password, salt, iterations } as const;
    const key = pkcs12Kdf({ ...kdf, id: PKCS12_KDF_ID.key, length: 24 });
    const iv = pkcs12Kdf({ ...kdf, id: PKCS12_KDF_ID.iv, length: 8 });
    return {
      algorithm: sequence(oid(OID.pbeWithSHAAnd3KeyTripleDESCBC), sequence(octetString(salt), integer(iterations))),
      ciphertext: cipher('des-ede3-cbc', key, iv, plaintext),
    };
  }
  // PBES2 feeds the password bytes straight to PBKDF2 (OpenSSL: as typed,
  // i.e. UTF-8); identical to the KDF's view only because it is ASCII.
  // The async pbkdf2 runs on the libuv pool, off the main thread.
  const key = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const iv = randomBytes(16);
  return {
    algorithm: sequence(
      oid(OID.pbes2),
      sequence(
        sequence(
          oid(OID.pbkdf2),
          // keyLength omitted as OpenSSL does for fixed-key-size ciphers; the
          // PRF is explicit because the DEFAULT is hmacWithSHA1.
          sequence(octetString(salt), integer(iterations), sequence(oid(OID.hmacWithSHA256), NULL)),
        ),
        sequence(oid(OID.aes256Cbc), octetString(iv)),
      ),
    ),
    ciphertext: cipher('aes-256-cbc', key, iv, plaintext),
  };
}

function cipher(name: string, key: Buffer, iv: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv(name, key, iv); // PKCS#7 padding, as RFC 7292 and RFC 8018 require
  return Buffer.concat([c.update(plaintext), c.final()]);
}

function macData(hashName: Pkcs12KdfHash & ('sha1' | 'sha256'), password: string, iterations: number, authenticatedSafe: Buffer): Buffer {
  const salt = randomBytes(SALT_LENGTH);
  const key = pkcs12Kdf({
    hash: hashName,
    password,
    salt,
    id: PKCS12_KDF_ID.mac,
    iterations,
    length: pkcs12KdfDigestLength(hashName),
  });
  const mac = createHmac(hashName, key).update(authenticatedSafe).digest();
  return sequence(sequence(sequence(oid(OID[hashName]), NULL), octetString(mac)), octetString(salt), integer(iterations));
}

function certBag(certificate: Buffer): Buffer {
  return sequence(oid(OID.x509Certificate), explicit0(octetString(certificate)));
}

function safeBag(bagId: string, value: Buffer, attributes: Buffer[]): Buffer {
  return attributes.length > 0
    ? sequence(oid(bagId), explicit0(value), set(attributes))
    : sequence(oid(bagId), explicit0(value));
}

function attribute(type: string, value: Buffer): Buffer {
  return sequence(oid(type), set([value]));
}

function contentInfo(type: string, content: Buffer): Buffer {
  return sequence(oid(type), explicit0(content));
}

function utf16be(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

/** Cheap guard against PEM or truncated input: one definite-length DER SEQUENCE spanning the whole buffer. */
function assertDerSequence(der: Buffer): void {
  let ok = der.length >= 2 && der[0] === 0x30;
  if (ok) {
    const first = der[1]!;
    const lengthOfLength = first < 0x80 ? 0 : first & 0x7f;
    let length = first < 0x80 ? first : 0;
    for (let i = 0; i < lengthOfLength; i++) length = length * 256 + (der[2 + i] ?? 0);
    ok = first !== 0x80 && lengthOfLength <= 4 && 2 + lengthOfLength + length === der.length;
  }
  if (!ok) throw new Error('PKCS#12: chain entries must be DER-encoded certificates');
}

// A minimal DER writer. The whole file is a dozen fixed shapes; asn1js spent
// ~1.5 ms of main thread per file on them (as much as the 3DES KDF), this
// spends microseconds. Definite lengths, SET OF sorted: DER throughout, so
// the MAC covers exactly the bytes every parser re-encodes.

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const length = content.reduce((n, c) => n + c.length, 0);
  const lengthBytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) lengthBytes.unshift(n % 256);
  const header = length < 0x80 ? [tag, length] : [tag, 0x80 | lengthBytes.length, ...lengthBytes];
  return Buffer.concat([Buffer.from(header), ...content]);
}

function sequence(...items: Buffer[]): Buffer {
  return tlv(0x30, ...items);
}

/** DER orders SET OF members by their encodings. */
function set(items: Buffer[]): Buffer {
  return tlv(0x31, ...[...items].sort(Buffer.compare));
}

function octetString(bytes: Buffer): Buffer {
  return tlv(0x04, bytes);
}

function explicit0(inner: Buffer): Buffer {
  return tlv(0xa0, inner);
}

const NULL = Buffer.from([0x05, 0x00]);

/** Non-negative only (versions, iteration counts). */
function integer(value: number): Buffer {
  const bytes: number[] = [];
  for (let n = value; ; n = Math.floor(n / 256)) {
    bytes.unshift(n % 256);
    if (n < 256) break;
  }
  if (bytes[0]! >= 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

const oidCache = new Map<string, Buffer>();
function oid(dotted: string): Buffer {
  let encoded = oidCache.get(dotted);
  if (encoded === undefined) {
    const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
    const bytes: number[] = [];
    for (const arc of [first * 40 + second, ...rest]) {
      const base128 = [arc % 128];
      for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) base128.unshift(0x80 | n % 128);
      bytes.push(...base128);
    }
    encoded = tlv(0x06, Buffer.from(bytes));
    oidCache.set(dotted, encoded);
  }
  return encoded;
}
