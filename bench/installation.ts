import { loadConfig, dataPaths } from '../src/config.js';
import { createHierarchy, loadAuthorityMaterial } from '../src/ca/hierarchy.js';
import { startMintPool } from '../src/ca/mint-pool.js';
import { openRuntime } from '../src/runtime.js';
import { addTenant } from '../src/tenancy/service.js';

/**
 * A fresh installation in `dir` for the issuing benchmarks: the CA hierarchy, the SQLite runtime,
 * one tenant, and a mint pool of `workers` threads (as `kenshin serve` and `kenshin onboard` start it).
 */
export async function benchInstallation(dir: string, tenant: { code: string; name: string }, pool: { workers: number; keyPoolSize?: number }) {
  const passphrase = 'bench-passphrase';
  const config = loadConfig({ dataDir: dir }, { KENSHIN_CA_PASSPHRASE: passphrase });
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Bench', passphraseFromEnv: passphrase, now: new Date() });
  const rt = await openRuntime(config, { create: true });
  await addTenant({ db: rt.database.db, clock: rt.clock }, tenant, 'bench');
  const material = await loadAuthorityMaterial(paths, passphrase, undefined);
  const minter = startMintPool(pool.keyPoolSize === undefined ? material : { ...material, keyPoolSize: pool.keyPoolSize }, pool.workers);
  await minter.ready;
  return { passphrase, paths, rt, pool: minter };
}
