import { addYears, DAY_MS } from '../../src/clock.js';

/**
 * The instant every world starts at: the real now, in whole seconds (X.509 dates have no
 * fractions). Kenshin reads the clock a test hands it, but openssl, NSS, Node's TLS, nginx and
 * Chromium read the machine's, so a world whose output they check must be built at the real time.
 * A fixed date here made the suite fail a few days after it was written (CRLs with a 2-day
 * nextUpdate, certificates made "1 day from now" crossing their dates). Tests that need time to
 * pass advance the fixed clock from here, and hand the same instant to a real tool (-attime).
 */
export const T0 = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();

/** T0 (or `from`) plus N days, as ISO-8601. */
export function daysAfter(days: number, from: string | Date = T0): string {
  return new Date(new Date(from).getTime() + days * DAY_MS).toISOString();
}

/** The default 3-year notAfter of a certificate issued at T0. */
export function threeYearsAfter(from: string | Date = T0): string {
  return addYears(new Date(from), 3).toISOString();
}

/** The date a Japanese user reads (Asia/Tokyo is UTC+9 all year): YYYY-MM-DD. Independent of the code under test. */
export function jstDate(d: string | Date): string {
  return new Date(new Date(d).getTime() + 9 * 3600_000).toISOString().slice(0, 10);
}

/** Seconds since the epoch, what `openssl verify -attime` takes: to check a CRL at Kenshin's moved clock. */
export function epochSeconds(d: Date): string {
  return String(Math.floor(d.getTime() / 1000));
}
