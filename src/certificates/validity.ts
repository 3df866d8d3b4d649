import { addYears, DAY_MS } from '../clock.js';
import { invalidInput } from '../errors.js';

/** How long a new certificate is valid: the configured years, a number of days, or explicit dates. */
export type ValidityRequest =
  | { kind: 'default' }
  | { kind: 'days'; days: number }
  | { kind: 'explicit'; notBefore: string | Date; notAfter: string | Date };

export interface ValidityPolicy {
  years: number;
  backdateMinutes: number;
}

/** YYYY-MM-DD, optionally with a time and a zone: what the flags and the console accept. */
const ISO_8601 = /^\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d{1,3})?)?(?:Z|[+-]\d\d:?\d\d)?)?$/;

/**
 * X.509 writes dates as UTCTime (1950-2049) or GeneralizedTime (four-digit years), and the database
 * compares them as ISO text: a six-digit year (`+099999-…`, which JavaScript reads) or a year
 * before 1950 can be neither, and used to fail late, on a CHECK constraint.
 */
function parseDate(field: string, v: string | Date): Date {
  const d = v instanceof Date ? v : ISO_8601.test(v) ? new Date(v) : new Date(NaN);
  const year = d.getUTCFullYear();
  if (Number.isNaN(d.getTime()) || year < 1950 || year > 9999) {
    throw invalidInput(field, `"${v instanceof Date ? v.toISOString() : v}" is not an ISO-8601 date from 1950 to 9999 (e.g. 2029-11-25T00:00:00Z)`);
  }
  return d;
}

export function resolveValidity(req: ValidityRequest, policy: ValidityPolicy, now: Date): { notBefore: Date; notAfter: Date } {
  // Backdated so a PC whose clock runs a few minutes slow still accepts a certificate issued just now.
  const notBefore = new Date(now.getTime() - policy.backdateMinutes * 60_000);
  switch (req.kind) {
    case 'default':
      return { notBefore, notAfter: addYears(now, policy.years) };
    case 'days': {
      if (!Number.isInteger(req.days) || req.days < 1 || req.days > 3660) throw invalidInput('valid-days', 'must be a whole number from 1 to 3660');
      return { notBefore, notAfter: new Date(now.getTime() + req.days * DAY_MS) };
    }
    case 'explicit': {
      const nb = parseDate('not-before', req.notBefore);
      const na = parseDate('not-after', req.notAfter);
      if (na.getTime() <= nb.getTime()) throw invalidInput('not-after', `must be later than not-before (${nb.toISOString()})`);
      return { notBefore: nb, notAfter: na };
    }
  }
}
