import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/context.js';
import type { Clock } from '../../src/clock.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = Record<string, unknown>>(): T;
}

function result(code: number, stdout: string, stderr: string): CliResult {
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

/** Runs `kenshin ARGS` in this process: the same code path as the binary, without the start-up cost. */
export async function kenshin(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: string; clock?: Clock } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    env: { ...opts.env },
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    readStdin: async () => opts.stdin ?? '',
    ...(opts.clock ? { clock: opts.clock } : {}),
  };
  const code = await main(['node', 'kenshin', ...args], io);
  return result(code, stdout, stderr);
}

export const BIN = path.resolve(import.meta.dirname, '../../bin/kenshin.js');

/** Runs the real `bin/kenshin.js` as a child process (optionally as another user). */
export function kenshinProcess(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: string; uid?: number; gid?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    input: opts.stdin ?? '',
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
    timeout: 60_000,
  });
  return result(r.status ?? -1, r.stdout, r.stderr);
}
