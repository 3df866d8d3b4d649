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
  // By the cookie's token, so a hit costs no hash; by the session's id hash (what the database and
  // the change events know) to drop it. Both live only in this process's memory, like the session
  // cookie in the request being answered.
  const entries = new Map<string, Entry & { idHash: string }>();
  const tokenOf = new Map<string, string>();
  const drop = (token: string) => {
    const e = entries.get(token);
    if (e) tokenOf.delete(e.idHash);
    entries.delete(token);
  };
  const stop = onSessionsChanged((idHash) => {
    if (idHash === undefined) {
      entries.clear();
      tokenOf.clear();
      return;
    }
    const token = tokenOf.get(idHash);
    if (token !== undefined) drop(token);
  });
  return {
    get(token, certificateId, when) {
      if (ttlMs <= 0) return undefined;
      const e = entries.get(token);
      if (!e) return undefined;
      const fresh = when.tick - e.tick < ttlMs && when.at >= e.at && when.at - e.at < ttlMs && when.kid === e.kid;
      // Another certificate with this cookie: not ours to answer; the full check ends the session.
      if (!fresh || e.certificateId !== certificateId) {
        drop(token);
        return undefined;
      }
      return e.headers;
    },
    set(token, certificateId, headers, when) {
      if (ttlMs <= 0) return;
      // Oldest first out: a Map iterates in insertion order.
      if (entries.size >= MAX_ENTRIES) drop(entries.keys().next().value!);
      drop(token);
      const idHash = hashToken(token);
      entries.set(token, { idHash, certificateId, tick: when.tick, at: when.at, kid: when.kid, headers });
      tokenOf.set(idHash, token);
    },
    close: () => void stop(),
  };
}
