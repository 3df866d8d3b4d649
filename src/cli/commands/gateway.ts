import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { rotateGatewayKey, RETIRED_KEEP_MS } from '../../gateway/signing-key.js';
import { appendAudit } from '../../audit/log.js';

/** `kenshin gateway …`: the application-facing side (see gateway/). */
export function registerGateway(program: Command, io: CliIo, exit: ExitBox): void {
  const gateway = program.command('gateway').description('Kenshin in front of an application: the assertion signing key');

  gateway
    .command('rotate-key')
    .description('a new key for X-Kenshin-Assertion; the old public key stays in /.well-known/jwks.json for a day. Then reload (SIGHUP) or restart every `serve`')
    .option('--json', 'JSON output: { kid, previousKid, previousPublishedUntil }')
    .action(async (_o: unknown, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ runtime, out }) => {
        const rt = await runtime();
        const now = rt.clock.now();
        // The file is replaced inside the audit transaction: a failed audit append leaves the old key.
        const r = await rt.database.db.transaction().execute(async (trx) => {
          const rotated = await rotateGatewayKey(rt.paths.gatewayKeyFile, now);
          await appendAudit(trx, now, { actor: 'cli', action: 'gateway.key_rotated', target: `gateway-key:${rotated.kid}`, details: { previous: rotated.previousKid ?? null, current: rotated.kid } });
          return rotated;
        });
        const until = new Date(now.getTime() + RETIRED_KEEP_MS).toISOString();
        out.result({ kid: r.kid, previousKid: r.previousKid ?? null, previousPublishedUntil: r.previousKid ? until : null }, () =>
          [
            `new gateway signing key: kid ${r.kid}`,
            ...(r.previousKid ? [`previous key ${r.previousKid}: signs nothing more, stays in /.well-known/jwks.json until ${until}`] : []),
            'reload (systemctl reload kenshin, i.e. SIGHUP) or restart every `kenshin serve` sharing this data directory',
          ].join('\n'),
        );
      }),
    );
}
