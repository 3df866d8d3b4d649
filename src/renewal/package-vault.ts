import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Refusal, invalidInput } from '../errors.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';

/**
 * Renewal packages at rest: the .p12 files and their password, sealed with AES-256-GCM under a
 * data key. They are kept (for a few days) only so that a failed download can be repeated; the
 * key lives apart from the database, so a copy of the database alone opens nothing.
 */
export interface PackageContents {
  password: string;
  pkcs12: Partial<Record<Pkcs12Profile, Uint8Array>>;
}

export interface PackageVault {
  seal(p: PackageContents): string;
  open(sealed: string): PackageContents;
}

export function packageVault(key: Buffer): PackageVault {
  if (key.length !== 32) throw new Error('package key must be 32 bytes');
  return {
    seal(p) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const plain = Buffer.from(JSON.stringify({ password: p.password, pkcs12: Object.fromEntries(Object.entries(p.pkcs12).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) }));
      const body = Buffer.concat([c.update(plain), c.final()]);
      plain.fill(0);
      return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), body.toString('base64')].join('.');
    },
    open(sealed) {
      const [v, iv, tag, body] = sealed.split('.');
      if (v !== 'v1' || !iv || !tag || !body) throw new Error('package: unknown format');
      const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      d.setAuthTag(Buffer.from(tag, 'base64'));
      const json = JSON.parse(Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8')) as { password: string; pkcs12: Record<string, string> };
      return { password: json.password, pkcs12: Object.fromEntries(Object.entries(json.pkcs12).map(([k, b]) => [k, new Uint8Array(Buffer.from(b, 'base64'))])) };
    },
  };
}

/**
 * The key from KENSHIN_PACKAGE_KEY or from the file, checked; undefined when neither exists yet.
 * What `serve` loads and what `kenshin config check` checks, so the check cannot pass a key the
 * service then refuses.
 */
export function readPackageKey(fromConfig: string | undefined, file: string): Buffer | undefined {
  if (fromConfig) {
    const k = Buffer.from(fromConfig, 'base64');
    if (k.length !== 32) throw invalidInput('KENSHIN_PACKAGE_KEY', 'must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)');
    return k;
  }
  if (!fs.existsSync(file)) return undefined;
  const text = fs.readFileSync(file, 'utf8').trim();
  const k = Buffer.from(text, 'base64');
  // Buffer.from ignores what is not base64, so "garbage" would decode to a few bytes: check both.
  if (k.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    throw new Refusal('invalid_input', `${file} does not hold a package key (base64 of 32 bytes): restore it from a backup (a new key cannot open the sealed renewal packages)`, { field: file });
  }
  return k;
}

/** The key from KENSHIN_PACKAGE_KEY, or the generated file (created on first use, mode 0600). */
export function loadPackageKey(fromConfig: string | undefined, file: string): Buffer {
  const existing = readPackageKey(fromConfig, file);
  if (existing) return existing;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written beside it, then hard-linked into place: an instance starting at the same moment must
  // never read the file created but not yet written (an empty key), and never replace the key
  // another instance already uses.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return readPackageKey(undefined, file)!;
}
