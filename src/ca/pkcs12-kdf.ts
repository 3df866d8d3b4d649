// RFC 7292 Appendix B.2 key derivation ("PKCS#12 KDF").
//
// Still needed in 2025 because it is the only password-to-key function that
// every importer accepts: pbeWithSHAAnd3-KeyTripleDES-CBC derives its key
// (ID 1) and IV (ID 2) with it, and the PFX integrity MAC key (ID 3) is
// derived with it in *every* PKCS#12 file, including OpenSSL 3's PBES2 ones
// (RFC 9579's PBMAC1 is not understood by Windows, macOS or NSS yet).
//
// Cost: each output block is an r-fold chained hash that cannot be
// parallelised, and it runs on the main thread. Node's one-shot crypto.hash
// costs 1-2 us per call, nearly all of it call overhead on a 20-32 byte
// input, so the chains for SHA-1 (compatible profile: 7 chains of 2048 per
// file) and SHA-256 (modern profile: 1 chain, the MAC) run in plain JS below
// at a fraction of that. That is what keeps a compatible p12 at a few ms.

import { hash } from 'node:crypto';

export type Pkcs12KdfHash = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

/** u = digest length, v = block length, both in bytes (RFC 7292 B.2). */
const HASHES: Readonly<Record<Pkcs12KdfHash, { u: number; v: number }>> = {
  sha1: { u: 20, v: 64 },
  sha224: { u: 28, v: 64 },
  sha256: { u: 32, v: 64 },
  sha384: { u: 48, v: 128 },
  sha512: { u: 64, v: 128 },
};

/** The "diversifier" byte: what the derived bytes will be used for. */
export const PKCS12_KDF_ID = { key: 1, iv: 2, mac: 3 } as const;
export type Pkcs12KdfId = (typeof PKCS12_KDF_ID)[keyof typeof PKCS12_KDF_ID];

export function pkcs12KdfDigestLength(hashName: Pkcs12KdfHash): number {
  return HASHES[hashName].u;
}

/**
 * The password as RFC 7292 B.1 wants it: BMPString (UTF-16BE) with a two-byte
 * zero terminator. UTF-16 code units are used as-is, like OpenSSL and Windows.
 */
export function bmpPassword(password: string): Buffer {
  const out = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) out.writeUInt16BE(password.charCodeAt(i), i * 2);
  return out;
}

export interface Pkcs12KdfParams {
  hash: Pkcs12KdfHash;
  password: string;
  salt: Uint8Array;
  id: Pkcs12KdfId;
  iterations: number;
  /** Number of bytes to derive. */
  length: number;
}

export function pkcs12Kdf({ hash: hashName, password, salt, id, iterations, length }: Pkcs12KdfParams): Buffer {
  const params = HASHES[hashName];
  if (params === undefined) throw new TypeError(`unsupported PKCS#12 KDF hash: ${String(hashName)}`);
  if (id !== 1 && id !== 2 && id !== 3) throw new RangeError(`PKCS#12 KDF id must be 1, 2 or 3, got ${String(id)}`);
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError('iterations must be a positive integer');
  if (!Number.isSafeInteger(length) || length < 1) throw new RangeError('length must be a positive integer');
  const { u, v } = params;

  // D || I where I = S || P, each of S and P repeated to a multiple of v.
  const s = repeatToMultiple(salt, v);
  const p = repeatToMultiple(bmpPassword(password), v);
  const dI = Buffer.alloc(v + s.length + p.length, id);
  s.copy(dI, v);
  p.copy(dI, v + s.length);
  const iLength = s.length + p.length;

  const blocks = Math.ceil(length / u);
  const out = Buffer.alloc(blocks * u);
  const b = Buffer.alloc(v);
  for (let block = 0; block < blocks; block++) {
    let a: Buffer = hash(hashName, dI, 'buffer');
    a = ITERATE[hashName](a, iterations - 1);
    a.copy(out, block * u);
    if (block === blocks - 1) break;
    // I_j = (I_j + B + 1) mod 2^(8v) for each v-byte block I_j, B = A repeated to v bytes.
    for (let k = 0; k < v; k++) b[k] = a[k % u]!;
    for (let j = v; j < v + iLength; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = dI[j + k]! + b[k]! + carry;
        dI[j + k] = sum & 0xff;
        carry = sum >>> 8;
      }
    }
  }
  return out.subarray(0, length);
}

function repeatToMultiple(data: Uint8Array, v: number): Buffer {
  const out = Buffer.alloc(Math.ceil(data.length / v) * v);
  for (let i = 0; i < out.length; i++) out[i] = data[i % data.length]!;
  return out;
}

/** Chained hashing; the JS versions exist only because crypto.hash's per-call overhead dominates on 20-32 bytes. */
const ITERATE: Readonly<Record<Pkcs12KdfHash, (digest: Buffer, times: number) => Buffer>> = {
  sha1: (d, times) => iterateJs(sha1Chain, d, times),
  sha224: (d, times) => iterateNative('sha224', d, times),
  sha256: (d, times) => iterateJs(sha256Chain, d, times),
  sha384: (d, times) => iterateNative('sha384', d, times),
  sha512: (d, times) => iterateNative('sha512', d, times),
};

/**
 * Each step is its own call (sha1Block/sha256Block) instead of one big loop:
 * V8 then optimises the block function normally after a few hundred calls.
 * With the 2047-step loop inline, V8 on Node 20 sometimes never installed the
 * regular optimised code and re-entered the loop through on-stack replacement
 * on every call, starting each one in the interpreter: a bimodal 2-5x
 * slowdown from one process to the next.
 */
function iterateJs(chain: (state: Int32Array, times: number) => void, digest: Buffer, times: number): Buffer {
  const state = new Int32Array(digest.length / 4);
  for (let i = 0; i < state.length; i++) state[i] = digest.readInt32BE(i * 4);
  chain(state, times);
  const out = Buffer.alloc(digest.length);
  for (let i = 0; i < state.length; i++) out.writeInt32BE(state[i]!, i * 4);
  return out;
}

function iterateNative(hashName: Pkcs12KdfHash, digest: Buffer, times: number): Buffer {
  let d: Buffer = digest;
  for (let i = 0; i < times; i++) d = hash(hashName, d, 'buffer');
  return d;
}

/** SHA-1 applied `times` more times to a 20-byte digest held as 5 big-endian words. */
function sha1Chain(state: Int32Array, times: number): void {
  for (let n = 0; n < times; n++) sha1Block(state);
}

/**
 * state = SHA-1(state). A 20-byte message is always exactly one padded block
 * (5 digest words, 0x80 marker, zeros, bit length 160), so this is a single
 * compression with no allocation. Fully unrolled with the 16-word schedule in
 * locals: V8 keeps it in registers and folds the constant padding words,
 * ~2.5x faster than the same code over an Int32Array. Checked against
 * crypto.hash by the tests.
 */
function sha1Block(state: Int32Array): void {
  const k0 = 0x5a827999;
  const k1 = 0x6ed9eba1;
  const k2 = 0x8f1bbcdc | 0;
  const k3 = 0xca62c1d6 | 0;
  let w0 = state[0]!, w1 = state[1]!, w2 = state[2]!, w3 = state[3]!, w4 = state[4]!, w5 = 0x80000000 | 0, w6 = 0;
  let w7 = 0, w8 = 0, w9 = 0, w10 = 0, w11 = 0, w12 = 0, w13 = 0, w14 = 0, w15 = 160, x = 0;
  let a = 0x67452301, b = 0xefcdab89 | 0, c = 0x98badcfe | 0, d = 0x10325476, e = 0xc3d2e1f0 | 0;
  // rounds 0-19
  e = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + k0 + w0) | 0; b = (b << 30) | (b >>> 2);
  d = (((e << 5) | (e >>> 27)) + ((a & b) | (~a & c)) + d + k0 + w1) | 0; a = (a << 30) | (a >>> 2);
  c = (((d << 5) | (d >>> 27)) + ((e & a) | (~e & b)) + c + k0 + w2) | 0; e = (e << 30) | (e >>> 2);
  b = (((c << 5) | (c >>> 27)) + ((d & e) | (~d & a)) + b + k0 + w3) | 0; d = (d << 30) | (d >>> 2);
  a = (((b << 5) | (b >>> 27)) + ((c & d) | (~c & e)) + a + k0 + w4) | 0; c = (c << 30) | (c >>> 2);
  e = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + k0 + w5) | 0; b = (b << 30) | (b >>> 2);
  d = (((e << 5) | (e >>> 27)) + ((a & b) | (~a & c)) + d + k0 + w6) | 0; a = (a << 30) | (a >>> 2);
  c = (((d << 5) | (d >>> 27)) + ((e & a) | (~e & b)) + c + k0 + w7) | 0; e = (e << 30) | (e >>> 2);
  b = (((c << 5) | (c >>> 27)) + ((d & e) | (~d & a)) + b + k0 + w8) | 0; d = (d << 30) | (d >>> 2);
  a = (((b << 5) | (b >>> 27)) + ((c & d) | (~c & e)) + a + k0 + w9) | 0; c = (c << 30) | (c >>> 2);
  e = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + k0 + w10) | 0; b = (b << 30) | (b >>> 2);
  d = (((e << 5) | (e >>> 27)) + ((a & b) | (~a & c)) + d + k0 + w11) | 0; a = (a << 30) | (a >>> 2);
  c = (((d << 5) | (d >>> 27)) + ((e & a) | (~e & b)) + c + k0 + w12) | 0; e = (e << 30) | (e >>> 2);
  b = (((c << 5) | (c >>> 27)) + ((d & e) | (~d & a)) + b + k0 + w13) | 0; d = (d << 30) | (d >>> 2);
  a = (((b << 5) | (b >>> 27)) + ((c & d) | (~c & e)) + a + k0 + w14) | 0; c = (c << 30) | (c >>> 2);
  e = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + k0 + w15) | 0; b = (b << 30) | (b >>> 2);
  x = w13 ^ w8 ^ w2 ^ w0; w0 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + ((a & b) | (~a & c)) + d + k0 + w0) | 0; a = (a << 30) | (a >>> 2);
  x = w14 ^ w9 ^ w3 ^ w1; w1 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + ((e & a) | (~e & b)) + c + k0 + w1) | 0; e = (e << 30) | (e >>> 2);
  x = w15 ^ w10 ^ w4 ^ w2; w2 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + ((d & e) | (~d & a)) + b + k0 + w2) | 0; d = (d << 30) | (d >>> 2);
  x = w0 ^ w11 ^ w5 ^ w3; w3 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + ((c & d) | (~c & e)) + a + k0 + w3) | 0; c = (c << 30) | (c >>> 2);
  // rounds 20-39
  x = w1 ^ w12 ^ w6 ^ w4; w4 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k1 + w4) | 0; b = (b << 30) | (b >>> 2);
  x = w2 ^ w13 ^ w7 ^ w5; w5 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k1 + w5) | 0; a = (a << 30) | (a >>> 2);
  x = w3 ^ w14 ^ w8 ^ w6; w6 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k1 + w6) | 0; e = (e << 30) | (e >>> 2);
  x = w4 ^ w15 ^ w9 ^ w7; w7 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k1 + w7) | 0; d = (d << 30) | (d >>> 2);
  x = w5 ^ w0 ^ w10 ^ w8; w8 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k1 + w8) | 0; c = (c << 30) | (c >>> 2);
  x = w6 ^ w1 ^ w11 ^ w9; w9 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k1 + w9) | 0; b = (b << 30) | (b >>> 2);
  x = w7 ^ w2 ^ w12 ^ w10; w10 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k1 + w10) | 0; a = (a << 30) | (a >>> 2);
  x = w8 ^ w3 ^ w13 ^ w11; w11 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k1 + w11) | 0; e = (e << 30) | (e >>> 2);
  x = w9 ^ w4 ^ w14 ^ w12; w12 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k1 + w12) | 0; d = (d << 30) | (d >>> 2);
  x = w10 ^ w5 ^ w15 ^ w13; w13 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k1 + w13) | 0; c = (c << 30) | (c >>> 2);
  x = w11 ^ w6 ^ w0 ^ w14; w14 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k1 + w14) | 0; b = (b << 30) | (b >>> 2);
  x = w12 ^ w7 ^ w1 ^ w15; w15 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k1 + w15) | 0; a = (a << 30) | (a >>> 2);
  x = w13 ^ w8 ^ w2 ^ w0; w0 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k1 + w0) | 0; e = (e << 30) | (e >>> 2);
  x = w14 ^ w9 ^ w3 ^ w1; w1 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k1 + w1) | 0; d = (d << 30) | (d >>> 2);
  x = w15 ^ w10 ^ w4 ^ w2; w2 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k1 + w2) | 0; c = (c << 30) | (c >>> 2);
  x = w0 ^ w11 ^ w5 ^ w3; w3 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k1 + w3) | 0; b = (b << 30) | (b >>> 2);
  x = w1 ^ w12 ^ w6 ^ w4; w4 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k1 + w4) | 0; a = (a << 30) | (a >>> 2);
  x = w2 ^ w13 ^ w7 ^ w5; w5 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k1 + w5) | 0; e = (e << 30) | (e >>> 2);
  x = w3 ^ w14 ^ w8 ^ w6; w6 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k1 + w6) | 0; d = (d << 30) | (d >>> 2);
  x = w4 ^ w15 ^ w9 ^ w7; w7 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k1 + w7) | 0; c = (c << 30) | (c >>> 2);
  // rounds 40-59
  x = w5 ^ w0 ^ w10 ^ w8; w8 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + k2 + w8) | 0; b = (b << 30) | (b >>> 2);
  x = w6 ^ w1 ^ w11 ^ w9; w9 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + ((a & b) | (a & c) | (b & c)) + d + k2 + w9) | 0; a = (a << 30) | (a >>> 2);
  x = w7 ^ w2 ^ w12 ^ w10; w10 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + ((e & a) | (e & b) | (a & b)) + c + k2 + w10) | 0; e = (e << 30) | (e >>> 2);
  x = w8 ^ w3 ^ w13 ^ w11; w11 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + ((d & e) | (d & a) | (e & a)) + b + k2 + w11) | 0; d = (d << 30) | (d >>> 2);
  x = w9 ^ w4 ^ w14 ^ w12; w12 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + ((c & d) | (c & e) | (d & e)) + a + k2 + w12) | 0; c = (c << 30) | (c >>> 2);
  x = w10 ^ w5 ^ w15 ^ w13; w13 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + k2 + w13) | 0; b = (b << 30) | (b >>> 2);
  x = w11 ^ w6 ^ w0 ^ w14; w14 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + ((a & b) | (a & c) | (b & c)) + d + k2 + w14) | 0; a = (a << 30) | (a >>> 2);
  x = w12 ^ w7 ^ w1 ^ w15; w15 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + ((e & a) | (e & b) | (a & b)) + c + k2 + w15) | 0; e = (e << 30) | (e >>> 2);
  x = w13 ^ w8 ^ w2 ^ w0; w0 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + ((d & e) | (d & a) | (e & a)) + b + k2 + w0) | 0; d = (d << 30) | (d >>> 2);
  x = w14 ^ w9 ^ w3 ^ w1; w1 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + ((c & d) | (c & e) | (d & e)) + a + k2 + w1) | 0; c = (c << 30) | (c >>> 2);
  x = w15 ^ w10 ^ w4 ^ w2; w2 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + k2 + w2) | 0; b = (b << 30) | (b >>> 2);
  x = w0 ^ w11 ^ w5 ^ w3; w3 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + ((a & b) | (a & c) | (b & c)) + d + k2 + w3) | 0; a = (a << 30) | (a >>> 2);
  x = w1 ^ w12 ^ w6 ^ w4; w4 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + ((e & a) | (e & b) | (a & b)) + c + k2 + w4) | 0; e = (e << 30) | (e >>> 2);
  x = w2 ^ w13 ^ w7 ^ w5; w5 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + ((d & e) | (d & a) | (e & a)) + b + k2 + w5) | 0; d = (d << 30) | (d >>> 2);
  x = w3 ^ w14 ^ w8 ^ w6; w6 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + ((c & d) | (c & e) | (d & e)) + a + k2 + w6) | 0; c = (c << 30) | (c >>> 2);
  x = w4 ^ w15 ^ w9 ^ w7; w7 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + k2 + w7) | 0; b = (b << 30) | (b >>> 2);
  x = w5 ^ w0 ^ w10 ^ w8; w8 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + ((a & b) | (a & c) | (b & c)) + d + k2 + w8) | 0; a = (a << 30) | (a >>> 2);
  x = w6 ^ w1 ^ w11 ^ w9; w9 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + ((e & a) | (e & b) | (a & b)) + c + k2 + w9) | 0; e = (e << 30) | (e >>> 2);
  x = w7 ^ w2 ^ w12 ^ w10; w10 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + ((d & e) | (d & a) | (e & a)) + b + k2 + w10) | 0; d = (d << 30) | (d >>> 2);
  x = w8 ^ w3 ^ w13 ^ w11; w11 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + ((c & d) | (c & e) | (d & e)) + a + k2 + w11) | 0; c = (c << 30) | (c >>> 2);
  // rounds 60-79
  x = w9 ^ w4 ^ w14 ^ w12; w12 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k3 + w12) | 0; b = (b << 30) | (b >>> 2);
  x = w10 ^ w5 ^ w15 ^ w13; w13 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k3 + w13) | 0; a = (a << 30) | (a >>> 2);
  x = w11 ^ w6 ^ w0 ^ w14; w14 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k3 + w14) | 0; e = (e << 30) | (e >>> 2);
  x = w12 ^ w7 ^ w1 ^ w15; w15 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k3 + w15) | 0; d = (d << 30) | (d >>> 2);
  x = w13 ^ w8 ^ w2 ^ w0; w0 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k3 + w0) | 0; c = (c << 30) | (c >>> 2);
  x = w14 ^ w9 ^ w3 ^ w1; w1 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k3 + w1) | 0; b = (b << 30) | (b >>> 2);
  x = w15 ^ w10 ^ w4 ^ w2; w2 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k3 + w2) | 0; a = (a << 30) | (a >>> 2);
  x = w0 ^ w11 ^ w5 ^ w3; w3 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k3 + w3) | 0; e = (e << 30) | (e >>> 2);
  x = w1 ^ w12 ^ w6 ^ w4; w4 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k3 + w4) | 0; d = (d << 30) | (d >>> 2);
  x = w2 ^ w13 ^ w7 ^ w5; w5 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k3 + w5) | 0; c = (c << 30) | (c >>> 2);
  x = w3 ^ w14 ^ w8 ^ w6; w6 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k3 + w6) | 0; b = (b << 30) | (b >>> 2);
  x = w4 ^ w15 ^ w9 ^ w7; w7 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k3 + w7) | 0; a = (a << 30) | (a >>> 2);
  x = w5 ^ w0 ^ w10 ^ w8; w8 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k3 + w8) | 0; e = (e << 30) | (e >>> 2);
  x = w6 ^ w1 ^ w11 ^ w9; w9 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k3 + w9) | 0; d = (d << 30) | (d >>> 2);
  x = w7 ^ w2 ^ w12 ^ w10; w10 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k3 + w10) | 0; c = (c << 30) | (c >>> 2);
  x = w8 ^ w3 ^ w13 ^ w11; w11 = (x << 1) | (x >>> 31); e = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + k3 + w11) | 0; b = (b << 30) | (b >>> 2);
  x = w9 ^ w4 ^ w14 ^ w12; w12 = (x << 1) | (x >>> 31); d = (((e << 5) | (e >>> 27)) + (a ^ b ^ c) + d + k3 + w12) | 0; a = (a << 30) | (a >>> 2);
  x = w10 ^ w5 ^ w15 ^ w13; w13 = (x << 1) | (x >>> 31); c = (((d << 5) | (d >>> 27)) + (e ^ a ^ b) + c + k3 + w13) | 0; e = (e << 30) | (e >>> 2);
  x = w11 ^ w6 ^ w0 ^ w14; w14 = (x << 1) | (x >>> 31); b = (((c << 5) | (c >>> 27)) + (d ^ e ^ a) + b + k3 + w14) | 0; d = (d << 30) | (d >>> 2);
  x = w12 ^ w7 ^ w1 ^ w15; w15 = (x << 1) | (x >>> 31); a = (((b << 5) | (b >>> 27)) + (c ^ d ^ e) + a + k3 + w15) | 0; c = (c << 30) | (c >>> 2);

  state[0] = (a + 0x67452301) | 0;
  state[1] = (b + (0xefcdab89 | 0)) | 0;
  state[2] = (c + (0x98badcfe | 0)) | 0;
  state[3] = (d + 0x10325476) | 0;
  state[4] = (e + (0xc3d2e1f0 | 0)) | 0;
}

const SHA256_K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const SHA256_H = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

/** SHA-256 applied `times` more times to a 32-byte digest held as 8 big-endian words. */
function sha256Chain(h: Int32Array, times: number): void {
  const w = new Int32Array(64);
  w[8] = 0x80000000 | 0;
  w[15] = 256;
  for (let n = 0; n < times; n++) sha256Block(h, w);
}

/**
 * h = SHA-256(h): one padded block (8 digest words, 0x80 marker, zeros, bit
 * length 256; the constant words sit in w[8..15] from sha256Chain). A plain
 * loop: the modern profile needs one chain per file and this is already
 * ~2.5x cheaper than crypto.hash per call. Checked against crypto.hash by the
 * tests.
 */
function sha256Block(h: Int32Array, w: Int32Array): void {
  w.set(h);
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!;
    const y = w[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  let a = SHA256_H[0]!, b = SHA256_H[1]!, c = SHA256_H[2]!, d = SHA256_H[3]!;
  let e = SHA256_H[4]!, f = SHA256_H[5]!, g = SHA256_H[6]!, hh = SHA256_H[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (hh + s1 + ((e & f) ^ (~e & g)) + SHA256_K[i]! + w[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (SHA256_H[0]! + a) | 0;
  h[1] = (SHA256_H[1]! + b) | 0;
  h[2] = (SHA256_H[2]! + c) | 0;
  h[3] = (SHA256_H[3]! + d) | 0;
  h[4] = (SHA256_H[4]! + e) | 0;
  h[5] = (SHA256_H[5]! + f) | 0;
  h[6] = (SHA256_H[6]! + g) | 0;
  h[7] = (SHA256_H[7]! + hh) | 0;
}
