import { sql, type RawBuilder } from 'kysely';

/**
 * `where(tenantCodeIs('t.code'), '=', key(code))`: a tenant found whatever case was typed, through
 * the unique index on lower(code) (migration 007).
 */
export const tenantCodeIs = (column: 'code' | 't.code'): RawBuilder<string> => sql<string>`lower(${sql.ref(column)})`;
/**
 * ASCII letters only, like SQLite's lower(): JavaScript's toLowerCase() would fold the Kelvin sign
 * (U+212A) to "k", so "\u212A0001" would find tenant K0001.
 */
export const tenantCodeKey = (code: string): string => code.replace(/[A-Z]/g, (c) => c.toLowerCase());
