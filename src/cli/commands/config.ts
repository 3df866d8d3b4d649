import type { Command } from 'commander';
import type { CliIo, ExitBox } from '../context.js';
import { EXIT_REFUSED } from '../errors.js';
import { checkConfiguration } from '../../ops/config-check.js';
import { table } from '../output.js';

export function registerConfig(program: Command, io: CliIo, exit: ExitBox): void {
  const config = program.command('config').description('the settings (file + environment)');
  config
    .command('check')
    .description('validate the settings and what they point at (CA key, database, TLS files) without starting')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ config?: string; dataDir?: string }>();
      const env = g.config ? { ...io.env, KENSHIN_CONFIG: g.config } : io.env;
      const report = await checkConfiguration(env, g.dataDir ? { dataDir: g.dataDir } : {});
      if (o.json) io.stdout(JSON.stringify(report, null, 2) + '\n');
      else {
        const lines = report.findings.map((f) => `${f.severity.padEnd(5)} ${f.subject}: ${f.message}`);
        if (report.settings.length) lines.push('', table(['SETTING', 'VALUE', 'FROM'], report.settings.map((s) => [s.key, s.value, s.source])));
        lines.push('', report.ok ? 'configuration OK' : 'configuration has errors: `kenshin serve` would not start');
        io.stdout(lines.join('\n') + '\n');
      }
      if (!report.ok) exit.code = EXIT_REFUSED;
    });
}
