import os from 'node:os';
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Login passwords, hashed with scrypt (memory-hard, built into Node, runs on the thread pool).
 * Stored as "scrypt$N$r$p$salt$hash" so the parameters can be raised later without a migration.
 */
const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password.normalize('NFC'), salt, KEYLEN, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password.normalize('NFC'), Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) });
  return timingSafeEqual(expected, actual);
}

/**
 * Hashes many passwords (onboarding's initial ones), at most `atOnce` at a time, in order. Each
 * scrypt is a job on libuv's thread pool, which every login shares and serves first come, first
 * served: 500 hashes queued together put a login behind all of them (≈ 8 s on 2 cores).
 */
export async function hashPasswords(passwords: readonly string[], atOnce: number): Promise<string[]> {
  const hashes: string[] = new Array(passwords.length);
  let next = 0;
  let failed = false;
  const lane = async () => {
    // After a failure the other lanes stop too: the caller gets the error, not more hashing.
    while (!failed && next < passwords.length) {
      const i = next++;
      try {
        hashes[i] = await hashPassword(passwords[i]!);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(atOnce, passwords.length)) }, lane));
  return hashes;
}

/**
 * How many hashes a serving process may run beside its logins: fewer than the thread pool has
 * threads (UV_THREADPOOL_SIZE, 4 by default), so a login always finds one free, and fewer than the
 * cores, so the requests keep one.
 */
export function hashesBesideLogins(): number {
  // libuv's own reading: unset or not a number is 4, and it keeps the value within 1–1024.
  const raw = Number.parseInt(process.env.UV_THREADPOOL_SIZE ?? '', 10);
  const threads = Number.isNaN(raw) ? 4 : Math.min(1024, Math.max(1, raw));
  return Math.max(1, Math.min(os.availableParallelism() - 1, threads - 1));
}

export const MIN_PASSWORD_LENGTH = 8;
