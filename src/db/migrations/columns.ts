import type { ColumnDefinitionBuilder } from 'kysely';
import type { Dialect } from '../database.js';

/** The one dialect difference our migrations have: how an auto-numbered primary key is declared. */
export const identity = (dialect: Dialect) => (c: ColumnDefinitionBuilder) =>
  dialect === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement();
