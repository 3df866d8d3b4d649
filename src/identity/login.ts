import type { Db } from '../db/database.js';
import type { CertificateRow, Institution, User } from '../db/schema.js';
import type { Clock } from '../clock.js';
import { appendAudit } from '../audit/log.js';
import { verifyPassword } from './passwords.js';
import { DEFAULT_LOGIN_POLICY, recordFailure, releaseCheck, reserveCheck, type LoginPolicy } from './throttle.js';

/**
 * Password login on top of the certificate. The user must belong to the certificate's tenant.
 * Checks are throttled per login ID and per certificate (identity/throttle.ts): at most 5 in a
 * 15-minute window, then both are locked for 15 minutes whatever the password, so guessing from
 * one PC or against one login both stop, even with requests sent in parallel.
 */
export { DEFAULT_LOGIN_POLICY, type LoginPolicy } from './throttle.js';

export type LoginResult =
  | { ok: true; user: User; institutions: Institution[] }
  | { ok: false; reason: 'locked'; until: Date }
  | { ok: false; reason: 'user_not_in_tenant' | 'wrong_password' | 'user_locked' };

/** Login IDs are at most 64 characters (tenancy/validation.ts); a longer one is never stored in full. */
const MAX_LOGIN_ID = 64;

export async function login(deps: { db: Db; clock: Clock; policy?: LoginPolicy }, input: { cert: CertificateRow; loginId: string; password: string }): Promise<LoginResult> {
  const { db, clock } = deps;
  const policy = deps.policy ?? DEFAULT_LOGIN_POLICY;
  const now = clock.now();
  const loginId = input.loginId.trim().slice(0, MAX_LOGIN_ID + 1);
  const keys = [`login:${input.cert.tenant_id}:${loginId}`, `cert:${input.cert.id}`];

  const reservation = await db.transaction().execute(async (trx) => {
    const r = await reserveCheck(trx, now, keys, policy, input.cert.tenant_id);
    // One audit row per lock, not per refused attempt: the rest are counted (throttle.ts).
    if (!r.ok && r.firstRefusal) await audit(trx, now, input.cert, 'login.refused_locked', { loginId, until: r.until.toISOString() });
    return r;
  });
  if (!reservation.ok) return { ok: false, reason: 'locked', until: reservation.until };

  const user = loginId.length > MAX_LOGIN_ID ? undefined : await db.selectFrom('users').selectAll().where('tenant_id', '=', input.cert.tenant_id).where('login_id', '=', loginId).executeTakeFirst();
  // Verify even for an unknown user so both answers take the same time.
  const passwordOk = await verifyPassword(input.password, user?.password_hash ?? DUMMY_HASH);
  const failure: 'user_not_in_tenant' | 'wrong_password' | 'user_locked' | null = !user ? 'user_not_in_tenant' : !passwordOk ? 'wrong_password' : user.locked_at ? 'user_locked' : null;

  if (failure) {
    await db.transaction().execute(async (trx) => {
      const locked = await recordFailure(trx, now, keys, policy);
      await audit(trx, now, input.cert, 'login.failed', { loginId, reason: failure, ...(locked ? { locked: true } : {}) });
    });
    return { ok: false, reason: failure };
  }

  const institutions = await db
    .selectFrom('user_institutions as ui')
    .innerJoin('institutions as i', 'i.id', 'ui.institution_id')
    .selectAll('i')
    .where('ui.user_id', '=', user!.id)
    .orderBy('i.number')
    .execute();
  await db.transaction().execute(async (trx) => {
    await releaseCheck(trx, keys);
    await audit(trx, now, input.cert, 'login.succeeded', { loginId, userId: user!.id });
  });
  return { ok: true, user: user!, institutions };
}

function audit(db: Db, at: Date, cert: CertificateRow, action: string, details: Record<string, unknown>) {
  return appendAudit(db, at, { actor: `cert:${cert.serial}`, action, tenantId: cert.tenant_id, target: `user:${String(details.loginId)}`, details });
}

/** A valid scrypt hash of a random string, verified against when the login ID does not exist. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
