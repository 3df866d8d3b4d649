import fs from 'node:fs';
import path from 'node:path';
import { dataPaths, type Config } from '../config.js';
import { createHierarchy, isInitialised } from '../ca/hierarchy.js';
import { readPassphrase } from '../ca/keystore.js';
import { ensureServerCertificate } from '../ca/server-certificate.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { Refusal } from '../errors.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { createDemo, type DemoResult } from './demo.js';
import { withDataDirLock } from '../ca/data-dir-lock.js';
import { ensurePrivateDir } from '../private-files.js';

export interface InitResult {
  dataDir: string;
  rootCert: string;
  serverCert: string;
  database: string;
  demo: DemoResult | undefined;
}

/** Refuses early, before anything is written, when the data directory cannot be written to. */
export function assertWritableDir(dir: string): void {
  try {
    ensurePrivateDir(dir);
    const probe = path.join(dir, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new Refusal('data_dir_not_writable', `data directory ${dir} is not writable (${code})`, { field: 'data-dir' });
  }
}

/**
 * `kenshin init`: CA hierarchy, database, server certificate and optionally the demo tenant.
 * Order matters for "nothing half-done": the CA appears atomically (see createHierarchy), and
 * everything after it is idempotent, so a failed init can be completed by `kenshin serve`.
 * It runs under the data directory's lock, so a second init started at the same moment (two
 * `serve --init` sharing the directory) waits for the first and then finds it initialised.
 */
export async function initialise(config: Config, opts: { demo: boolean; clock?: Clock }): Promise<InitResult> {
  const clock = opts.clock ?? systemClock;
  const paths = dataPaths(config.dataDir);
  assertWritableDir(paths.dataDir);
  return withDataDirLock(paths.dataDir, async () => {
    if (isInitialised(paths)) {
      throw new Refusal('already_initialized', `${paths.dataDir} is already initialised (CA at ${paths.rootCert}); refusing to overwrite it`, { field: 'data-dir' });
    }
    await createHierarchy({ paths, keyType: config.caKeyType, commonNamePrefix: 'Kenshin Cloud', passphraseFromEnv: config.caPassphrase, now: clock.now() });
    const rt = await openRuntime(config, { clock, create: true });
    try {
      await ensureServerCertificate(await rt.authority(), paths, config.serverNames, readPassphrase(config.caPassphrase, paths.caPassphraseFile), clock.now());
      const demo = opts.demo ? await createDemo(rt) : undefined;
      return { dataDir: paths.dataDir, rootCert: paths.rootCert, serverCert: paths.serverCert, database: describeDatabase(rt), demo };
    } finally {
      await rt.close();
    }
  });
}

/**
 * `serve --init`: initialises a fresh data directory; undefined when it already is, whether from
 * an earlier run or from another instance that started at the same moment and got the lock first.
 */
export async function initialiseIfNeeded(config: Config, opts: { demo: boolean; clock?: Clock }): Promise<InitResult | undefined> {
  // An initialised (perhaps read-only) directory is left alone: no lock file is written there.
  if (isInitialised(dataPaths(config.dataDir))) return undefined;
  try {
    return await initialise(config, opts);
  } catch (e) {
    if (e instanceof Refusal && e.code === 'already_initialized') return undefined;
    throw e;
  }
}

export function describeDatabase(rt: Runtime): string {
  return rt.database.dialect === 'postgres' ? 'PostgreSQL (KENSHIN_DATABASE_URL)' : rt.paths.sqliteFile;
}
