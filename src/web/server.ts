import { createHmac } from 'node:crypto';
import type { Config } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { ensureServerCertificate } from '../ca/server-certificate.js';
import { readPassphrase } from '../ca/keystore.js';
import { loadAuthorityMaterial, loadTrustedCaPems } from '../ca/hierarchy.js';
import { startMintPool } from '../ca/mint-pool.js';
import { inProcessMinter, type Minter } from '../ca/mint.js';
import { loadPackageKey } from '../renewal/package-vault.js';
import { wipeExpiredPackages } from '../renewal/service.js';
import { currentCrls } from '../certificates/crl-set.js';
import { runReminders } from '../reminders/service.js';
import { configuredReminders } from '../reminders/configured.js';
import type { Clock } from '../clock.js';
import type { FastifyInstance } from 'fastify';
import http from 'node:http';
import { buildApp } from './app.js';
import { createMetrics } from '../metrics/registry.js';
import { requestLogger } from './logging.js';

export interface RunningServer {
  url: string;
  /** http://127.0.0.1:PORT/metrics when the metrics listener is on. */
  metricsUrl: string | undefined;
  port: number;
  app: FastifyInstance;
  runtime: Runtime;
  close(): Promise<void>;
}

/**
 * `kenshin serve`: the HTTPS listener. TLS asks for a client certificate but does not reject the
 * handshake (rejectUnauthorized: false): the application decides, so a refused user gets a page
 * that says why and what to do, not a browser error.
 */
export async function startServer(config: Config, opts: { clock?: Clock; logStream?: NodeJS.WritableStream } = {}): Promise<RunningServer> {
  const runtime = await openRuntime(config, opts.clock ? { clock: opts.clock } : {});
  const authority = await runtime.authority();
  const tls = await ensureServerCertificate(authority, runtime.paths, config.serverNames, readPassphrase(config.caPassphrase, runtime.paths.caPassphraseFile), runtime.clock.now());

  // Issuance runs in worker threads so that 「開始する」 never stalls other users' requests.
  const minter: Minter = config.mintWorkers > 0 ? startMintPool(await loadAuthorityMaterial(runtime.paths, config.caPassphrase, config.crlUrl), config.mintWorkers) : inProcessMinter(authority);
  const renewal = await runtime.renewalDeps(minter);
  const csrfKey = createHmac('sha256', loadPackageKey(config.packageKey, runtime.paths.packageKeyFile)).update('kenshin csrf key').digest();

  const metrics = createMetrics(runtime.database.db, runtime.clock);
  const app = await buildApp(
    { runtime, renewal, csrfKey, metrics },
    {
      logger: requestLogger(config.logLevel, opts.logStream),
      https: { key: tls.keyPem, cert: tls.certChainPem, ca: loadTrustedCaPems(runtime.paths), requestCert: true, rejectUnauthorized: false },
    },
  );

  // Housekeeping at start and hourly: wipe expired packages, keep every CRL (root, each issuing generation) fresh (at least daily).
  const crlDeps = { db: runtime.database.db, clock: runtime.clock, cas: await runtime.caSet() };
  const reminders = configuredReminders(runtime.database.db, runtime.clock, config);
  const housekeeping = async () => {
    await wipeExpiredPackages(renewal);
    await currentCrls(crlDeps);
    // Several instances may run this at once: the reminder ledger sends each mail once.
    if (reminders.mailer) await runReminders(reminders);
  };
  await housekeeping();
  const wipeTimer = setInterval(() => void housekeeping().catch(() => undefined), 3600_000);
  wipeTimer.unref();

  await app.listen({ host: config.listen.host, port: config.listen.port });
  // Metrics on their own loopback port: Prometheus scrapes without a client certificate, and the
  // port is not reachable from the clinics' side.
  let metricsServer: http.Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsListen) {
    metricsServer = http.createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve) => metricsServer!.listen(config.metricsListen!.port, config.metricsListen!.host, resolve));
    const a = metricsServer.address();
    metricsUrl = `http://${config.metricsListen.host}:${typeof a === 'object' && a ? a.port : config.metricsListen.port}/metrics`;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return {
    url: `https://${host}:${port}/`,
    metricsUrl,
    port,
    app,
    runtime,
    async close() {
      clearInterval(wipeTimer);
      if (metricsServer) await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
      await app.close();
      await minter.close();
      await runtime.close();
    },
  };
}
