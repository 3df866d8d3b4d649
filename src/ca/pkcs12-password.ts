// One-time passwords that protect delivered PKCS#12 files.
//
// The password is shown to (or read over the phone to) a clinic user who types
// it into the Windows import wizard, macOS Keychain Access or Firefox. So:
//
// * Upper-case letters and digits only. A mixed-case alphabet would add ~0.8
//   bit per character but contains case pairs that look and sound the same
//   (C/c, K/k, O/o, P/p, S/s, U/u, V/v, W/w, X/x, Z/z), and saying "capital"
//   before every letter is how dictated passwords go wrong.
// * No 0/O and 1/I/L look-alikes (lower-case forms are absent altogether).
// * Printable ASCII only: see pkcs12.ts for why non-ASCII passwords are refused.
// * Groups of five joined by '-' so it can be read and checked in chunks. The
//   hyphens ARE part of the password (importers cannot normalise it), and they
//   add no entropy.
//
// Entropy: 32 symbols = exactly 5 bits each, 4 x 5 = 20 symbols = 100 bits.
//
// Why 2048 KDF iterations is enough with this password: the cheapest offline
// check of a guess is the MAC (RFC 7292 KDF: 2048 chained hashes, then one
// HMAC), about 2^11 hash evaluations per guess. Finding the password takes on
// average 2^99 guesses, i.e. ~2^110 hash evaluations; at 10^12 SHA-1/s (a rack
// of GPUs) that is ~4 * 10^13 years. The iteration count only adds 11 bits;
// the security rests on the 100 random bits, so raising it would buy nothing
// while costing main-thread time (the 3DES profile's KDF runs on the main
// thread) and slowing every importer. 2048 is also OpenSSL's default
// (PKCS12_DEFAULT_ITER), the value every importer is tested against.
// This argument holds ONLY for generated passwords: never let a human choose
// the password for a file built with 2048 iterations.

import { randomBytes } from 'node:crypto';

export const PKCS12_PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const PKCS12_PASSWORD_GROUPS = 4;
export const PKCS12_PASSWORD_GROUP_LENGTH = 5;
export const PKCS12_PASSWORD_SEPARATOR = '-';

/** Entropy of a generated password in bits (100 with the constants above). */
export const PKCS12_PASSWORD_BITS =
  PKCS12_PASSWORD_GROUPS * PKCS12_PASSWORD_GROUP_LENGTH * Math.log2(PKCS12_PASSWORD_ALPHABET.length);

/** e.g. "K7QXM-4HZPA-W9RNB-3TEFJ" */
export function generatePkcs12Password(): string {
  const symbols = uniformRandomString(
    PKCS12_PASSWORD_ALPHABET,
    PKCS12_PASSWORD_GROUPS * PKCS12_PASSWORD_GROUP_LENGTH,
  );
  const groups: string[] = [];
  for (let i = 0; i < symbols.length; i += PKCS12_PASSWORD_GROUP_LENGTH) {
    groups.push(symbols.slice(i, i + PKCS12_PASSWORD_GROUP_LENGTH));
  }
  return groups.join(PKCS12_PASSWORD_SEPARATOR);
}

/**
 * `length` symbols drawn uniformly from `alphabet`. Bytes at or above the
 * largest multiple of alphabet.length are discarded (rejection sampling), so
 * `byte % n` has no modulo bias for any alphabet size. With the 32-symbol
 * alphabet nothing is ever rejected; the loop keeps it correct if the alphabet
 * changes. `random` is injectable for tests only.
 */
export function uniformRandomString(
  alphabet: string,
  length: number,
  random: (size: number) => Uint8Array = randomBytes,
): string {
  const n = alphabet.length;
  if (n < 2 || n > 256) throw new RangeError('alphabet must have 2..256 symbols');
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('length must be a non-negative integer');
  const limit = 256 - (256 % n);
  let out = '';
  while (out.length < length) {
    for (const byte of random(length - out.length + 8)) {
      if (byte >= limit) continue;
      out += alphabet.charAt(byte % n);
      if (out.length === length) break;
    }
  }
  return out;
}
