import { Worker } from 'node:worker_threads';
import type { LoadWorkerData, LoadWorkerResult } from './loadgen-worker.js';
import { percentile } from './lib.js';

/**
 * The load generator: `threads` worker threads sharing `connections` TLS connections, each thread
 * with its own event loop so that the generator is not limited to one core. The same generator,
 * request, client certificate and TLS settings are used for every server it is pointed at.
 */
export interface LoadOptions {
  host: string;
  port: number;
  path: string;
  ca: string;
  pfx: Uint8Array;
  passphrase: string;
  /** Extra request headers, sent with every request. */
  headers?: Record<string, string>;
  connections: number;
  threads: number;
  mode: 'keepalive' | 'handshake';
  warmupSeconds: number;
  seconds: number;
  /** Called at the start and end of the measurement window (e.g. to read the server's CPU time). */
  onWindow?: (edge: 'start' | 'end') => void;
}

export interface LoadResult {
  requestsPerSecond: number;
  count: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  negotiated: LoadWorkerResult['negotiated'];
  resumedHandshakes: number;
}

const WORKER_URL = new URL('./loadgen-worker.ts', import.meta.url).href;
const TSX_API = import.meta.resolve('tsx/esm/api');
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL)}); });`;

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  // Workers take a moment to start (tsx); the window begins after that and after the warm-up.
  const measureFrom = Date.now() + 500 + o.warmupSeconds * 1000;
  const measureUntil = measureFrom + o.seconds * 1000;
  const per = Array.from({ length: o.threads }, (_, i) => Math.floor(o.connections / o.threads) + (i < o.connections % o.threads ? 1 : 0));
  // The edges of the window, each called once: by its timer, or (if the threads report back before
  // the end timer ran) right after they do, a few milliseconds late at most.
  const edges = { start: false, end: false };
  const edge = (e: 'start' | 'end') => {
    if (edges[e]) return;
    edges[e] = true;
    o.onWindow?.(e);
  };
  const timers = [setTimeout(() => edge('start'), measureFrom - Date.now()), setTimeout(() => edge('end'), measureUntil - Date.now())];
  const results = await Promise.all(
    per.map(
      (connections) =>
        new Promise<LoadWorkerResult>((resolve, reject) => {
          const data: LoadWorkerData = { host: o.host, port: o.port, path: o.path, ca: o.ca, pfx: o.pfx, passphrase: o.passphrase, headers: o.headers, connections, mode: o.mode, measureFrom, measureUntil };
          const w = new Worker(BOOTSTRAP, { eval: true, workerData: data });
          w.once('message', (r: LoadWorkerResult) => resolve(r));
          w.once('error', reject);
          w.once('exit', (code) => code !== 0 && reject(new Error(`load generator thread exited with ${code}`)));
        }),
    ),
  );
  timers.forEach(clearTimeout);
  edge('start');
  edge('end');
  const errors = results.flatMap((r) => r.errors);
  if (errors.length) throw new Error(`load generator: ${errors.length} connection(s) failed, e.g. ${errors[0]}`);
  const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const count = results.reduce((n, r) => n + r.count, 0);
  return {
    requestsPerSecond: count / o.seconds,
    count,
    seconds: o.seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    negotiated: results.find((r) => r.negotiated)?.negotiated,
    resumedHandshakes: results.reduce((n, r) => n + r.resumedHandshakes, 0),
  };
}
