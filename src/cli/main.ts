import { Command, CommanderError } from 'commander';
import { processIo, type CliIo, type ExitBox } from './context.js';
import { registerSetup } from './commands/setup.js';
import { registerCa } from './commands/ca.js';
import { registerTenancy } from './commands/tenancy.js';
import { registerCert } from './commands/cert.js';
import { registerAudit } from './commands/audit.js';
import { registerReminders } from './commands/reminders.js';
import { registerConfig } from './commands/config.js';
import { registerOps } from './commands/ops.js';
import { registerGateway } from './commands/gateway.js';
import { registerOnboard } from './commands/onboard.js';
import { EXIT_REFUSED } from './errors.js';

export function buildProgram(io: CliIo, exit: ExitBox): Command {
  const program = new Command('kenshin')
    .description('Kenshin Cloud: client certificates for 特定健診 cloud services')
    .option('--data-dir <DIR>', 'data directory (default ./data, or KENSHIN_DATA_DIR)')
    .option('--config <FILE>', 'settings file of KENSHIN_*=value lines (or KENSHIN_CONFIG); the environment overrides it')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError(false)
    .exitOverride();
  registerSetup(program, io, exit);
  registerCa(program, io, exit);
  registerTenancy(program, io, exit);
  registerCert(program, io, exit);
  registerAudit(program, io, exit);
  registerReminders(program, io, exit);
  registerConfig(program, io, exit);
  registerOps(program, io, exit);
  registerGateway(program, io, exit);
  registerOnboard(program, io, exit);
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }
  return program;
}

/** Runs the CLI and returns the exit code (0 ok, 2 refused or bad usage, 1 unexpected). */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const exit: ExitBox = { code: 0 };
  const program = buildProgram(io, exit);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : EXIT_REFUSED;
    }
    throw e;
  }
  return exit.code;
}
