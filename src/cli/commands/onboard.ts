import fs from 'node:fs';
import os from 'node:os';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { processIo, runCommand, type CliIo, type ExitBox } from '../context.js';
import { invalidInput, isRefusal } from '../../errors.js';
import { dataPaths, type KeyType, type Pkcs12ProfileName } from '../../config.js';
import { loadAuthorityMaterial, requireInitialised } from '../../ca/hierarchy.js';
import { startMintPool } from '../../ca/mint-pool.js';
import { decodeCsv, readRows } from '../../onboarding/rows.js';
import { onboard, type OnboardReport } from '../../onboarding/onboard.js';

const ACTOR = 'cli';

function describe(r: OnboardReport): string {
  const lines = [
    r.dryRun ? `dry run: ${r.rows} rows are valid; nothing was changed` : `onboarded ${r.rows} rows: issued ${r.issued} certificates${r.alreadyDone ? ` (${r.alreadyDone} rows were done by an earlier run)` : ''}`,
    `  tenants ${r.dryRun ? 'to create' : 'created'}: ${r.tenantsCreated.length}, 健診機関: ${r.institutionsCreated.length}, users: ${r.usersCreated.length}`,
  ];
  if (r.skippedRows.length) lines.push(`  skipped (--continue-on-error):`, ...r.skippedRows.map((s) => `    ${s.message}`));
  if (!r.dryRun) {
    if (r.files.pdf) {
      lines.push(`  wrote ${r.files.p12} .p12 files, ${r.files.pdf} (${r.files.pages} pages: a delivery sheet and a password slip per certificate), ${r.files.csv}`);
      lines.push('Send each delivery sheet and its password slip separately; the passwords are not kept anywhere else.');
    } else lines.push('  nothing left to deliver: an earlier run already wrote the files and the delivery sheets');
  }
  return lines.join('\n');
}

/** A bar on a terminal (rows, rate, time left); one line per tenth otherwise (logs, CI). */
function progressReporter(io: CliIo, interactive: boolean): { update(done: number, total: number): void; stop(): void } {
  if (interactive) {
    const bar = new cliProgress.SingleBar({ format: 'issuing |{bar}| {value}/{total} rows · {rate}/s · {eta_formatted} left', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
    const started = Date.now();
    let begun = false;
    return {
      update(done, total) {
        if (!begun) {
          bar.start(total, 0, { rate: '0' });
          begun = true;
        }
        bar.update(done, { rate: (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1) });
      },
      stop: () => begun && bar.stop(),
    };
  }
  const started = Date.now();
  let lastTenth = -1;
  return {
    update(done, total) {
      const tenth = total === 0 ? 10 : Math.floor((done / total) * 10);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      const secs = (Date.now() - started) / 1000;
      const rate = done / Math.max(0.001, secs);
      io.stderr(`onboard: ${done}/${total} rows issued (${rate.toFixed(1)}/s${done < total && rate > 0 ? `, ${Math.ceil((total - done) / rate)} s left` : ''})\n`);
    },
    stop() {},
  };
}

export function registerOnboard(program: Command, io: CliIo, exit: ExitBox): void {
  program
    .command('onboard')
    .description('onboard clinics in bulk from a CSV: tenants, 健診機関, users, one certificate per row, .p12 files and a PDF of delivery sheets')
    .requiredOption('--csv <FILE>', 'columns: tenant_code, tenant_name, contact_email, institution_number, institution_name, users (login:role;…), label')
    .requiredOption('--out <DIR>', 'where the .p12 files, delivery-sheets.pdf and onboard-result.csv go')
    .option('--dry-run', 'check every row against the file and the database; change nothing')
    .option('--continue-on-error', 'skip bad rows (reported) instead of refusing the whole file')
    .option('--key <rsa2048|p256>', 'key type (default KENSHIN_KEY_TYPE)')
    .option('--profile <compatible|modern>', 'PKCS#12 profile (default KENSHIN_PKCS12_PROFILE)')
    .option('--json', 'JSON output')
    .action(async (o: { csv: string; out: string; dryRun?: boolean; continueOnError?: boolean; key?: string; profile?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        const keyType: KeyType = o.key === undefined ? config.defaultKeyType : o.key === 'rsa2048' || o.key === 'p256' ? o.key : (() => { throw invalidInput('key', `expected rsa2048 or p256, got "${o.key}"`); })();
        const profile: Pkcs12ProfileName = o.profile === undefined ? config.defaultPkcs12Profile : o.profile === 'compatible' || o.profile === 'modern' ? o.profile : (() => { throw invalidInput('profile', `expected compatible or modern, got "${o.profile}"`); })();
        let text: string;
        try {
          const decoded = decodeCsv(fs.readFileSync(o.csv));
          if ('error' in decoded) throw invalidInput('csv', `${o.csv}: ${decoded.error}`);
          text = decoded.text;
        } catch (e) {
          if (isRefusal(e)) throw e;
          throw invalidInput('csv', `cannot read ${o.csv}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        if (fs.existsSync(o.out) && !fs.statSync(o.out).isDirectory()) throw invalidInput('out', `${o.out} is not a directory`);
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const { rows, errors } = readRows(o.csv, text);
        const rt = await runtime();
        // Issuance in worker threads, one per core: the CPU part (keys, signatures, PKCS#12) in parallel.
        const workers = Math.max(1, os.availableParallelism());
        const minter = o.dryRun ? undefined : startMintPool({ ...(await loadAuthorityMaterial(paths, config.caPassphrase, config.crlUrl)), keyPoolSize: 0 }, workers);
        // The bar only when this process's own stderr is a terminal (not in tests, logs or CI).
        const progress = progressReporter(io, io === processIo && Boolean(process.stderr.isTTY));
        try {
          const deps = { ...(await rt.certificateDeps(minter)), vault: rt.packageVault() };
          const r = await onboard(deps, rows, errors, {
            file: o.csv,
            outDir: o.out,
            keyType,
            profile,
            dryRun: Boolean(o.dryRun),
            continueOnError: Boolean(o.continueOnError),
            actor: ACTOR,
            portalUrl: config.publicUrl,
            operatorContact: config.operatorContact || undefined,
            font: io.env.KENSHIN_PDF_FONT,
            concurrency: workers * 2,
            progress: (d, t) => progress.update(d, t),
          });
          progress.stop();
          out.result(r, () => describe(r));
        } finally {
          progress.stop();
          await minter?.close();
        }
      }),
    );
}
