import { generateKeyPairSync } from 'node:crypto';
import { subtle } from './x509.js';
import type { CaKeyType, KeyType } from '../config.js';

export type AnyKeyType = KeyType | CaKeyType;

/** WebCrypto algorithm parameters for each key type; the hash is the signature hash. */
export function keyAlgorithm(type: AnyKeyType): RsaHashedKeyGenParams | EcKeyGenParams & { hash: string } {
  switch (type) {
    case 'rsa2048':
    case 'rsa3072':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: type === 'rsa2048' ? 2048 : 3072,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
    case 'p256':
      return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    case 'p384':
      return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  }
}

export function isRsa(type: AnyKeyType): boolean {
  return type.startsWith('rsa');
}

/**
 * Generates a key pair. WebCrypto's generateKey runs on libuv's thread pool, so RSA-2048
 * (~170 ms of CPU here) does not block the event loop and parallel requests use every core.
 * Keys are extractable because the end-entity key must be packed into the PKCS#12 file.
 */
export async function generateKeyPair(type: AnyKeyType): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(keyAlgorithm(type), true, ['sign', 'verify'])) as CryptoKeyPair;
}

/**
 * Generates a key pair on the calling thread, blocking it: for a mint worker (mint-worker.ts),
 * whose thread exists to do this work. WebCrypto's generateKey queues on libuv's thread pool,
 * which the whole process shares — the main thread's password hashing at login (scrypt) and its
 * asynchronous file work wait there too — so a burst of RSA renewals (~170 ms of CPU each) put a
 * login seconds behind them. Generated in the worker, RSA key generation stays off that queue; the
 * pair is handed over as WebCrypto keys, like generateKeyPair's.
 */
export async function generateKeyPairOnThisThread(type: AnyKeyType): Promise<CryptoKeyPair> {
  const alg = keyAlgorithm(type);
  const pair =
    alg.name === 'ECDSA'
      ? generateKeyPairSync('ec', { namedCurve: (alg as EcKeyGenParams).namedCurve })
      : generateKeyPairSync('rsa', { modulusLength: (alg as RsaHashedKeyGenParams).modulusLength, publicExponent: 0x10001 });
  const der = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    const [privateKey, publicKey] = await Promise.all([
      subtle.importKey('pkcs8', der, alg, true, ['sign']),
      subtle.importKey('spki', pair.publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']),
    ]);
    return { privateKey, publicKey };
  } finally {
    // The key's plaintext bytes: importKey has copied them.
    der.fill(0);
  }
}

export async function exportPkcs8(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await subtle.exportKey('pkcs8', key));
}

export async function importPkcs8(der: Uint8Array, type: AnyKeyType, extractable = false): Promise<CryptoKey> {
  return subtle.importKey('pkcs8', der, keyAlgorithm(type), extractable, ['sign']);
}

/** Recovers the key type from a PKCS#8 key, so stored CA keys need no side file naming their type. */
export function keyTypeOfAlgorithm(alg: KeyAlgorithm): AnyKeyType {
  if (alg.name === 'ECDSA') {
    const curve = (alg as EcKeyAlgorithm).namedCurve;
    if (curve === 'P-256') return 'p256';
    if (curve === 'P-384') return 'p384';
  }
  if (alg.name === 'RSASSA-PKCS1-v1_5') {
    const bits = (alg as RsaKeyAlgorithm).modulusLength;
    if (bits === 2048) return 'rsa2048';
    if (bits === 3072) return 'rsa3072';
  }
  throw new Error(`unsupported key algorithm ${alg.name}`);
}
