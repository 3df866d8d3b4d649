import { sql, type RawBuilder } from 'kysely';

/**
 * `where(tenantCodeIs('t.code'), '=', key(code))`: a tenant found whatever case was typed, through
 * the unique index on lower(code) (migration 007). Codes are ASCII, so JavaScript's and SQL's lower() agree.
 */
export const tenantCodeIs = (column: 'code' | 't.code'): RawBuilder<string> => sql<string>`lower(${sql.ref(column)})`;
export const tenantCodeKey = (code: string): string => code.toLowerCase();
