import net from 'node:net';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type tls from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { clientIssuers, loadAuthorityMaterial } from '../ca/hierarchy.js';
import { startMintPool } from '../ca/mint-pool.js';
import { inProcessMinter, type Minter } from '../ca/mint.js';
import { loadPackageKey } from '../renewal/package-vault.js';
import { wipeExpiredPackages } from '../renewal/service.js';
import { currentCrls } from '../certificates/crl-set.js';
import { runReminders } from '../reminders/service.js';
import { configuredReminders } from '../reminders/configured.js';
import type { Clock } from '../clock.js';
import { buildApp } from './app.js';
import { createMetrics } from '../metrics/registry.js';
import { requestLogger } from './logging.js';
import { loadTlsMaterial } from './tls.js';
import { presentedFromProxy } from './proxy.js';
import { presentedFromTls } from './context.js';
import { purgeExpiredSessions } from '../identity/sessions.js';
import { purgeLoginThrottle } from '../identity/throttle.js';
import { capConnections } from './limits.js';
import { checkReadiness } from './health.js';
import { joinCluster, type ProcessRole } from './processes.js';
import { metricsUrlOf, serveHealthAndMetrics } from './metrics-listener.js';
import { loadGatewayKeys } from '../gateway/signing-key.js';

export interface RunningServer {
  /** https://HOST:PORT/ (direct), http://HOST:PORT/ or unix:/path (proxy mode). */
  url: string;
  /** http://127.0.0.1:PORT/metrics when the metrics listener is on. */
  metricsUrl: string | undefined;
  port: number;
  app: FastifyInstance;
  runtime: Runtime;
  /** Re-reads the gateway's assertion key file (SIGHUP), after `kenshin gateway rotate-key`. */
  reloadGatewayKeys(): Promise<{ kid: string }>;
  /** Re-reads the server certificate, key and client CA list (SIGHUP); connections keep going. */
  reloadTls(): Promise<{ source: string }>;
  /** Graceful: stop accepting, let requests in flight finish (up to the grace period), then release everything. */
  close(): Promise<void>;
}

/**
 * `kenshin serve`. Direct mode: the HTTPS listener asks for a client certificate but does not reject
 * the handshake (rejectUnauthorized: false): the application decides, so a refused user gets a page
 * that says why and what to do, not a browser error. Proxy mode: plain HTTP behind nginx/HAProxy,
 * the certificate from a header believed only from the proxy's address (web/proxy.ts).
 */
export async function startServer(config: Config, opts: { clock?: Clock; logStream?: NodeJS.WritableStream; role?: ProcessRole } = {}): Promise<RunningServer> {
  // One of several `serve` processes (web/processes.ts), or the only one.
  const role = opts.role ?? 'single';
  const runtime = await openRuntime(config, opts.clock ? { clock: opts.clock } : {});
  try {
    return await startOn(runtime, config, role, opts);
  } catch (e) {
    // Closed, so that SQLite removes its -wal and -shm files: a start refused for a damaged file
    // leaves the data directory as it was, even when the process then exits at once.
    await runtime.close().catch(() => {});
    throw e;
  }
}

async function startOn(runtime: Runtime, config: Config, role: ProcessRole, opts: { logStream?: NodeJS.WritableStream }): Promise<RunningServer> {
  const authority = await runtime.authority();
  const tlsMaterial = config.mode === 'direct' ? await loadTlsMaterial(config, runtime, authority) : undefined;

  // Issuance runs in worker threads so that 「開始する」 never stalls other users' requests.
  const minter: Minter = config.mintWorkers > 0 ? startMintPool({ ...(await loadAuthorityMaterial(runtime.paths, config.caPassphrase, config.crlUrl)), keyPoolSize: config.keyPoolSize }, config.mintWorkers) : inProcessMinter(authority);
  const renewal = await runtime.renewalDeps(minter);
  const csrfKey = createHmac('sha256', loadPackageKey(config.packageKey, runtime.paths.packageKeyFile)).update('kenshin csrf key').digest();

  // The assertion key, generated on the first start like the package key (gateway/signing-key.ts).
  // Routes read gateway.keys per request, so a reload swaps the key for the next one.
  const gateway = { keys: await loadGatewayKeys(runtime.paths.gatewayKeyFile, runtime.clock.now()), issuer: config.publicUrl, audience: config.gatewayAudience };

  // Every CA generation: CRLs for each, and (behind a proxy) the signatures that tell "ours" from "foreign".
  const caSet = await runtime.caSet();
  const issuers = () => clientIssuers(caSet);
  let draining = false;
  // The database gauges from one process only: the primary sums what every process reports.
  const metrics = createMetrics(runtime.database.db, runtime.clock, { databaseGauges: role !== 'worker' });
  const proxyIdentity = config.mode === 'proxy' ? presentedFromProxy({ trustedProxies: config.trustedProxies, header: config.proxyCertHeader, issuers }) : undefined;
  const app = await buildApp(
    { runtime, renewal, csrfKey, metrics, gateway },
    {
      logger: requestLogger(config.logLevel, opts.logStream, config.logFormat),
      readiness: { caLoaded: () => minter.healthy?.() !== false, draining: () => draining },
      limits: config.limits,
      ...(tlsMaterial
        ? { https: { key: tlsMaterial.key, cert: tlsMaterial.cert, ca: tlsMaterial.ca, requestCert: true, rejectUnauthorized: false }, presented: presentedFromTls(issuers) }
        : {
            trustProxy: config.trustedProxies,
            presented: proxyIdentity!.presented,
          }),
    },
  );

  // Housekeeping at start and hourly: wipe expired packages, purge ended sessions and login-throttle
  // windows, keep every CRL (root, each issuing generation) fresh (at least daily).
  const crlDeps = { db: runtime.database.db, clock: runtime.clock, cas: caSet };
  const reminders = configuredReminders(runtime.database.db, runtime.clock, config);
  let housekeepingRun: Promise<void> = Promise.resolve();
  const housekeeping = async () => {
    await wipeExpiredPackages(renewal);
    await purgeExpiredSessions(runtime.database.db, runtime.clock, { idleMinutes: config.sessionIdleMinutes, maxHours: config.sessionMaxHours });
    await purgeLoginThrottle({ db: runtime.database.db, clock: runtime.clock });
    await currentCrls(crlDeps);
    // Several instances may run this at once: the reminder ledger sends each mail once.
    if (reminders.mailer) await runReminders(reminders);
  };
  // At start (before listening, so the first CRL and due reminders exist once the instance is
  // ready); a failure here is logged, not fatal: the hourly run tries again.
  // With several processes, only the housekeeper does it.
  const housekeeps = role !== 'worker';
  if (housekeeps) await housekeeping().catch((err: unknown) => app.log.error({ err }, 'housekeeping failed'));
  const housekeepingTimer = setInterval(() => {
    if (housekeeps) housekeepingRun = housekeeping().catch((err: unknown) => app.log.error({ err }, 'housekeeping failed'));
  }, 3600_000);
  housekeepingTimer.unref();

  capConnections(app.server, config.limits, config.mode === 'direct');
  if (proxyIdentity) {
    const listener = 'socket' in config.listen ? 'unix' : 'tcp';
    app.server.on('connection', (socket: net.Socket) => proxyIdentity.accept(socket, listener));
  }

  let url: string;
  let port = 0;
  if ('socket' in config.listen) {
    // A stale socket file from a crash would make listen fail with EADDRINUSE. With several
    // processes the primary removes it: here it would unlink the socket another process bound.
    if (role === 'single') fs.rmSync(config.listen.socket, { force: true });
    await app.listen({ path: config.listen.socket });
    // Group-writable, so the proxy's user can connect when it shares the service's group.
    fs.chmodSync(config.listen.socket, 0o660);
    url = `unix:${config.listen.socket}`;
  } else {
    await app.listen({ host: config.listen.host, port: config.listen.port });
    const address = app.server.address();
    port = typeof address === 'object' && address ? address.port : config.listen.port;
    const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
    url = `${config.mode === 'direct' ? 'https' : 'http'}://${host}:${port}/`;
  }

  const probe = { db: runtime.database.db, caLoaded: () => minter.healthy?.() !== false, draining: () => draining };
  let metricsServer: http.Server | undefined;
  let metricsUrl: string | undefined;
  if (role !== 'single') {
    // One of several processes: the primary serves metrics and health for all (web/processes.ts).
    joinCluster({ registry: metrics.registry, probe, url, port });
  } else if (config.metricsListen) {
    metricsServer = await serveHealthAndMetrics(config.metricsListen, {
      metrics: () => metrics.registry.metrics(),
      contentType: metrics.registry.contentType,
      readiness: () => checkReadiness(probe),
    });
    metricsUrl = metricsUrlOf(metricsServer, config.metricsListen);
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    metricsUrl,
    port,
    app,
    runtime,
    async reloadGatewayKeys() {
      gateway.keys = await loadGatewayKeys(runtime.paths.gatewayKeyFile, runtime.clock.now());
      return { kid: gateway.keys.kid };
    },
    async reloadTls() {
      if (config.mode !== 'direct') return { source: 'proxy mode: the proxy holds the server certificate' };
      const fresh = await loadTlsMaterial(config, runtime, authority);
      (app.server as unknown as tls.Server).setSecureContext({ key: fresh.key, cert: fresh.cert, ca: fresh.ca });
      return { source: fresh.source };
    },
    close() {
      return (closing ??= (async () => {
        draining = true;
        clearInterval(housekeepingTimer);
        // Fastify stops accepting, answers new requests on open connections with 503, and waits for
        // the requests in flight: a renewal being minted gets its transaction committed (or, if cut
        // by the grace timer, none at all — certificate and package are written in one transaction).
        const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownGraceSeconds * 1000);
        force.unref();
        await app.close();
        clearTimeout(force);
        await housekeepingRun;
        if (metricsServer) {
          metricsServer.closeAllConnections();
          await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
        }
        await minter.close();
        await runtime.close();
      })());
    },
  };
}
