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
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

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

/** The live session for a cookie value, or undefined (unknown, or idle too long: then deleted). */
export async function loadSession(db: Db, clock: Clock, token: string | undefined, policy: SessionPolicy): Promise<Session | undefined> {
  if (!token) return undefined;
  const s = await db.selectFrom('sessions').selectAll().where('id_hash', '=', hashToken(token)).executeTakeFirst();
  if (!s) return undefined;
  const now = clock.now();
  if (now.getTime() - new Date(s.last_seen_at).getTime() > policy.idleMinutes * 60_000) {
    await db.deleteFrom('sessions').where('id_hash', '=', s.id_hash).execute();
    return undefined;
  }
  await db.updateTable('sessions').set({ last_seen_at: now.toISOString() }).where('id_hash', '=', s.id_hash).execute();
  return { ...s, last_seen_at: now.toISOString() };
}

export async function updateSession(db: Db, session: Session, changes: Partial<Pick<Session, 'institution_id' | 'renewal_deferred'>>): Promise<Session> {
  await db.updateTable('sessions').set(changes).where('id_hash', '=', session.id_hash).execute();
  return { ...session, ...changes };
}

export async function endSession(db: Db, session: Pick<Session, 'id_hash'>): Promise<void> {
  await db.deleteFrom('sessions').where('id_hash', '=', session.id_hash).execute();
}
