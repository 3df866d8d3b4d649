import { invalidInput } from '../errors.js';

/**
 * Field rules for tenants, institutions and users. Tenant codes and names end up in certificate
 * subjects (CN and O), so they must stay within what every OS shows correctly.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export function tenantCode(v: string | undefined): string {
  const s = (v ?? '').trim();
  if (!s) throw invalidInput('code', 'is required');
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(s)) {
    throw invalidInput('code', `"${s}" must be 1-32 ASCII letters, digits, "-" or "_" (it becomes the certificate CN)`);
  }
  return s;
}

export function displayName(field: string, v: string | undefined): string {
  const s = (v ?? '').normalize('NFC').trim();
  if (!s) throw invalidInput(field, 'is required');
  // X.520 caps organizationName at 64 characters.
  if ([...s].length > 64) throw invalidInput(field, 'must be at most 64 characters');
  if (CONTROL.test(s)) throw invalidInput(field, 'must not contain control characters');
  return s;
}

export function email(v: string | undefined): string | null {
  const s = (v ?? '').trim();
  if (!s) return null;
  if (s.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s)) throw invalidInput('email', `"${s}" is not an e-mail address`);
  return s;
}

/** 機関番号: exactly ten ASCII digits. Full-width digits (０-９) are a common paste mistake: say so. */
export function institutionNumber(v: string | undefined, field = 'number'): string {
  const s = (v ?? '').trim();
  if (/^[０-９]+$/.test(s)) throw invalidInput(field, `"${s}" uses full-width digits; enter the 10-digit 機関番号 in half-width digits`);
  if (!/^\d{10}$/.test(s)) throw invalidInput(field, `"${s}" is not a 10-digit 機関番号 (got ${s.length} characters)`);
  return s;
}

export function loginId(v: string | undefined): string {
  const s = (v ?? '').trim();
  if (!s) throw invalidInput('login', 'is required');
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(s)) throw invalidInput('login', `"${s}" must be 1-64 ASCII letters, digits or . _ @ -`);
  return s;
}

export function role(v: string | undefined): 'admin' | 'user' | 'operator' {
  const s = (v ?? 'user').trim();
  if (s === 'admin' || s === '管理者') return 'admin';
  if (s === 'user' || s === '一般ユーザ') return 'user';
  if (s === 'operator' || s === '運用者') return 'operator';
  throw invalidInput('role', `expected admin (管理者), user (一般ユーザ) or operator (運用者), got "${s}"`);
}

/** Operators live in this reserved tenant, apart from every customer. */
export const OPERATORS_TENANT = 'OPERATORS';
