import type { Db } from '../db/database.js';
import { sessionsChanged } from '../identity/sessions.js';
import { isUniqueViolation } from '../db/database.js';
import { tenantCodeIs, tenantCodeKey } from '../db/tenant-code.js';
import type { Clock } from '../clock.js';
import type { Institution, Tenant, User } from '../db/schema.js';
import { appendAudit } from '../audit/log.js';
import { Refusal, invalidInput } from '../errors.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from '../identity/passwords.js';
import * as v from './validation.js';
import { uniformRandomString } from '../ca/pkcs12-password.js';

/**
 * Tenants (contracting organisations), their 健診機関 and their users. Uniqueness is left to the
 * database's constraints (a racing duplicate fails at INSERT), and each change is audited in the
 * same transaction.
 */
export interface TenancyDeps {
  db: Db;
  clock: Clock;
}

export async function findTenant(db: Db, code: string): Promise<Tenant> {
  // Case-insensitive (validation.ts#tenantCode): "t0001" finds T0001.
  const t = await db.selectFrom('tenants').selectAll().where(tenantCodeIs('code'), '=', tenantCodeKey(code)).executeTakeFirst();
  if (!t) throw new Refusal('unknown_tenant', `unknown tenant "${code}"`, { field: 'tenant', details: { code } });
  return t;
}

export async function addTenant(deps: TenancyDeps, input: { code?: string; name?: string; email?: string }, actor: string): Promise<Tenant> {
  const code = v.tenantCode(input.code);
  const name = v.displayName('name', input.name);
  const contactEmail = v.email(input.email);
  const now = deps.clock.now();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('tenants')
        .values({ code, name, contact_email: contactEmail, created_at: now.toISOString() })
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendAudit(trx, now, { actor, action: 'tenant.created', tenantId: row.id, target: `tenant:${code}`, details: { code, name } });
      return row;
    });
  } catch (e) {
    // Also when it differs only in case: the unique index is on lower(code).
    if (isUniqueViolation(e)) throw new Refusal('duplicate_tenant', `tenant code "${code}" already exists (codes are case-insensitive)`, { field: 'code' });
    throw e;
  }
}

export async function addInstitution(
  deps: TenancyDeps,
  input: { tenantCode?: string; number?: string; name?: string },
  actor: string,
): Promise<Institution> {
  const number = v.institutionNumber(input.number);
  const name = v.displayName('name', input.name);
  const tenant = await findTenant(deps.db, v.tenantCode(input.tenantCode));
  const now = deps.clock.now();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('institutions')
        .values({ tenant_id: tenant.id, number, name, created_at: now.toISOString() })
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendAudit(trx, now, { actor, action: 'institution.created', tenantId: tenant.id, target: `institution:${number}`, details: { number, name } });
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e)) throw new Refusal('duplicate_institution', `機関番号 ${number} is already registered`, { field: 'number' });
    throw e;
  }
}

export async function addUser(
  deps: TenancyDeps,
  input: { tenantCode?: string; loginId?: string; password?: string; role?: string; institutionNumbers?: string[] },
  actor: string,
): Promise<User & { institutions: string[] }> {
  const loginId = v.loginId(input.loginId);
  const role = v.role(input.role);
  const password = input.password ?? '';
  if (password.length < MIN_PASSWORD_LENGTH) throw invalidInput('password', `must be at least ${MIN_PASSWORD_LENGTH} characters`);
  const numbers = [...new Set((input.institutionNumbers ?? []).map((n) => v.institutionNumber(n, 'institutions')))];
  const tenant = await findTenant(deps.db, v.tenantCode(input.tenantCode));
  // An operator sees every tenant: the role exists only in the reserved operators' tenant, and that
  // tenant holds operators only. A 管理者 there would get the tenant-admin pages over the operators
  // (reset their passwords, lock them): an operator takeover.
  if (role === 'operator' && tenant.code.toUpperCase() !== v.OPERATORS_TENANT) throw invalidInput('role', `operator users belong to the ${v.OPERATORS_TENANT} tenant`);
  if (role !== 'operator' && tenant.code.toUpperCase() === v.OPERATORS_TENANT) throw invalidInput('role', `the ${v.OPERATORS_TENANT} tenant holds operators only (role operator)`);
  // Only this tenant's institutions are looked at: "another tenant's" and "unknown" read the same,
  // so a tenant's 管理者 learns nothing about other tenants' 機関番号.
  const institutions = numbers.length
    ? await deps.db.selectFrom('institutions').select(['id', 'number', 'tenant_id']).where('tenant_id', '=', tenant.id).where('number', 'in', numbers).execute()
    : [];
  const missing = numbers.filter((n) => !institutions.some((i) => i.number === n));
  if (missing.length) throw new Refusal('unknown_institution', `機関番号 ${missing.join(', ')} does not belong to tenant ${tenant.code}`, { field: 'institutions' });
  const passwordHash = await hashPassword(password);
  const now = deps.clock.now();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const user = await trx
        .insertInto('users')
        .values({ tenant_id: tenant.id, login_id: loginId, password_hash: passwordHash, role, locked_at: null, created_at: now.toISOString() })
        .returningAll()
        .executeTakeFirstOrThrow();
      if (institutions.length) {
        await trx.insertInto('user_institutions').values(institutions.map((i) => ({ user_id: user.id, institution_id: i.id }))).execute();
      }
      await appendAudit(trx, now, { actor, action: 'user.created', tenantId: tenant.id, target: `user:${loginId}`, details: { loginId, role, institutions: numbers } });
      return { ...user, institutions: numbers };
    });
  } catch (e) {
    if (isUniqueViolation(e)) throw new Refusal('duplicate_login', `login ID "${loginId}" already exists in tenant ${tenant.code}`, { field: 'login' });
    throw e;
  }
}

export async function updateTenant(deps: TenancyDeps, code: string, input: { name?: string; email?: string }, actor: string): Promise<Tenant> {
  const tenant = await findTenant(deps.db, code);
  const name = input.name === undefined ? tenant.name : v.displayName('name', input.name);
  const contactEmail = input.email === undefined ? tenant.contact_email : v.email(input.email);
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const row = await trx.updateTable('tenants').set({ name, contact_email: contactEmail }).where('id', '=', tenant.id).returningAll().executeTakeFirstOrThrow();
    // The subject of issued certificates does not change: renewals copy it byte for byte.
    await appendAudit(trx, now, { actor, action: 'tenant.updated', tenantId: tenant.id, target: `tenant:${tenant.code}`, details: { name, email: contactEmail } });
    return row;
  });
}

async function findUser(db: Db, tenantCode: string, loginId: string): Promise<User & { tenant_code: string }> {
  const user = await db.selectFrom('users as u').innerJoin('tenants as t', 't.id', 'u.tenant_id').selectAll('u').select('t.code as tenant_code').where(tenantCodeIs('t.code'), '=', tenantCodeKey(tenantCode)).where('u.login_id', '=', loginId).executeTakeFirst();
  if (!user) throw new Refusal('invalid_input', `no user "${loginId}" in tenant ${tenantCode}`, { field: 'login' });
  return user;
}

/** Locks or unlocks a user; locking also ends the user's sessions. */
export async function setUserLocked(deps: TenancyDeps, tenantCode: string, loginId: string, locked: boolean, actor: string): Promise<void> {
  const user = await findUser(deps.db, tenantCode, loginId);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set({ locked_at: locked ? now.toISOString() : null }).where('id', '=', user.id).execute();
    if (locked) await trx.deleteFrom('sessions').where('user_id', '=', user.id).execute();
    await appendAudit(trx, now, { actor, action: locked ? 'user.locked' : 'user.unlocked', tenantId: user.tenant_id, target: `user:${loginId}`, details: { loginId } });
  });
  // After the commit: a check that ran meanwhile may have cached what was true before it.
  sessionsChanged();
}

/** A new generated password, returned once to show to the operator; the old sessions end. */
export async function resetPassword(deps: TenancyDeps, tenantCode: string, loginId: string, actor: string): Promise<string> {
  const user = await findUser(deps.db, tenantCode, loginId);
  const password = generateLoginPassword();
  const hash = await hashPassword(password);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set({ password_hash: hash }).where('id', '=', user.id).execute();
    await trx.deleteFrom('sessions').where('user_id', '=', user.id).execute();
    await appendAudit(trx, now, { actor, action: 'user.password_reset', tenantId: user.tenant_id, target: `user:${loginId}`, details: { loginId } });
  });
  sessionsChanged();
  return password;
}

/** Replaces the institutions a user may use (all must belong to the user's tenant). */
export async function setUserInstitutions(deps: TenancyDeps, tenantCode: string, loginId: string, numbers: string[], actor: string): Promise<void> {
  const user = await findUser(deps.db, tenantCode, loginId);
  const wanted = [...new Set(numbers.map((n) => v.institutionNumber(n, 'institutions')))];
  const found = wanted.length ? await deps.db.selectFrom('institutions').select(['id', 'number']).where('tenant_id', '=', user.tenant_id).where('number', 'in', wanted).execute() : [];
  const missing = wanted.filter((n) => !found.some((f) => f.number === n));
  if (missing.length) throw new Refusal('unknown_institution', `機関番号 ${missing.join(', ')} does not belong to tenant ${tenantCode}`, { field: 'institutions' });
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('user_institutions').where('user_id', '=', user.id).execute();
    if (found.length) await trx.insertInto('user_institutions').values(found.map((f) => ({ user_id: user.id, institution_id: f.id }))).execute();
    await appendAudit(trx, now, { actor, action: 'user.institutions_set', tenantId: user.tenant_id, target: `user:${loginId}`, details: { loginId, institutions: wanted } });
  });
  // A 健診機関 taken away is refused by the gateway at the next request, not after its cache.
  sessionsChanged();
}

/** 12 characters from a look-alike-free alphabet: read off a screen and typed once. */
export function generateLoginPassword(): string {
  return uniformRandomString('ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789', 12);
}
