/**
 * `npm run fuzz [-- --seed N] [--cases N] [--modes direct,proxy,nginx]`: the long fuzz run, the same
 * fuzzer and assertions as CI's bounded one (test/security/fuzz.test.ts) with more cases
 * (100,000 per mode by default). It prints cases, duration, status counts and the 5xx count per mode.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 1_000_000_000) },
    cases: { type: 'string', default: '100000' },
    modes: { type: 'string', default: 'direct,proxy,nginx' },
  },
});
for (const [k, v] of [['seed', values.seed], ['cases', values.cases]] as const) {
  if (!/^\d+$/.test(v)) {
    process.stderr.write(`--${k}: expected a whole number, got "${v}"\n`);
    process.exit(2);
  }
}
if (!/^(direct|proxy|nginx)(,(direct|proxy|nginx))*$/.test(values.modes)) {
  process.stderr.write(`--modes: expected a comma-separated list of direct, proxy, nginx, got "${values.modes}"\n`);
  process.exit(2);
}
process.stderr.write(`fuzz: seed ${values.seed}, ${values.cases} cases per mode (${values.modes})\n`);
const root = path.resolve(import.meta.dirname, '..');
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', 'test/security/fuzz.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, KENSHIN_FUZZ_SEED: values.seed, KENSHIN_FUZZ_CASES: values.cases, KENSHIN_FUZZ_MODES: values.modes },
});
process.exit(r.status ?? 1);
