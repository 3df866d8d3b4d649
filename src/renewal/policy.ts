import type { CertificateRow } from '../db/schema.js';
import { DAY_MS } from '../clock.js';
import { daysLeft, effectiveStatus } from '../certificates/status.js';

/**
 * The renewal rule of the seed manual: a certificate renews itself only while it is valid, not
 * revoked, has 90 days or less left (configurable), and has no successor yet. After expiry the
 * operator must issue a new one out of band: the user's own certificate is the only credential.
 */
export type Ineligible = 'certificate_expired' | 'certificate_revoked' | 'certificate_not_yet_valid' | 'not_in_window' | 'already_renewed';

export interface RenewalStatus {
  daysLeft: number;
  /** The first moment renewal is possible: notAfter minus the window. */
  windowStart: Date;
  windowEnd: Date;
  inWindow: boolean;
  eligible: boolean;
  reason: Ineligible | null;
}

export function renewalStatus(cert: Pick<CertificateRow, 'status' | 'not_before' | 'not_after'>, hasSuccessor: boolean, now: Date, windowDays: number): RenewalStatus {
  const notAfter = new Date(cert.not_after);
  const left = daysLeft(notAfter, now);
  const windowStart = new Date(notAfter.getTime() - windowDays * DAY_MS);
  // daysLeft rounds up, so "left <= windowDays" is exactly "remaining time <= windowDays days".
  const inWindow = left <= windowDays && left > 0;
  const status = effectiveStatus(cert, now);
  let reason: Ineligible | null = null;
  if (status === 'revoked') reason = 'certificate_revoked';
  else if (status === 'expired') reason = 'certificate_expired';
  else if (status === 'not_yet_valid') reason = 'certificate_not_yet_valid';
  else if (hasSuccessor) reason = 'already_renewed';
  else if (!inWindow) reason = 'not_in_window';
  return { daysLeft: left, windowStart, windowEnd: notAfter, inWindow, eligible: reason === null, reason };
}
