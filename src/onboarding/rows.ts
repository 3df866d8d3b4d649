import { parse as parseCsv } from 'csv-parse/sync';
import * as v from '../tenancy/validation.js';
import { validateLabel } from '../ca/subject.js';

/**
 * The onboarding CSV: one row per PC (one certificate each), with what the clinic needs around it.
 *
 *   tenant_code, tenant_name, contact_email, institution_number, institution_name, users, label
 *
 * `users` is "login:role;login:role" (role admin|user, or 管理者|一般ユーザ); they get the row's
 * 健診機関. Every row is checked, and every mistake reported with file, line and column, before
 * anything is created: the rules are the same as for `kenshin tenant add` and friends.
 */

export const COLUMNS = ['tenant_code', 'tenant_name', 'contact_email', 'institution_number', 'institution_name', 'users', 'label'] as const;
type Column = (typeof COLUMNS)[number];

export interface OnboardUser {
  loginId: string;
  role: 'admin' | 'user';
}

export interface OnboardRow {
  line: number;
  tenantCode: string;
  tenantName: string;
  contactEmail: string | null;
  institutionNumber: string;
  institutionName: string;
  users: OnboardUser[];
  label: string | undefined;
  /** Identifies the row across runs (tenant, 機関番号, label): what makes a re-run issue nothing twice. */
  key: string;
}

export interface RowError {
  file: string;
  line: number;
  /** 1-based column, and its name; undefined for a whole-row problem. */
  column: number | undefined;
  name: string | undefined;
  message: string;
}

export function formatRowError(e: RowError): string {
  return `${e.file}:${e.line}${e.column ? `:${e.column} (${e.name})` : ''}: ${e.message}`;
}

/** The message without the "field: " prefix the validation rules put in front. */
function messageOf(e: unknown, field: string): string {
  const m = (e as Error).message;
  return m.startsWith(`${field}: `) ? m.slice(field.length + 2) : m;
}

const ROLES: Record<string, 'admin' | 'user'> = { admin: 'admin', user: 'user', 管理者: 'admin', 一般ユーザ: 'user' };

export function rowKey(tenantCode: string, institutionNumber: string, label: string | undefined): string {
  return `${tenantCode.toLowerCase()}|${institutionNumber}|${label ?? ''}`;
}

/**
 * The CSV's text: UTF-8 (with or without the BOM Excel writes), or Shift_JIS, which Excel on a
 * Japanese Windows still writes for "CSV (comma delimited)". Anything that is neither is refused
 * rather than read as mojibake into tenant names.
 */
export function decodeCsv(bytes: Uint8Array): { text: string } | { error: string } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    try {
      return { text: new TextDecoder('shift_jis', { fatal: true }).decode(bytes) };
    } catch {
      return { error: 'the file is neither UTF-8 nor Shift_JIS text: save it from Excel as "CSV UTF-8"' };
    }
  }
}

/** Parses and checks the file on its own (the database is checked by plan.ts). */
export function readRows(file: string, text: string): { rows: OnboardRow[]; errors: RowError[] } {
  const errors: RowError[] = [];
  let records: string[][];
  try {
    records = parseCsv(text.replace(/^\uFEFF/, ''), { relax_column_count: true, skip_empty_lines: true }) as string[][];
  } catch (e) {
    const line = (e as { lines?: number }).lines ?? 1;
    return { rows: [], errors: [{ file, line, column: undefined, name: undefined, message: `not a readable CSV: ${(e as Error).message}` }] };
  }
  const header = (records.shift() ?? []).map((h) => h.trim().toLowerCase());
  const index = new Map<Column, number>();
  for (const c of COLUMNS) {
    const i = header.indexOf(c);
    if (i >= 0) index.set(c, i);
    else if (c !== 'label' && c !== 'contact_email') errors.push({ file, line: 1, column: undefined, name: c, message: `the header has no "${c}" column (expected: ${COLUMNS.join(',')})` });
  }
  if (errors.length) return { rows: [], errors };

  const rows: OnboardRow[] = [];
  const tenants = new Map<string, { name: string; email: string | null; line: number }>();
  const institutions = new Map<string, { tenant: string; name: string; line: number }>();
  const keys = new Map<string, number>();
  const userRoles = new Map<string, { role: string; line: number }>();
  records.forEach((r, i) => {
    const line = i + 2;
    const before = errors.length;
    const cell = (c: Column) => {
      const at = index.get(c);
      return at === undefined ? '' : (r[at] ?? '');
    };
    const err = (c: Column | undefined, message: string) => errors.push({ file, line, column: c && index.has(c) ? index.get(c)! + 1 : undefined, name: c, message });
    const check = <T>(c: Column, field: string, f: () => T): T | undefined => {
      try {
        return f();
      } catch (e) {
        err(c, messageOf(e, field));
        return undefined;
      }
    };
    const tenantCode = check('tenant_code', 'code', () => v.tenantCode(cell('tenant_code')));
    const tenantName = check('tenant_name', 'tenant_name', () => v.displayName('tenant_name', cell('tenant_name')));
    const contactEmail = check('contact_email', 'email', () => v.email(cell('contact_email')));
    const institutionNumber = check('institution_number', 'number', () => v.institutionNumber(cell('institution_number').trim()));
    const institutionName = check('institution_name', 'institution_name', () => v.displayName('institution_name', cell('institution_name')));
    const label = check('label', 'label', () => validateLabel(cell('label')));
    const users: OnboardUser[] = [];
    for (const part of cell('users').split(/[;；]/).map((s) => s.trim()).filter(Boolean)) {
      const [login, roleName = 'user', extra] = part.split(':').map((s) => s.trim());
      if (extra !== undefined) {
        err('users', `"${part}" is not login:role`);
        continue;
      }
      const role = ROLES[roleName];
      if (!role) {
        err('users', `role "${roleName}" of ${login} must be admin or user (管理者 or 一般ユーザ)`);
        continue;
      }
      const loginId = check('users', 'login', () => v.loginId(login));
      if (loginId) users.push({ loginId, role });
    }
    if (users.length === 0 && cell('users').trim() === '') err('users', 'name at least one user (login:role)');
    if (errors.length > before || !tenantCode || !tenantName || contactEmail === undefined || !institutionNumber || !institutionName) return;

    // The same tenant, 健診機関 or user must read the same on every row.
    const tk = tenantCode.toLowerCase();
    const t = tenants.get(tk);
    if (t && t.name !== tenantName) err('tenant_name', `tenant ${tenantCode} is named "${t.name}" on line ${t.line}`);
    else if (t && contactEmail && t.email && t.email !== contactEmail) err('contact_email', `tenant ${tenantCode} has contact ${t.email} on line ${t.line}`);
    else if (!t) tenants.set(tk, { name: tenantName, email: contactEmail, line });
    const inst = institutions.get(institutionNumber);
    if (inst && inst.tenant !== tk) err('institution_number', `機関番号 ${institutionNumber} belongs to another tenant on line ${inst.line}`);
    else if (inst && inst.name !== institutionName) err('institution_name', `機関番号 ${institutionNumber} is named "${inst.name}" on line ${inst.line}`);
    else if (!inst) institutions.set(institutionNumber, { tenant: tk, name: institutionName, line });
    for (const u of users) {
      const uk = `${tk}|${u.loginId.toLowerCase()}`;
      const seen = userRoles.get(uk);
      if (seen && seen.role !== u.role) err('users', `user ${u.loginId} is ${seen.role} on line ${seen.line}`);
      else if (!seen) userRoles.set(uk, { role: u.role, line });
    }
    // A row that disagrees with an earlier one is left out like any bad row (--continue-on-error skips it).
    if (errors.length > before) return;
    const key = rowKey(tenantCode, institutionNumber, label);
    if (keys.has(key)) {
      err('label', `the same tenant, 機関番号 and label as line ${keys.get(key)}: give each PC its own label`);
      return;
    }
    keys.set(key, line);
    rows.push({ line, tenantCode, tenantName, contactEmail, institutionNumber, institutionName, users, label, key });
  });
  return { rows, errors };
}
