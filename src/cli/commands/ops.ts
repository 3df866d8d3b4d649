import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { EXIT_FAILED } from '../errors.js';
import { dataPaths, type Config } from '../../config.js';
import { systemClock } from '../../clock.js';
import { createBackup, type BackupResult, type OpsSettings } from '../../ops/backup.js';
import { restoreBackup, type RestoreResult } from '../../ops/restore.js';
import type { DatabaseCounts } from '../../ops/manifest.js';

const ACTOR = 'cli';

function settings(config: Config): OpsSettings {
  const external = { KENSHIN_CONFIG: config.configFile, KENSHIN_TLS_CERT: config.tlsCertFile, KENSHIN_TLS_KEY: config.tlsKeyFile, KENSHIN_CLIENT_CA_FILE: config.clientCaFile };
  return {
    paths: dataPaths(config.dataDir),
    databaseUrl: config.databaseUrl,
    caPassphrase: config.caPassphrase,
    packageKey: config.packageKey,
    externalFiles: Object.entries(external).flatMap(([setting, file]) => (file ? [{ setting, file }] : [])),
  };
}

function describeCounts(c: DatabaseCounts): string {
  return `${c.tenants} tenants, ${c.institutions} 健診機関, ${c.users} users, ${c.certificates} certificates (${c.revokedCertificates} revoked), ${c.renewals} renewals`;
}

function describeBackup(r: BackupResult): string {
  const m = r.manifest;
  const lines = [`backup written to ${r.dir}`];
  if (m.database.dialect === 'sqlite') {
    lines.push(
      `  database:      ${m.database.file} (SQLite online backup, integrity checked)`,
      `  audit:         ${m.snapshot.audit.count} events, ${m.database.auditChain.ok ? 'chain intact' : 'chain BROKEN'}, head ${m.snapshot.audit.head.slice(0, 16)}…`,
      `  contents:      ${describeCounts(m.snapshot.counts)}`,
    );
  }
  lines.push(`  files:         ${m.files.length}, SHA-256 in manifest.json (secrets 0600 in a 0700 directory)`);
  for (const n of m.notIncluded) lines.push(`  not included:  ${n}`);
  if (r.pgDumpCommand) lines.push(`database: PostgreSQL is not in this backup; dump it into it now: ${r.pgDumpCommand}`);
  return lines.join('\n');
}

function describeRestore(r: RestoreResult): string {
  if (r.database === 'awaiting_pg_restore') {
    return [
      `restored the files of ${r.from} into ${r.dataDir}`,
      `database: PostgreSQL is still empty; restore the dump now: ${r.pgRestoreCommand}`,
      'then run `kenshin audit verify` and start the service.',
    ].join('\n');
  }
  const lines = [`restored ${r.from} (taken ${r.backupCreatedAt}) into ${r.dataDir}`, `  files:         ${r.files}, SHA-256 verified`];
  if (r.audit) lines.push(`  audit:         ${r.audit.ok ? `chain intact, ${r.audit.events} events (the last records this restore)` : `chain BROKEN: ${r.audit.message}`}`);
  if (r.counts) lines.push(`  contents:      ${describeCounts(r.counts)}`);
  if (r.dialect === 'postgres' && r.counts) lines.push(`  at backup:     ${describeCounts(r.backupCounts)} (files copied then; the dump may be later)`);
  return lines.join('\n');
}

export function registerOps(program: Command, io: CliIo, exit: ExitBox): void {
  program
    .command('backup')
    .description('back up the database (online, while serve runs), CA, secrets and server certificate into a new directory')
    .requiredOption('--out <DIR>', 'a new or empty directory for the backup')
    .option('--json', 'JSON output')
    .action(async (o: { out: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config }) => {
        const r = await createBackup({ ...settings(config), clock: io.clock ?? systemClock, actor: ACTOR }, o.out);
        out.result({ dir: r.dir, pgDumpCommand: r.pgDumpCommand ?? null, manifest: r.manifest }, () => describeBackup(r));
        const db = r.manifest.database;
        if (db.dialect === 'sqlite' && !db.auditChain.ok) {
          io.stderr(`kenshin: the backup was written, but its audit chain is BROKEN: ${db.auditChain.message}\n`);
          exit.code = EXIT_FAILED;
        }
      }),
    );

  program
    .command('restore')
    .description('restore a backup into a data directory that has no installation yet; verifies it first')
    .requiredOption('--from <DIR>', 'the backup directory')
    .option('--json', 'JSON output')
    .action(async (o: { from: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config }) => {
        const r = await restoreBackup({ ...settings(config), clock: io.clock ?? systemClock, actor: ACTOR }, o.from);
        out.result(r, () => describeRestore(r));
        if (r.audit && !r.audit.ok) exit.code = EXIT_FAILED;
      }),
    );
}
