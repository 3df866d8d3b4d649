import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Session } from '../db/schema.js';
import type { Clock } from '../clock.js';

/**
 * Server-side sessions. The cookie carries a random token; the database keeps only its hash.
 * A session belongs to the certificate it was opened with: a request presenting any other
 * certificate ends it (see web/session.ts), so a stolen cookie is useless without the key.
 */
export interface SessionPolicy {
  idleMinutes: number;
  /**
   * Absolute lifetime whatever the activity: a session left open on a clinic's shared PC, or a
   * cookie that leaked, ends after a working day at the latest.
   */
  maxHours: number;
}

function expired(s: Pick<Session, 'created_at' | 'last_seen_at'>, now: Date, policy: SessionPolicy): boolean {
  return now.getTime() - new Date(s.last_seen_at).getTime() > policy.idleMinutes * 60_000 || now.getTime() - new Date(s.created_at).getTime() > policy.maxHours * 3_600_000;
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Told when sessions change in this process: one (by id hash) or, when undefined, any number (a
 * user locked, a certificate revoked). The gateway's decision cache listens, so a logout or a
 * 健診機関 change is seen by the very next application request, not a cache lifetime later.
 */
type SessionListener = (idHash: string | undefined) => void;
const listeners = new Set<SessionListener>();
export function onSessionsChanged(listener: SessionListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
export function sessionsChanged(idHash?: string): void {
  for (const l of listeners) l(idHash);
}

export async function createSession(db: Db, clock: Clock, input: { userId: number; certificateId: number; institutionId: number | null }): Promise<{ token: string; session: Session }> {
  const token = randomBytes(32).toString('base64url');
  const now = clock.now().toISOString();
  const session = await db
    .insertInto('sessions')
    .values({ id_hash: hashToken(token), user_id: input.userId, certificate_id: input.certificateId, institution_id: input.institutionId, csrf_token: randomBytes(24).toString('base64url'), renewal_deferred: 0, created_at: now, last_seen_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { token, session };
}

/**
 * The live session for a cookie value, or undefined (unknown, idle too long or too old: then deleted).
 * `touchAfterMs`: refresh last_seen_at only when it is at least this old. The gateway's
 * /auth/verify runs before every request to the application (pages, images, XHR), and a write per
 * call would make the database the bottleneck; a minute of slack on a 30-minute idle timeout is
 * nothing. Portal pages touch on every request (0).
 */
export async function loadSession(db: Db, clock: Clock, token: string | undefined, policy: SessionPolicy, opts: { touchAfterMs?: number } = {}): Promise<Session | undefined> {
  if (!token) return undefined;
  const s = await db.selectFrom('sessions').selectAll().where('id_hash', '=', hashToken(token)).executeTakeFirst();
  if (!s) return undefined;
  const now = clock.now();
  if (expired(s, now, policy)) {
    await db.deleteFrom('sessions').where('id_hash', '=', s.id_hash).execute();
    return undefined;
  }
  if (now.getTime() - new Date(s.last_seen_at).getTime() < (opts.touchAfterMs ?? 0)) return s;
  await db.updateTable('sessions').set({ last_seen_at: now.toISOString() }).where('id_hash', '=', s.id_hash).execute();
  return { ...s, last_seen_at: now.toISOString() };
}

export async function updateSession(db: Db, session: Session, changes: Partial<Pick<Session, 'institution_id' | 'renewal_deferred'>>): Promise<Session> {
  await db.updateTable('sessions').set(changes).where('id_hash', '=', session.id_hash).execute();
  sessionsChanged(session.id_hash);
  return { ...session, ...changes };
}

export async function endSession(db: Db, session: Pick<Session, 'id_hash'>): Promise<void> {
  await db.deleteFrom('sessions').where('id_hash', '=', session.id_hash).execute();
  sessionsChanged(session.id_hash);
}

/** The session behind a cookie value, whatever its state: to end it (logout, a new login). */
export async function endSessionByToken(db: Db, token: string | undefined): Promise<void> {
  if (!token) return;
  const idHash = hashToken(token);
  await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
  sessionsChanged(idHash);
}

/** Housekeeping: deletes the sessions that are idle too long or past their absolute lifetime. */
export async function purgeExpiredSessions(db: Db, clock: Clock, policy: SessionPolicy): Promise<number> {
  const now = clock.now().getTime();
  const idleBefore = new Date(now - policy.idleMinutes * 60_000).toISOString();
  const createdBefore = new Date(now - policy.maxHours * 3_600_000).toISOString();
  const r = await db
    .deleteFrom('sessions')
    .where((eb) => eb.or([eb('last_seen_at', '<', idleBefore), eb('created_at', '<', createdBefore)]))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
