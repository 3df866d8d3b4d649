import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { runReminders } from '../../reminders/service.js';
import { configuredReminders } from '../../reminders/configured.js';
import { table } from '../output.js';

export function registerReminders(program: Command, io: CliIo, exit: ExitBox): void {
  const reminders = program.command('reminders').description('expiry reminders by mail');
  reminders
    .command('run')
    .description('send the reminders that are due now (kenshin serve also runs this hourly)')
    .option('--dry-run', 'only list what would be sent')
    .option('--json', 'JSON output')
    .action(async (o: { dryRun?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime, config }) => {
        const rt = await runtime();
        const dryRun = Boolean(o.dryRun) || !config.smtpUrl;
        const results = await runReminders(configuredReminders(rt.database.db, rt.clock, config), { dryRun });
        out.result(results, () =>
          [
            dryRun && !o.dryRun ? 'KENSHIN_SMTP_URL is not set: nothing is sent (dry run).' : '',
            results.length ? table(['SERIAL', 'TENANT', 'DAYS', 'TO', 'RESULT'], results.map((r) => [r.serial, r.tenant, String(r.threshold), r.to, r.result + (r.error ? ` (${r.error})` : '')])) : 'no reminders due',
          ]
            .filter(Boolean)
            .join('\n'),
        );
        if (results.some((r) => r.result === 'failed')) exit.code = 1;
      }),
    );
}
