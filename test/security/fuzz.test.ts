import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeFuzzTarget, normalVisit, runFuzz, type FuzzMode, type FuzzReport } from './fuzz.js';

/**
 * The bounded fuzz run of CI: a few thousand malformed requests across every route and form, with
 * and without a logged-in session and its CSRF token, in direct mode (mTLS), in proxy mode (plain
 * HTTP and the certificate header, nothing in front) and behind the shipped nginx configuration. Not one may be answered with a 5xx or break the
 * connection, and the server must serve a normal visit afterwards.
 *
 * `npm run fuzz -- --seed N --cases N` is the long run (scripts/fuzz.ts sets the variables below).
 * The default seed is fixed, so a failure reproduces; KENSHIN_FUZZ_SEED tries another sequence.
 */
const SEED = Number(process.env.KENSHIN_FUZZ_SEED ?? 20261202);
// Behind nginx each request costs a second TLS hop and nginx answers much of the junk itself: fewer cases there.
const casesFor = (mode: FuzzMode) => Number(process.env.KENSHIN_FUZZ_CASES ?? (mode === 'nginx' ? 1000 : 2500));
const MODES = (process.env.KENSHIN_FUZZ_MODES ?? 'direct,proxy,nginx').split(',') as FuzzMode[];

const explain = (r: FuzzReport) =>
  [
    `${r.mode}: ${r.cases} cases, seed ${r.seed}, statuses ${JSON.stringify(r.statuses)}`,
    ...r.serverErrors.slice(0, 10).map((e) => `  ${e.status} ${e.summary}\n    ${e.body}`),
    ...r.transportErrors.slice(0, 10).map((e) => `  transport: ${e.error} ${e.summary}`),
  ].join('\n');

for (const mode of MODES) {
  describe(`fuzzing every route in ${mode} mode`, async () => {
    const target = await makeFuzzTarget(mode);
    const CASES = casesFor(mode);

    test(`${CASES} malformed requests: no 5xx, no broken connection, and a normal visit still works`, async (t) => {
      const seed = SEED + MODES.indexOf(mode);
      const r = await runFuzz(target, {
        seed,
        cases: CASES,
        onProgress: (done) => (CASES >= 20_000 && done % 10_000 === 0 ? process.stderr.write(`fuzz ${mode}: ${done}/${CASES}\n`) : undefined),
      });
      const fiveXX = Object.entries(r.statuses).reduce((n, [s, c]) => (Number(s) >= 500 ? n + c : n), 0);
      t.diagnostic(`fuzz ${mode}: ${r.cases} cases, seed ${seed}, ${(r.durationMs / 1000).toFixed(1)} s, ${fiveXX} 5xx, ${r.transportErrorCount} transport errors, ${r.reachedHandlers} reached handlers, statuses ${JSON.stringify(r.statuses)}`);
      assert.equal(r.cases, CASES);
      assert.equal(r.serverErrorCount, 0, explain(r));
      assert.equal(r.transportErrorCount, 0, explain(r));
      // The cases are not all stopped at the door: many reach the handlers behind identity and CSRF.
      assert.ok(r.reachedHandlers > CASES / 10, explain(r));
      assert.deepEqual(await normalVisit(target), { health: 200, home: 200, api: 200 });
    });
  });
}
