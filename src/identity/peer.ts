import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { CertificateRow } from '../db/schema.js';
import type { Clock } from '../clock.js';
import { effectiveStatus } from '../certificates/status.js';

/**
 * From the certificate a client presented to "who is this". The TLS layer asks for a certificate
 * but never rejects one, so every refusal becomes a page or a JSON error that says what to do.
 */
export interface PresentedCertificate {
  /** DER of the leaf, or undefined when none was presented. */
  der: Uint8Array | undefined;
  /** The TLS stack built a chain to our CA (it checked the signature and the proof of key possession). */
  chainVerified: boolean;
  /** OpenSSL's reason when it did not, e.g. CERT_HAS_EXPIRED (logged, never decisive). */
  verifyError?: string | undefined;
  /** SHA-256 of the DER in hex, when the source already knows it (a parse it remembered). */
  fingerprint?: string | undefined;
  /** Checks the signature against our issuing CAs; asked only when the DER is not in our database. */
  verifyChain?: () => Promise<boolean>;
}

export type PeerIdentity =
  | { kind: 'none' }
  /** Not issued by our CA. */
  | { kind: 'foreign' }
  /** Signed by our CA but not in our database (e.g. a database restored from before its issue). */
  | { kind: 'unknown' }
  | { kind: 'expired' | 'not_yet_valid' | 'revoked'; cert: CertificateRow }
  | { kind: 'ok'; cert: CertificateRow };

export type RefusedIdentity = Exclude<PeerIdentity, { kind: 'ok' }>;

export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * Rows of certificates seen in the last ROW_TTL_MS, by fingerprint. Every request identifies its
 * certificate, and a browser (or a gateway in front of an application) sends many per second with
 * the same one; the row only changes when the certificate is revoked. Dates are judged per request
 * with the clock (effectiveStatus), so only the row is kept. A revocation in this process drops all
 * of them (certificatesChanged); one by another instance or the CLI is seen within ROW_TTL_MS.
 * Only rows found are kept: a certificate issued a moment ago is never "unknown" for a second.
 */
const ROW_TTL_MS = 1_000;
const ROWS_MAX = 20_000;
let generation = 0;
const knownRows = new WeakMap<Db, Map<string, { row: CertificateRow; tick: number; generation: number }>>();

export function certificatesChanged(): void {
  generation++;
}

/** The row kept for this fingerprint if it is still fresh, without asking the database (undefined otherwise). */
export function knownCertificate(db: Db, fingerprint: string): CertificateRow | undefined {
  const hit = knownRows.get(db)?.get(fingerprint);
  return hit && hit.generation === generation && performance.now() - hit.tick < ROW_TTL_MS ? hit.row : undefined;
}

async function certificateByFingerprint(db: Db, fingerprint: string): Promise<CertificateRow | undefined> {
  let rows = knownRows.get(db);
  if (!rows) knownRows.set(db, (rows = new Map()));
  const now = performance.now();
  const hit = rows.get(fingerprint);
  if (hit && hit.generation === generation && now - hit.tick < ROW_TTL_MS) return hit.row;
  const seenAt = generation;
  const row = await db.selectFrom('certificates').selectAll().where('fingerprint_sha256', '=', fingerprint).executeTakeFirst();
  if (row) {
    if (rows.size >= ROWS_MAX) rows.delete(rows.keys().next().value!);
    // Tagged with the generation from before the query: a revocation that landed meanwhile makes it stale.
    rows.set(fingerprint, { row, tick: now, generation: seenAt });
  } else rows.delete(fingerprint);
  return row;
}

export async function identify(db: Db, clock: Clock, presented: PresentedCertificate): Promise<PeerIdentity> {
  if (!presented.der || presented.der.length === 0) return { kind: 'none' };
  // The exact DER we issued (fingerprint match) is proof we signed it; TLS proved the key.
  const cert = await certificateByFingerprint(db, presented.fingerprint ?? fingerprintOf(presented.der));
  if (!cert) {
    // OpenSSL's chain verdict is not enough to say "foreign": it fails for an expired certificate
    // of ours too (our own clock decides dates), so the signature is checked directly.
    const ourChain = presented.chainVerified || (presented.verifyChain ? await presented.verifyChain() : false);
    return { kind: ourChain ? 'unknown' : 'foreign' };
  }
  const status = effectiveStatus(cert, clock.now());
  if (status === 'active') return { kind: 'ok', cert };
  return { kind: status, cert };
}
