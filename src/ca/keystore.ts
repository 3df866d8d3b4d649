import { createPrivateKey, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Refusal } from '../errors.js';

/**
 * CA and server keys at rest: PKCS#8 encrypted with a passphrase (PBES2, AES-256-CBC; OpenSSL
 * reads it with `openssl pkey -in KEY -passin …`). The passphrase comes from KENSHIN_CA_PASSPHRASE
 * or, when that is unset, from a generated file with mode 0600 beside the data, so that a fresh
 * install works without any secret handling and an operator can move the secret out later.
 */

export function encryptPkcs8Pem(pkcs8: Uint8Array, passphrase: string): string {
  const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

export function decryptPkcs8Pem(pem: string, passphrase: string, file: string): Uint8Array {
  try {
    const key = createPrivateKey({ key: pem, format: 'pem', passphrase });
    return new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
  } catch {
    // Never echo the passphrase or the key material: name the file, not the secret.
    throw new Refusal('ca_key_unreadable', `cannot decrypt ${file}: wrong passphrase (KENSHIN_CA_PASSPHRASE) or damaged key file`, {
      field: file,
    });
  }
}

export function generatePassphrase(): string {
  return randomBytes(32).toString('base64url');
}

/** Resolves the CA passphrase: the environment wins; else the generated file. */
export function readPassphrase(envValue: string | undefined, file: string): string {
  if (envValue) return envValue;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Refusal('ca_key_unreadable', `no CA passphrase: set KENSHIN_CA_PASSPHRASE or restore ${file}`, { field: file });
  }
  const p = text.trim();
  if (!p) throw new Refusal('ca_key_unreadable', `CA passphrase file ${file} is empty`, { field: file });
  return p;
}

/** Writes a secret so that no other user can read it, even for a moment. */
export function writeSecretFile(file: string, content: string): void {
  fs.writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
}
