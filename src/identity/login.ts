import type { Db } from '../db/database.js';
import type { CertificateRow, Institution, User } from '../db/schema.js';
import type { Clock } from '../clock.js';
import { appendAudit } from '../audit/log.js';
import { verifyPassword } from './passwords.js';

/**
 * Password login on top of the certificate. The user must belong to the certificate's tenant.
 * Failures are throttled per login ID and per certificate: after 5 failures both are locked for
 * 15 minutes, whatever the password, so guessing from one PC or against one login both stop.
 */
export interface LoginPolicy {
  maxFailures: number;
  lockMinutes: number;
}
export const DEFAULT_LOGIN_POLICY: LoginPolicy = { maxFailures: 5, lockMinutes: 15 };

export type LoginResult =
  | { ok: true; user: User; institutions: Institution[] }
  | { ok: false; reason: 'locked'; until: Date }
  | { ok: false; reason: 'user_not_in_tenant' | 'wrong_password' | 'user_locked' };

export async function login(deps: { db: Db; clock: Clock; policy?: LoginPolicy }, input: { cert: CertificateRow; loginId: string; password: string }): Promise<LoginResult> {
  const { db, clock } = deps;
  const policy = deps.policy ?? DEFAULT_LOGIN_POLICY;
  const now = clock.now();
  const loginId = input.loginId.trim();
  const keys = [`login:${input.cert.tenant_id}:${loginId}`, `cert:${input.cert.id}`];

  const locks = await db.selectFrom('login_throttle').selectAll().where('key', 'in', keys).execute();
  const lockedUntil = locks.map((l) => (l.locked_until ? new Date(l.locked_until) : undefined)).filter((d): d is Date => !!d && d > now);
  if (lockedUntil.length) {
    const until = new Date(Math.max(...lockedUntil.map((d) => d.getTime())));
    await db.transaction().execute((trx) => audit(trx, now, input.cert, 'login.refused_locked', { loginId, until: until.toISOString() }));
    return { ok: false, reason: 'locked', until };
  }

  const user = await db.selectFrom('users').selectAll().where('tenant_id', '=', input.cert.tenant_id).where('login_id', '=', loginId).executeTakeFirst();
  // Verify even for an unknown user so both answers take the same time.
  const passwordOk = await verifyPassword(input.password, user?.password_hash ?? DUMMY_HASH);
  const failure: 'user_not_in_tenant' | 'wrong_password' | 'user_locked' | null = !user ? 'user_not_in_tenant' : !passwordOk ? 'wrong_password' : user.locked_at ? 'user_locked' : null;

  if (failure) {
    await db.transaction().execute(async (trx) => {
      for (const key of keys) {
        // Count in the database, not read-then-write: failures arriving at once (several instances
        // on PostgreSQL) would otherwise both insert the first row (a 500) or overwrite each other's
        // count, letting a guesser past the limit. The row exists first; the increment takes its lock.
        await trx.insertInto('login_throttle').values({ key, failures: 0, last_failure_at: now.toISOString(), locked_until: null }).onConflict((oc) => oc.column('key').doNothing()).execute();
        const { failures } = await trx
          .updateTable('login_throttle')
          .set((eb) => ({ failures: eb('failures', '+', 1), last_failure_at: now.toISOString() }))
          .where('key', '=', key)
          .returning('failures')
          .executeTakeFirstOrThrow();
        const locked_until = failures >= policy.maxFailures ? new Date(now.getTime() + policy.lockMinutes * 60_000).toISOString() : null;
        await trx.updateTable('login_throttle').set({ locked_until }).where('key', '=', key).execute();
      }
      await audit(trx, now, input.cert, 'login.failed', { loginId, reason: failure });
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
    await trx.deleteFrom('login_throttle').where('key', 'in', keys).execute();
    await audit(trx, now, input.cert, 'login.succeeded', { loginId, userId: user!.id });
  });
  return { ok: true, user: user!, institutions };
}

function audit(db: Db, at: Date, cert: CertificateRow, action: string, details: Record<string, unknown>) {
  return appendAudit(db, at, { actor: `cert:${cert.serial}`, action, tenantId: cert.tenant_id, target: `user:${String(details.loginId)}`, details });
}

/** A valid scrypt hash of a random string, verified against when the login ID does not exist. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
