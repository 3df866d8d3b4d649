import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * CSRF tokens. Logged in, the token lives in the server-side session. Before login (the login
 * form) it is an HMAC of a random cookie, so no server state is needed for anonymous visitors.
 * Cookies are SameSite=Strict as well; the token is the defence that does not depend on browsers.
 */
export function preLoginToken(key: Buffer, cookieValue: string): string {
  return createHmac('sha256', key).update('csrf:' + cookieValue).digest('base64url');
}

export const newPreLoginCookie = () => randomBytes(18).toString('base64url');

export function tokensMatch(expected: string | undefined, given: unknown): boolean {
  if (!expected || typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
