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

/** Whole days left, rounded down; 0 on the last day, negative once expired. */
export function daysLeft(notAfter: string | Date, now: Date): number {
  return Math.floor((new Date(notAfter).getTime() - now.getTime()) / DAY_MS);
}
