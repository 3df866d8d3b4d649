import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { exportJWK, calculateJwkThumbprint, generateKeyPair, importJWK, type JWK, type CryptoKey } from 'jose';

/**
 * The key that signs X-Kenshin-Assertion (ES256). It lives in the data directory beside the package
 * key (data/secrets/gateway-signing-key, 0600), generated on first start, so every instance sharing
 * the data directory signs with the same key and one JWKS verifies them all.
 *
 * The file is JSON: the current private JWK, and the public JWKs of keys rotated out with the time
 * they were retired. A retired key signs nothing any more, but stays in the JWKS for RETIRED_KEEP_MS:
 * an assertion it signed lives 60 s, and an application caches the JWKS (jose: until an unknown
 * `kid` appears), so a day is far more than either needs and short enough to forget a leaked key.
 */
export const RETIRED_KEEP_MS = 24 * 3600_000;

interface KeyFile {
  current: JWK;
  retired: { jwk: JWK; retiredAt: string }[];
}

export interface GatewayKeys {
  kid: string;
  privateKey: CryptoKey;
  current: JWK;
  retired: { jwk: JWK; retiredAt: string }[];
}

const recent = (r: { retiredAt: string }, now: Date) => now.getTime() - new Date(r.retiredAt).getTime() < RETIRED_KEEP_MS;

/** The public keys an application may verify with: the current one and those retired within RETIRED_KEEP_MS. */
export function jwksAt(keys: GatewayKeys, now: Date): { keys: JWK[] } {
  return { keys: [publicOf(keys.current), ...keys.retired.filter((r) => recent(r, now)).map((r) => publicOf(r.jwk))] };
}

async function newPrivateJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  // The kid is the RFC 7638 thumbprint: stable, and the same on every instance reading the file.
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256', use: 'sig' };
}

const publicOf = (jwk: JWK): JWK => ({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: jwk.kid, alg: 'ES256', use: 'sig' });

/** Writes beside the target, then links (first creation) or renames (rotation) it into place, 0600. */
function writeKeyFile(file: string, content: KeyFile, replace: boolean): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, JSON.stringify(content, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  try {
    if (replace) {
      fs.renameSync(tmp, file);
      return;
    }
    // Like the package key: an instance starting at the same moment must never read a half-written
    // file, and never replace a key another instance already signs with.
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function readKeyFile(file: string): KeyFile {
  let parsed: Partial<KeyFile>;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<KeyFile>;
  } catch (e) {
    // JSON.parse's message quotes the text it read: a private key must not reach a log that way.
    if (e instanceof SyntaxError) throw new Error(`${file}: not valid JSON (a Kenshin gateway signing key file)`);
    throw e;
  }
  if (!parsed.current || parsed.current.kty !== 'EC' || parsed.current.crv !== 'P-256' || !parsed.current.d || !parsed.current.kid) {
    // Never the file's content in the message: it is a private key.
    throw new Error(`${file}: not a Kenshin gateway signing key (expected an EC P-256 private JWK)`);
  }
  return { current: parsed.current, retired: Array.isArray(parsed.retired) ? parsed.retired : [] };
}

/** The keys from the file, created (with a fresh key) when it does not exist yet. */
export async function loadGatewayKeys(file: string, now: Date): Promise<GatewayKeys> {
  if (!fs.existsSync(file)) writeKeyFile(file, { current: await newPrivateJwk(), retired: [] }, false);
  const k = readKeyFile(file);
  return {
    kid: k.current.kid!,
    privateKey: (await importJWK(k.current, 'ES256')) as CryptoKey,
    current: publicOf(k.current),
    retired: k.retired.filter((r) => recent(r, now)),
  };
}

/**
 * `kenshin gateway rotate-key`: a new current key; the old one's public half is kept in the JWKS
 * (RETIRED_KEEP_MS) so assertions it signed just before still verify. Keys retired longer ago are
 * dropped from the file. Running instances pick the new key up on SIGHUP (`systemctl reload`) or restart.
 */
export async function rotateGatewayKey(file: string, now: Date): Promise<{ previousKid: string | undefined; kid: string }> {
  const old = fs.existsSync(file) ? readKeyFile(file) : undefined;
  const fresh = await newPrivateJwk();
  const retired = old
    ? [{ jwk: publicOf(old.current), retiredAt: now.toISOString() }, ...old.retired.filter((r) => recent(r, now))]
    : [];
  writeKeyFile(file, { current: fresh, retired }, true);
  return { previousKid: old?.current.kid, kid: fresh.kid! };
}
