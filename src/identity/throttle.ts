import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { appendAudit } from '../audit/log.js';

/**
 * Login throttling: at most `maxFailures` password checks per key (a login ID, a certificate) in a
 * window, however many requests arrive at once and on however many instances.
 *
 * A check is *reserved* before the password is verified: the counter goes up first, under the
 * row's lock, and only while it is below the limit. Reading the lock and counting the failure
 * afterwards (as before) let 40 parallel requests all pass the read and all verify a password.
 * A success gives back only its own reservation, so it cannot erase failures someone else made
 * meanwhile; a failure keeps it, and the one that reaches the limit locks the key.
 *
 * The window: failures are counted from the first one for `lockMinutes`; after that quiet period,
 * or once a lock has expired, counting starts again at zero (one typo after a lock does not lock
 * again). Attempts refused while locked only increment `refused`: the first is audited at once, the
 * total once when the lock ends, so a flood of refused attempts cannot flood the audit log.
 */
export interface LoginPolicy {
  maxFailures: number;
  lockMinutes: number;
}
export const DEFAULT_LOGIN_POLICY: LoginPolicy = { maxFailures: 5, lockMinutes: 15 };

export type Reservation = { ok: true } | { ok: false; until: Date; firstRefusal: boolean };

interface Row {
  key: string;
  failures: number;
  locked_until: string | null;
  window_started_at: string | null;
  last_failure_at: string;
  refused: number;
}

const SYSTEM_ACTOR = 'system:login-throttle';

/** Whether a row's window is over: its lock has expired, or no lock and the window has passed. */
function windowOver(row: Row, now: Date, policy: LoginPolicy): boolean {
  if (row.locked_until) return new Date(row.locked_until) <= now;
  const started = new Date(row.window_started_at ?? row.last_failure_at).getTime();
  return now.getTime() - started >= policy.lockMinutes * 60_000;
}

/** Writes the coalesced audit event for a lock that turned attempts away, when it ends. */
async function auditEndedLock(trx: Db, now: Date, row: Row, tenantId: number | null): Promise<void> {
  if (row.refused <= 1) return; // the first refusal was audited when it happened
  await appendAudit(trx, now, {
    actor: SYSTEM_ACTOR,
    action: 'login.refused_locked_total',
    tenantId,
    target: row.key,
    details: { key: row.key, refused: row.refused, lockedUntil: row.locked_until },
  });
}

/**
 * Reserves one password check for every key, or none: refused when any key is locked or has all
 * its checks in use. Runs in the caller's transaction.
 */
export async function reserveCheck(trx: Db, now: Date, keys: string[], policy: LoginPolicy, tenantId: number | null): Promise<Reservation> {
  const rows: Row[] = [];
  for (const key of keys) {
    const at = now.toISOString();
    await trx.insertInto('login_throttle').values({ key, failures: 0, last_failure_at: at, locked_until: null, window_started_at: at, refused: 0 }).onConflict((oc) => oc.column('key').doNothing()).execute();
    // A write first: it takes the row lock on PostgreSQL (the write lock on SQLite), so what is
    // read next cannot change before this transaction writes it back.
    await trx.updateTable('login_throttle').set({ key }).where('key', '=', key).execute();
    let row = (await trx.selectFrom('login_throttle').selectAll().where('key', '=', key).executeTakeFirstOrThrow()) as Row;
    if (windowOver(row, now, policy)) {
      await auditEndedLock(trx, now, row, tenantId);
      row = { ...row, failures: 0, locked_until: null, window_started_at: at, refused: 0 };
      await trx.updateTable('login_throttle').set({ failures: 0, locked_until: null, window_started_at: at, refused: 0 }).where('key', '=', key).execute();
    }
    rows.push(row);
  }
  const blocked = rows.filter((r) => (r.locked_until && new Date(r.locked_until) > now) || r.failures >= policy.maxFailures);
  if (blocked.length) {
    let firstRefusal = false;
    let until = now;
    for (const r of blocked) {
      // All checks in use but no lock yet (they are still running): refuse for a lock period.
      const u = r.locked_until ? new Date(r.locked_until) : new Date(now.getTime() + policy.lockMinutes * 60_000);
      if (u > until) until = u;
      if (r.refused === 0) firstRefusal = true;
      await trx.updateTable('login_throttle').set({ refused: r.refused + 1 }).where('key', '=', r.key).execute();
    }
    return { ok: false, until, firstRefusal };
  }
  for (const r of rows) await trx.updateTable('login_throttle').set({ failures: r.failures + 1, last_failure_at: now.toISOString() }).where('key', '=', r.key).execute();
  return { ok: true };
}

/** A failed check keeps its reservation; the one that reaches the limit locks the key. */
export async function recordFailure(trx: Db, now: Date, keys: string[], policy: LoginPolicy): Promise<boolean> {
  let locked = false;
  const until = new Date(now.getTime() + policy.lockMinutes * 60_000).toISOString();
  for (const key of keys) {
    const r = await trx.updateTable('login_throttle').set({ locked_until: until }).where('key', '=', key).where('failures', '>=', policy.maxFailures).where('locked_until', 'is', null).executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) locked = true;
  }
  return locked;
}

/** A successful check gives back its own reservation only. */
export async function releaseCheck(trx: Db, keys: string[]): Promise<void> {
  for (const key of keys) await trx.updateTable('login_throttle').set((eb) => ({ failures: eb('failures', '-', 1) })).where('key', '=', key).where('failures', '>', 0).execute();
}

/** Housekeeping: rows whose window is over are deleted (with the audit total of a lock that refused attempts). */
export async function purgeLoginThrottle(deps: { db: Db; clock: Clock; policy?: LoginPolicy }): Promise<number> {
  const now = deps.clock.now();
  const policy = deps.policy ?? DEFAULT_LOGIN_POLICY;
  const windowStart = new Date(now.getTime() - policy.lockMinutes * 60_000).toISOString();
  const rows = (await deps.db
    .selectFrom('login_throttle')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('locked_until', 'is not', null), eb('locked_until', '<=', now.toISOString())]),
        eb.and([eb('locked_until', 'is', null), eb(eb.fn.coalesce('window_started_at', 'last_failure_at'), '<=', windowStart)]),
      ]),
    )
    .execute()) as Row[];
  let purged = 0;
  for (const candidate of rows) {
    await deps.db.transaction().execute(async (trx) => {
      await trx.updateTable('login_throttle').set({ key: candidate.key }).where('key', '=', candidate.key).execute();
      const row = (await trx.selectFrom('login_throttle').selectAll().where('key', '=', candidate.key).executeTakeFirst()) as Row | undefined;
      // Another login may have started a new window meanwhile: then it stays.
      if (!row || !windowOver(row, now, policy)) return;
      await auditEndedLock(trx, now, row, null);
      await trx.deleteFrom('login_throttle').where('key', '=', row.key).execute();
      purged++;
    });
  }
  return purged;
}
