import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { verifyAuditChain } from '../../audit/verify.js';
import { EXIT_FAILED } from '../errors.js';
import { auditCsvStream, parseDay, searchAudit } from '../../audit/search.js';
import { table } from '../output.js';

export function registerAudit(program: Command, io: CliIo, exit: ExitBox): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('list')
    .description('search the audit log, newest first')
    .option('--tenant <CODE>', 'tenant code')
    .option('--actor <TEXT>', 'actor contains')
    .option('--action <ACTION>', 'e.g. certificate.revoked')
    .option('--from <YYYY-MM-DD>', 'from this day')
    .option('--to <YYYY-MM-DD>', 'to this day')
    .option('--csv', 'CSV output (as the console exports it)')
    .option('--json', 'JSON output')
    .action(async (o: { tenant?: string; actor?: string; action?: string; from?: string; to?: string; csv?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const from = parseDay('from', o.from);
        const to = parseDay('to', o.to);
        const rt = await runtime();
        const filter = { tenantCode: o.tenant, actor: o.actor, action: o.action, from, to };
        if (o.csv) {
          // A page at a time: writes to a file or pipe are synchronous on Linux, so nothing piles up.
          for await (const chunk of auditCsvStream(rt.database.db, filter)) io.stdout(chunk);
          return;
        }
        const rows = await searchAudit(rt.database.db, filter, 100_000);
        out.result(rows, () => table(['ID', 'AT', 'TENANT', 'ACTOR', 'ACTION', 'TARGET'], rows.map((r) => [String(r.id), r.at, r.tenant_code ?? '', r.actor, r.action, r.target ?? ''])));
      }),
    );
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
