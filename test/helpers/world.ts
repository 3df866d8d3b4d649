import { after } from 'node:test';
import { loadConfig, dataPaths, type Config } from '../../src/config.js';
import { createHierarchy } from '../../src/ca/hierarchy.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { fixedClock } from '../../src/clock.js';
import type { Dialect } from '../../src/db/database.js';
import { tempDir } from './tmp.js';
import { freshDatabaseUrl } from './databases.js';
import { T0 } from './dates.js';

/**
 * A complete, real Kenshin installation in a temp dir: a freshly generated CA, a real SQLite file
 * (or a fresh PostgreSQL database), and a clock the test controls. No mocks.
 */
export interface World {
  dir: string;
  config: Config;
  runtime: Runtime;
  clock: ReturnType<typeof fixedClock>;
  /** Registers cleanup that must run before the database goes away (servers, pools); runs last-in first-out. */
  onClose(fn: () => Promise<void>): void;
}

// The world starts at the real now: see helpers/dates.ts for why.
export { T0 } from './dates.js';

export async function makeWorld(dialect: Dialect, opts: { env?: Record<string, string>; now?: string } = {}): Promise<World> {
  const dir = tempDir();
  const db = await freshDatabaseUrl(dialect);
  const env: Record<string, string | undefined> = { KENSHIN_CA_PASSPHRASE: 'test-passphrase', KENSHIN_LOG_LEVEL: 'silent', KENSHIN_METRICS_LISTEN: '127.0.0.1:0', ...opts.env, KENSHIN_DATABASE_URL: db.url };
  const config = loadConfig({ dataDir: dir }, env);
  const clock = fixedClock(opts.now ?? T0);
  await createHierarchy({ paths: dataPaths(dir), keyType: 'p256', commonNamePrefix: 'Kenshin Test', passphraseFromEnv: config.caPassphrase, now: clock.now() });
  const runtime = await openRuntime(config, { clock, create: true });
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    await runtime.close();
    await db.drop();
  });
  return { dir, config, runtime, clock, onClose: (fn) => void cleanups.push(fn) };
}
