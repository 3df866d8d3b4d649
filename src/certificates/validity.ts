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

function parseDate(field: string, v: string | Date): Date {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) throw invalidInput(field, `"${String(v)}" is not an ISO-8601 date (e.g. 2029-11-25T00:00:00Z)`);
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
