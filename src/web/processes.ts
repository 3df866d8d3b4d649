import cluster, { type Worker } from 'node:cluster';
import fs from 'node:fs';
import http from 'node:http';
import type { Registry } from 'prom-client';
import { ClusterMetrics, type MetricsSnapshot } from './cluster-metrics.js';
import type { Config } from '../config.js';
import { checkReadiness, type Readiness, type ReadinessProbe } from './health.js';
import { serveHealthAndMetrics } from './metrics-listener.js';

/**
 * `kenshin serve` on every core (KENSHIN_PROCESSES, default the core count). Node 20's TLS and HTTP
 * run on one event loop per process, and `reusePort` arrives only in Node 22, so node:cluster it is:
 * the primary holds the listening socket and hands each new connection to the next process in turn;
 * every process is a whole `kenshin serve` (its own mint threads, database connection, caches).
 *
 * What stays correct with several processes on one data directory:
 * - the first process starts alone and the others only once it listens: it migrates the schema
 *   (SQLite has no migration lock), and a configuration, CA or database it cannot use is reported
 *   once, with the exit code a single process would give;
 * - SQLite: every process opens the same WAL file; transactions begin IMMEDIATE, so one process
 *   waits (busy_timeout) for another's write instead of failing (db/database.ts); a renewal still
 *   has one successor (the same unique constraints that hold across PostgreSQL instances);
 * - housekeeping (expired packages, sessions, throttle windows, CRLs, reminders) runs in one
 *   process, the housekeeper; its replacement takes the role over if it dies;
 * - metrics: the primary answers /metrics with every process's counters summed (prom-client's
 *   cluster aggregation); the database gauges come from the housekeeper only, so they are not counted
 *   twice; /readyz is ready when every process is;
 * - what a process keeps in memory for a second (gateway decisions, certificate rows) is dropped at
 *   once in the process that made the change and within the second in the others — as between
 *   instances on PostgreSQL;
 * - connection caps (KENSHIN_MAX_CONNECTIONS…) are per process.
 */

export type ProcessRole = 'single' | 'housekeeper' | 'worker';

/** Set by the primary for the processes it starts; not a setting. */
export const ROLE_ENV = 'KENSHIN_SERVE_ROLE';

export function processRole(): ProcessRole {
  if (!cluster.isWorker) return 'single';
  return process.env[ROLE_ENV] === 'housekeeper' ? 'housekeeper' : 'worker';
}

type Question = 'readiness?' | 'metrics?';
type FromWorker = { kenshin: 'listening'; url: string; port: number } | { kenshin: 'answer'; id: number; result: unknown };
type ToWorker = { kenshin: Question; id: number };

/**
 * In a process the primary started: answer the primary's questions (readiness, metrics), and say
 * once where we listen (the primary prints it once for all of them).
 */
export function joinCluster(o: { registry: Registry; probe: ReadinessProbe; url: string; port: number }): void {
  const answers: Record<Question, () => Promise<unknown>> = {
    'readiness?': () => checkReadiness(o.probe),
    'metrics?': () => o.registry.getMetricsAsJSON(),
  };
  process.on('message', (m: ToWorker) => {
    const answer = answers[m?.kenshin];
    if (!answer) return;
    void answer().then((result) => sendToPrimary({ kenshin: 'answer', id: m.id, result }));
  });
  sendToPrimary({ kenshin: 'listening', url: o.url, port: o.port });
}

/** The channel closes while a process stops (and if the primary is killed): a late answer is dropped. */
function sendToPrimary(m: FromWorker): void {
  if (process.connected) process.send?.(m, undefined, undefined, () => {});
}

export interface ClusterIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

/** A process that dies is replaced after a second; one that keeps dying before it listens, ever later. */
const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;
const ANSWER_TIMEOUT_MS = 3000;
/** A process that served this long before it died had been fine: its replacement starts at once. */
const HEALTHY_AFTER_MS = 5_000;

interface ProcessAnswer {
  pid: number;
  role: Exclude<ProcessRole, 'single'>;
  ready: boolean;
  /** Since it said it listens. */
  listeningSeconds: number;
  checks: Readiness['checks'] | string;
}

/**
 * The primary: starts `processes` copies of this command, prints where they listen, keeps
 * them running (a process that dies after starting is replaced), forwards SIGHUP (reload) and
 * SIGTERM/SIGINT (graceful stop), and serves /metrics, /healthz and /readyz for all of them.
 * Resolves with the exit code once every process has stopped.
 */
export async function runPrimary(config: Config, io: ClusterIo, describeListening: (url: string) => string): Promise<number> {
  // Removed here, not by each process: the second one would unlink the socket the first one bound.
  if ('socket' in config.listen) fs.rmSync(config.listen.socket, { force: true });

  const roles = new Map<Worker, Exclude<ProcessRole, 'single'>>();
  const listening = new Set<Worker>();
  const metrics = new ClusterMetrics();
  let stopping = false;
  let started = false;
  let failed = false;
  let restartDelay = RESTART_DELAY_MS;
  /** When each process said it listens; how many reloads had been asked for when it was started. */
  const listeningSince = new Map<Worker, number>();
  let reloads = 0;
  const reloadsAtFork = new Map<Worker, number>();
  const fork = (role: Exclude<ProcessRole, 'single'>) => {
    const w = cluster.fork({ [ROLE_ENV]: role });
    roles.set(w, role);
    reloadsAtFork.set(w, reloads);
    // A send to a process that is exiting fails with an 'error' event, which unheard would end the primary.
    w.on('error', (e: Error) => io.stderr(`kenshin: serve process ${w.process.pid}: ${e.message}\n`));
    return w;
  };

  let questionId = 0;
  const pending = new Map<number, (result: unknown) => void>();
  /** undefined: no answer (the process is exiting, or busy beyond the timeout). */
  const ask = <T>(w: Worker, kenshin: Question, id = ++questionId) =>
    new Promise<T | undefined>((resolve) => {
      if (!w.isConnected()) return resolve(undefined);
      const done = (r: T | undefined) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(r);
      };
      const timer = setTimeout(() => done(undefined), ANSWER_TIMEOUT_MS);
      pending.set(id, (r) => done(r as T));
      w.send({ kenshin, id } satisfies ToWorker, undefined, (e) => {
        if (e) done(undefined);
      });
    });

  // Only processes that listen are asked: one that is starting has no answer yet, and would make
  // every scrape wait for the timeout.
  const scrape = async () => {
    await Promise.all(
      [...listening].map(async (w) => {
        const id = ++questionId;
        const snapshot = await ask<MetricsSnapshot>(w, 'metrics?', id);
        if (snapshot && listening.has(w)) metrics.update(w.id, snapshot, id);
      }),
    );
    return metrics.text();
  };
  const readiness = async () => {
    const asked = [...listening];
    const processes: ProcessAnswer[] = await Promise.all(
      asked.map(async (w) => {
        const r = await ask<Readiness>(w, 'readiness?');
        return { pid: w.process.pid!, role: roles.get(w) ?? 'worker', ready: r?.ready === true, listeningSeconds: Math.floor((Date.now() - (listeningSince.get(w) ?? Date.now())) / 1000), checks: r?.checks ?? `no answer within ${ANSWER_TIMEOUT_MS / 1000} s` };
      }),
    );
    // Ready to serve: every process that takes connections says so, and one of them is the
    // housekeeper (without it expired packages and sessions are not swept, CRLs not refreshed).
    const housekeeper = processes.some((p) => p.role === 'housekeeper');
    const ready = !stopping && processes.length > 0 && housekeeper && processes.every((p) => p.ready);
    return { ready, expected: config.processes, listening: processes.length, housekeeper: housekeeper ? 'ok' : 'restarting', processes };
  };

  const exitCode = await new Promise<number>((resolveExit) => {
    let firstUrl: string | undefined;
    let metricsServer: http.Server | undefined;
    const finish = (code: number) => {
      process.off('SIGHUP', reload);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      if (metricsServer) {
        metricsServer.closeAllConnections();
        metricsServer.close();
      }
      resolveExit(code);
    };
    const stopAll = (signal: NodeJS.Signals) => {
      for (const w of roles.keys()) if (!w.isDead()) w.process.kill(signal);
    };
    // Only to processes that listen (their handlers are installed), and not while stopping.
    // A process that is starting may have read the certificate before the change: it gets the
    // signal once it listens (see 'listening' below).
    const reload = () => {
      if (stopping) return;
      reloads++;
      for (const w of listening) if (!w.isDead()) w.process.kill('SIGHUP');
    };
    let stoppingSince = 0;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second Ctrl-C: do not wait for the requests in flight. (A repeated SIGTERM is ignored:
        // `timeout` and a supervisor may send one to the process and one to its group.)
        if (signal === 'SIGINT' && Date.now() - stoppingSince > 500) {
          io.stderr('kenshin: stopping now\n');
          stopAll('SIGKILL');
        }
        return;
      }
      stopping = true;
      stoppingSince = Date.now();
      io.stdout(`shutting down: finishing requests in flight (up to ${config.shutdownGraceSeconds} s)\n`);
      stopAll('SIGTERM');
      if (roles.size === 0) finish(failed ? 1 : 0);
    };
    process.on('SIGHUP', reload);
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);

    cluster.on('message', (w: Worker, m: FromWorker) => {
      if (m?.kenshin === 'answer') {
        pending.get(m.id)?.(m.result);
        return;
      }
      if (m?.kenshin !== 'listening' || stopping) return;
      listening.add(w);
      listeningSince.set(w, Date.now());
      // Served a while: whatever kept failing works again, the next death restarts at once.
      setTimeout(() => {
        if (listening.has(w)) restartDelay = RESTART_DELAY_MS;
      }, HEALTHY_AFTER_MS).unref();
      if (reloads > (reloadsAtFork.get(w) ?? reloads)) w.process.kill('SIGHUP');
      if (!firstUrl) {
        firstUrl = m.url;
        // The first process has started (so the configuration, CA and keys are fine): now the rest.
        for (let i = 1; i < config.processes; i++) fork('worker');
      }
      if (started || listening.size < config.processes) return;
      started = true;
      void (async () => {
        if (config.metricsListen) {
          metricsServer = await serveHealthAndMetrics(config.metricsListen, { metrics: scrape, contentType: metrics.contentType, readiness });
        }
        io.stdout(`${describeListening(firstUrl!)} (${config.processes} processes)\n`);
      })();
    });

    cluster.on('exit', (w: Worker, code: number | null, signal: string | null) => {
      const role = roles.get(w)!;
      // A process that dies soon after it started listening is failing too (a crash on the first
      // requests, a database that went away): not restarted every second for ever either.
      const since = listeningSince.get(w);
      const ranWell = since !== undefined && Date.now() - since >= HEALTHY_AFTER_MS;
      roles.delete(w);
      listening.delete(w);
      listeningSince.delete(w);
      reloadsAtFork.delete(w);
      metrics.retire(w.id);
      if (stopping) {
        if (roles.size === 0) {
          if (!failed) io.stdout('stopped\n');
          finish(failed ? 1 : 0);
        }
        return;
      }
      if (!started && listening.size === 0 && roles.size === 0) {
        // The first process could not start: it has said why (one line, as a single process would)
        // and its exit code is ours.
        failed = true;
        finish(code ?? 1);
        return;
      }
      if (!started) {
        // A later process could not start (its error is on stderr already): stop the others.
        io.stderr(`kenshin: a serve process exited before listening (${signal ?? `code ${code}`}); stopping the others\n`);
        failed = true;
        stopping = true;
        stopAll('SIGTERM');
        if (roles.size === 0) finish(1);
        return;
      }
      // A replacement that dies before it listens (the CA file damaged since, the database gone)
      // would otherwise be restarted every second for ever, each time with its error on stderr.
      // One that had been fine is replaced at once and leaves the backoff of a failing one as it is.
      const delay = ranWell ? RESTART_DELAY_MS : restartDelay;
      if (!ranWell) restartDelay = Math.min(restartDelay * 2, MAX_RESTART_DELAY_MS);
      io.stderr(`kenshin: serve process ${w.process.pid} (${role}) exited (${signal ?? `code ${code}`}); starting another in ${delay / 1000} s\n`);
      setTimeout(() => {
        if (!stopping) fork(role);
      }, delay);
    });

    // One first, alone: if it cannot start, the user gets its one error and its exit code.
    fork('housekeeper');
  });
  return exitCode;
}
