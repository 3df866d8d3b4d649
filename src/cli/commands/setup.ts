import type { Command } from 'commander';
import { processIo, runCommand, type CliIo, type ExitBox } from '../context.js';
import { initialise, initialiseIfNeeded, type InitResult } from '../../setup/init.js';
import { parseListenAddress } from '../../config.js';
import { startServer } from '../../web/server.js';
import { processRole, runPrimary } from '../../web/processes.js';
import { PROXY_TCP_WARNING } from '../../ops/config-check.js';
import { assertPrivate } from '../../private-files.js';

function describeInit(r: InitResult, url: string): string {
  const lines = [`initialised ${r.dataDir}`, `  root CA:      ${r.rootCert}   (trust this in browsers / proxies)`, `  database:     ${r.database}`];
  if (r.demo) {
    lines.push(
      '',
      'Demo tenant (certificate 60 days from expiry, so renewal can be tried at once):',
      `  URL:              ${url}`,
      `  login:            ${r.demo.login} / ${r.demo.loginPassword}`,
      `  certificate:      ${r.demo.p12File}`,
      `  its password:     ${r.demo.p12PasswordFile}`,
    );
  }
  return lines.join('\n');
}

export function registerSetup(program: Command, io: CliIo, exit: ExitBox): void {
  program
    .command('init')
    .description('create the data directory: CA (root + issuing), server certificate, database')
    .option('--demo', 'also create the demo tenant, user and certificate')
    .option('--json', 'JSON output')
    .action(async (o: { demo?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config }) => {
        const r = await initialise(config, { demo: Boolean(o.demo), ...(io.clock ? { clock: io.clock } : {}) });
        out.result(r, () => describeInit(r, config.publicUrl));
      }),
    );

  program
    .command('serve')
    .description('run the HTTPS service')
    .option('--listen <HOST:PORT>', 'listen address (default 127.0.0.1:8443, or KENSHIN_LISTEN; unix:/path in proxy mode)')
    .option('--init', 'on a fresh data directory, initialise it with the demo tenant first')
    .action(async (o: { listen?: string; init?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), () => (o.listen ? { listen: parseListenAddress(o.listen, 'listen') } : {}), async ({ config }) => {
        const role = processRole();
        const describeListening = (url: string) => `Kenshin Cloud listening on ${url}${config.mode === 'proxy' ? ` (proxy mode: client certificates from ${config.proxyCertHeader} sent by ${'socket' in config.listen ? 'the unix socket peer' : config.trustedProxies.join(', ')})` : ''}`;
        if (role === 'single') {
          // Several instances may start with --init on one data directory: one initialises, the others wait and reuse it.
          const r = o.init ? await initialiseIfNeeded(config, { demo: true }) : undefined;
          if (r) io.stdout(describeInit(r, config.publicUrl) + '\n\n');
          assertPrivate(config.dataDir);
          if (config.mode === 'proxy' && 'host' in config.listen) io.stderr(`kenshin: warning: ${PROXY_TCP_WARNING}\n`);
          // Several processes: this one becomes the primary and starts them (web/processes.ts). Only
          // when this is the `kenshin` process itself: the CLI run inside a test cannot fork itself.
          if (config.processes > 1 && io === processIo) {
            exit.code = await runPrimary(config, io, describeListening);
            return;
          }
        }
        // In a process the primary started, the signals must have handlers before it starts:
        // Ctrl-C reaches the whole process group (the primary stops everyone with SIGTERM), and a
        // SIGTERM or SIGHUP may come while it migrates or loads the CA — the default would kill it.
        let stopWhenStarted = false;
        const early = { SIGINT: () => {}, SIGHUP: () => {}, SIGTERM: () => void (stopWhenStarted = true) };
        if (role !== 'single') for (const [signal, handler] of Object.entries(early)) process.on(signal, handler);
        const server = await startServer(config, { role });
        if (role === 'single') io.stdout(describeListening(server.url) + '\n');
        // SIGHUP (systemd ExecReload): new server certificate / client CA list without dropping anyone.
        // Also the gateway's assertion key, after `kenshin gateway rotate-key`.
        const reload = () => {
          server.reloadTls().then(
            (r) => io.stdout(`reloaded TLS certificate from ${r.source}\n`),
            (e: unknown) => io.stderr(`kenshin: TLS reload failed, keeping the current certificate: ${(e as Error).message}\n`),
          );
          server.reloadGatewayKeys().then(
            (r) => io.stdout(`reloaded the gateway signing key (kid ${r.kid})\n`),
            (e: unknown) => io.stderr(`kenshin: gateway key reload failed, keeping the current key: ${(e as Error).message}\n`),
          );
        };
        process.on('SIGHUP', reload);
        await new Promise<void>((resolve) => {
          let stopped = false;
          const stop = () => {
            if (stopped) return;
            stopped = true;
            if (role === 'single') {
              // A second Ctrl-C then ends the process at once.
              process.off('SIGINT', stop);
              process.off('SIGTERM', stop);
              io.stdout(`shutting down: finishing requests in flight (up to ${config.shutdownGraceSeconds} s)\n`);
            }
            process.off('SIGHUP', reload);
            void server.close().then(() => {
              if (role === 'single') io.stdout('stopped\n');
              // The channel to the primary would keep this process alive.
              else if (process.connected) process.disconnect();
              resolve();
            });
          };
          process.on('SIGTERM', stop);
          if (role === 'single') process.on('SIGINT', stop);
          else {
            process.off('SIGHUP', early.SIGHUP);
            process.off('SIGTERM', early.SIGTERM);
            if (stopWhenStarted) stop();
          }
          // (If the primary is killed, node:cluster ends this process when the channel closes.)
        });
      }),
    );
}
