import type { CertificateRow } from '../db/schema.js';
import { DAY_MS } from '../clock.js';

/** What a certificate is right now. Expiry is derived from the dates, never stored, so it cannot go stale. */
export type EffectiveStatus = 'active' | 'expired' | 'not_yet_valid' | 'revoked';

export function effectiveStatus(c: Pick<CertificateRow, 'status' | 'not_before' | 'not_after'>, now: Date): EffectiveStatus {
  if (c.status === 'revoked') return 'revoked';
  const t = now.getTime();
  if (t < new Date(c.not_before).getTime()) return 'not_yet_valid';
  if (t >= new Date(c.not_after).getTime()) return 'expired';
  return 'active';
}

/**
 * Days left, rounded up: "90 days or less left" is then exactly daysLeft <= 90, a certificate
 * in its last hours still shows 1 day, and 0 or less means expired.
 */
export function daysLeft(notAfter: string | Date, now: Date): number {
  // "+ 0" turns the -0 that Math.ceil gives for the first second after expiry into 0.
  return Math.ceil((new Date(notAfter).getTime() - now.getTime()) / DAY_MS) + 0;
}
