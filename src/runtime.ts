import { dataPaths, type Config, type DataPaths } from './config.js';
import { openDatabase, migrate, type Database } from './db/database.js';
import { loadCaSet, loadIssuingAuthority, type CaSet } from './ca/hierarchy.js';
import type { IssuingAuthority } from './ca/authority.js';
import { systemClock, type Clock } from './clock.js';
import type { CertificateDeps } from './certificates/service.js';
import type { RenewalDeps } from './renewal/service.js';
import { loadPackageKey, packageVault, type PackageVault } from './renewal/package-vault.js';
import { inProcessMinter, type Minter } from './ca/mint.js';

/**
 * The assembled service: configuration, database and CA, opened once per process and handed
 * to the CLI commands and the web server. The CA keys are loaded lazily: commands that only touch
 * tenants and users work without the CA passphrase. Loaded once: after `kenshin ca rotate`, a
 * running process keeps the CAs it loaded until it restarts.
 */
export interface Runtime {
  config: Config;
  paths: DataPaths;
  database: Database;
  clock: Clock;
  /** The current issuing CA: signs every new certificate. */
  authority(): Promise<IssuingAuthority>;
  /** The root and every issuing CA generation with their keys: what publishes the CRLs. */
  caSet(): Promise<CaSet>;
  /** Services' collaborators; minting happens in this thread unless a minter (e.g. a worker pool) is given. */
  certificateDeps(minter?: Minter): Promise<CertificateDeps>;
  renewalDeps(minter?: Minter): Promise<RenewalDeps>;
  /** Seals renewal packages, console deliveries and CLI handovers (the package key, read once). */
  packageVault(): PackageVault;
  close(): Promise<void>;
}

export async function openRuntime(config: Config, opts: { clock?: Clock; create?: boolean } = {}): Promise<Runtime> {
  const paths = dataPaths(config.dataDir);
  const database = openDatabase({ url: config.databaseUrl, sqliteFile: paths.sqliteFile, create: opts.create ?? false, poolSize: config.dbPool });
  await migrate(database);
  const clock = opts.clock ?? systemClock;
  let authority: Promise<IssuingAuthority> | undefined;
  const getAuthority = () => (authority ??= loadIssuingAuthority(paths, config.caPassphrase, config.crlUrl));
  let caSet: Promise<CaSet> | undefined;
  let vault: PackageVault | undefined;
  const runtime: Runtime = {
    config,
    paths,
    database,
    clock,
    authority: getAuthority,
    caSet: () => (caSet ??= loadCaSet(paths, config.caPassphrase, config.crlUrl)),
    async certificateDeps(minter) {
      const authority = await getAuthority();
      return {
        db: database.db,
        clock,
        minter: minter ?? inProcessMinter(authority),
        issuerFingerprint: await authority.issuingFingerprint(),
        validity: { years: config.certValidityYears, backdateMinutes: config.backdateMinutes },
      };
    },
    async renewalDeps(minter) {
      const c = await runtime.certificateDeps(minter);
      return {
        ...c,
        vault: runtime.packageVault(),
        windowDays: config.renewalWindowDays,
        packageDays: config.packageDays,
      };
    },
    packageVault: () => (vault ??= packageVault(loadPackageKey(config.packageKey, paths.packageKeyFile))),
    close: () => database.close(),
  };
  return runtime;
}
