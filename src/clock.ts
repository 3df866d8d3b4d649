/**
 * Everything about certificates is about time (the 90-day window, expiry, package lifetimes),
 * so services take a clock instead of calling Date.now(): tests pin it to "60 days before expiry".
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export function fixedClock(at: Date | string): Clock & { set(d: Date | string): void; advance(ms: number): void } {
  let t = new Date(at).getTime();
  return {
    now: () => new Date(t),
    set: (d) => {
      t = new Date(d).getTime();
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

export const DAY_MS = 86_400_000;

/** Adds calendar years the way a person reads a validity period: 2026-11-25 + 3y = 2029-11-25. */
export function addYears(d: Date, years: number): Date {
  const r = new Date(d.getTime());
  r.setUTCFullYear(r.getUTCFullYear() + years);
  // 29 Feb + 1y would roll to 1 Mar; clamp to the last day of February instead.
  if (r.getUTCDate() !== d.getUTCDate()) r.setUTCDate(0);
  return r;
}
