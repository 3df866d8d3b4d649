import { invalidInput } from '../errors.js';
import { assertPrintable, INVISIBLE } from '../ca/subject.js';

/**
 * Field rules for tenants, institutions and users. Tenant codes and names end up in certificate
 * subjects (CN and O), so they must stay within what every OS shows correctly.
 *
 * Every rule takes `unknown`: the HTTP edge validates shapes with a schema, but a repeated form
 * field (`a=1&a=2` → an array) or a JSON number that slipped past it must be a refusal naming the
 * field, never a TypeError and a 500.
 */

/** The value as text, or a refusal: undefined and null count as empty. */
export function text(field: string, v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw invalidInput(field, 'must be a single text value');
  return v;
}

/**
 * Tenant codes are case-insensitive and stored as typed: "t0001" and "T0001" are the same tenant
 * (the database enforces it with a unique index on lower(code), migration 007), and a lookup finds
 * the tenant whatever case is typed. They are not upper-cased on the way in because the code is the
 * certificate CN of certificates already issued, which renewals copy byte for byte.
 */
export function tenantCode(v: unknown): string {
  const s = text('code', v).trim();
  if (!s) throw invalidInput('code', 'is required');
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(s)) {
    throw invalidInput('code', `"${s.slice(0, 40)}" must be 1-32 ASCII letters, digits, "-" or "_" (it becomes the certificate CN)`);
  }
  return s;
}

/** Tenant and institution names: NFC, at most 64 characters, nothing invisible (see assertPrintable). */
export function displayName(field: string, v: unknown): string {
  const s = text(field, v).normalize('NFC').trim();
  if (!s) throw invalidInput(field, 'is required');
  // X.520 caps organizationName at 64 characters.
  if ([...s].length > 64) throw invalidInput(field, 'must be at most 64 characters');
  assertPrintable(field, s);
  return s;
}

export function email(v: unknown): string | null {
  const s = text('email', v).trim();
  if (!s) return null;
  // One address, printable: the same invisible characters as in names are refused (and \s, @ between parts).
  if (s.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s) || INVISIBLE.test(s)) {
    throw invalidInput('email', `"${s.slice(0, 254)}" is not an e-mail address`);
  }
  return s;
}

/** 機関番号: exactly ten ASCII digits. Full-width digits (０-９) are a common paste mistake: say so. */
export function institutionNumber(v: unknown, field = 'number'): string {
  const s = text(field, v).trim();
  if (/^[０-９]+$/.test(s)) throw invalidInput(field, `"${s.slice(0, 20)}" uses full-width digits; enter the 10-digit 機関番号 in half-width digits`);
  if (!/^\d{10}$/.test(s)) throw invalidInput(field, `"${s.slice(0, 20)}" is not a 10-digit 機関番号 (got ${s.length} characters)`);
  return s;
}

export function loginId(v: unknown): string {
  const s = text('login', v).trim();
  if (!s) throw invalidInput('login', 'is required');
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(s)) throw invalidInput('login', `"${s.slice(0, 64)}" must be 1-64 ASCII letters, digits or . _ @ -`);
  return s;
}

export function role(v: unknown): 'admin' | 'user' | 'operator' {
  const s = (v === undefined || v === null ? 'user' : text('role', v)).trim();
  if (s === 'admin' || s === '管理者') return 'admin';
  if (s === 'user' || s === '一般ユーザ') return 'user';
  if (s === 'operator' || s === '運用者') return 'operator';
  throw invalidInput('role', `expected admin (管理者), user (一般ユーザ) or operator (運用者), got "${s.slice(0, 32)}"`);
}

/** Operators live in this reserved tenant, apart from every customer. */
export const OPERATORS_TENANT = 'OPERATORS';
