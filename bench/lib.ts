import fs from 'node:fs';
import path from 'node:path';
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

/** The p-th percentile (nearest rank) of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The value after `--name` on the command line, if any. */
export function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Writes bench/results/<name>-<quick|full>.json with the machine (core count) in it; returns the path. */
export function writeResult(name: string, quick: boolean, data: Record<string, unknown>): string {
  const out = path.join(import.meta.dirname, 'results', `${name}-${quick ? 'quick' : 'full'}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ machine: machine(), date: new Date().toISOString(), quick, ...data }, null, 2) + '\n');
  return out;
}

const CLK_TCK = 100; // USER_HZ on Linux: /proc times are in 1/100 s on every mainstream architecture

/** CPU time in ms that these processes (all their threads) have used so far, in user space and in the kernel. */
export function cpuMs(pids: number[]): { user: number; system: number; total: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]);
      system += Number(f[12]);
    } catch {
      // The process is gone; it used nothing more.
    }
  }
  return { user: (user * 1000) / CLK_TCK, system: (system * 1000) / CLK_TCK, total: ((user + system) * 1000) / CLK_TCK };
}

/** Direct children of a process (nginx's workers under its master). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // Exited while we looked.
    }
  }
  return out;
}
