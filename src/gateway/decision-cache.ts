import { hashToken, onSessionsChanged } from '../identity/sessions.js';

/**
 * Forward auth runs before every request to the application — each page, image and XHR — and its
 * full answer costs five queries and an ES256 signature. A browser asks many times a second, with the
 * same session and certificate, and the answer does not change in between. So an allowed decision
 * (the identity headers, the signed assertion included) is kept for TTL_MS per session and
 * certificate.
 *
 * What keeps it correct:
 * - the certificate is still looked up on every request (identify, before this cache), so an
 *   expired or revoked certificate is refused at once;
 * - a change to the session in this process (logout, 健診機関, 「あとで」, a new login, a user
 *   locked, a certificate revoked) drops the entry at once (identity/sessions.ts#sessionsChanged);
 * - a change made by another instance is seen within TTL_MS;
 * - the assertion inside is at most TTL_MS older than a fresh one (it is valid for 60 s);
 * - only "allowed" is kept: a refusal is computed again each time (it leads to the login anyway).
 */
export const TTL_MS = 1_000;
const MAX_ENTRIES = 20_000;

interface Entry {
  certificateId: number;
  /** Machine time (performance.now) and the service's clock when the database was asked. */
  tick: number;
  at: number;
  kid: string;
  headers: Record<string, string>;
}

/**
 * Both clocks: machine time bounds how stale an entry may get; the service's clock (idle timeout,
 * days left, the renewal window) must not have moved by a cache lifetime either — a test or an
 * operator's clock that jumps ahead is a new question.
 */
export interface When {
  tick: number;
  at: number;
  /** The assertion key in use: after `kenshin gateway rotate-key` and a reload, nothing signed by the old one is handed out. */
  kid: string;
}

export interface DecisionCache {
  get(token: string, certificateId: number, when: When): Record<string, string> | undefined;
  set(token: string, certificateId: number, headers: Record<string, string>, when: When): void;
  /** Stops listening to session changes (tests build many apps in one process). */
  close(): void;
}

export function decisionCache(ttlMs = TTL_MS): DecisionCache {
  // By session (the hash the database keeps, never the token): one entry each, for its certificate.
  const entries = new Map<string, Entry>();
  const stop = onSessionsChanged((idHash) => (idHash === undefined ? entries.clear() : entries.delete(idHash)));
  return {
    get(token, certificateId, when) {
      if (ttlMs <= 0) return undefined;
      const key = hashToken(token);
      const e = entries.get(key);
      if (!e) return undefined;
      const fresh = when.tick - e.tick < ttlMs && when.at >= e.at && when.at - e.at < ttlMs && when.kid === e.kid;
      // Another certificate with this cookie: not ours to answer; the full check ends the session.
      if (!fresh || e.certificateId !== certificateId) {
        entries.delete(key);
        return undefined;
      }
      return e.headers;
    },
    set(token, certificateId, headers, when) {
      if (ttlMs <= 0) return;
      // Oldest first out: a Map iterates in insertion order.
      if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value!);
      entries.set(hashToken(token), { certificateId, tick: when.tick, at: when.at, kid: when.kid, headers });
    },
    close: () => void stop(),
  };
}
