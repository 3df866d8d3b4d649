import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Runs `task` with `parallel` workers for `seconds`; returns completions per second. */
export async function throughput(parallel: number, seconds: number, task: () => Promise<void>): Promise<{ count: number; perSecond: number; seconds: number }> {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (performance.now() < deadline) {
        await task();
        count++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { count, perSecond: count / elapsed, seconds: elapsed };
}

/** The longest event-loop stall while `fn` runs, in ms (what a concurrent HTTP request would wait). */
export async function withStallMonitor<T>(fn: () => Promise<T>): Promise<{ result: T; maxStallMs: number; p99StallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  try {
    const result = await fn();
    return { result, maxStallMs: h.max / 1e6, p99StallMs: h.percentile(99) / 1e6 };
  } finally {
    h.disable();
  }
}

export function machine() {
  return { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.type()} ${os.release()}` };
}

export function parseArgs(argv: string[]): { quick: boolean; seconds: number; parallel: number; keys: ('p256' | 'rsa2048')[] } {
  const quick = argv.includes('--quick');
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const cores = os.availableParallelism();
  // Requests in flight at once, the same for Kenshin and its peer: twice the cores, so neither side
  // idles while one of its requests waits on I/O or a thread hop.
  const keys = (get('--keys') ?? 'p256,rsa2048').split(',').filter((k): k is 'p256' | 'rsa2048' => k === 'p256' || k === 'rsa2048');
  return { quick, seconds: Number(get('--seconds') ?? (quick ? 1 : 8)), parallel: Number(get('--parallel') ?? 2 * cores), keys };
}
