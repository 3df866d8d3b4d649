import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { verifyAuditChain } from '../../audit/verify.js';
import { EXIT_FAILED } from '../errors.js';

export function registerAudit(program: Command, io: CliIo, exit: ExitBox): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('check the hash chain; report the first modified, inserted or deleted row (exit 1)')
    .option('--json', 'JSON output')
    .action(async (_o: unknown, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const r = await verifyAuditChain(rt.database.db);
        out.result(r, () => (r.ok ? `audit chain intact: ${r.events} events` : `audit chain BROKEN: ${r.message}`));
        if (!r.ok) exit.code = EXIT_FAILED;
      }),
    );
}
