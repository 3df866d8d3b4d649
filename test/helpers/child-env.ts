/**
 * The environment a child process of a test starts from: PATH and HOME only, so a developer's
 * KENSHIN_* settings never leak into a test. The libfaketime variables pass through, so a run of
 * the whole suite under `faketime -f +400d npm test` (how the suite is checked on other dates)
 * moves the children's clock with the parent's instead of splitting one world across two dates.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, HOME: process.env.HOME };
  for (const [k, v] of Object.entries(process.env)) if (k === 'LD_PRELOAD' || k.startsWith('FAKETIME') || k === 'DONT_FAKE_MONOTONIC') env[k] = v;
  return { ...env, ...extra };
}
