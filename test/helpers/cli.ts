import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/context.js';
import type { Clock } from '../../src/clock.js';
import { childEnv } from './child-env.js';

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

/**
 * Runs the real `bin/kenshin.js` as a child process. `obeyPermissions` makes a root test process
 * run it without CAP_DAC_OVERRIDE (util-linux setpriv), so file permission bits apply as they do
 * to an operator's service account, while the checkout stays readable wherever it was cloned.
 */
export function kenshinProcess(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: string; obeyPermissions?: boolean; umask?: string } = {}): CliResult {
  const [cmd, ...rest] = processCommand(args, opts);
  const r = spawnSync(cmd!, rest, {
    input: opts.stdin ?? '',
    encoding: 'utf8',
    env: childEnv({ ...opts.env }),
    timeout: 60_000,
  });
  return result(r.status ?? -1, r.stdout, r.stderr);
}

/**
 * The command line that runs the binary: under `setpriv` without CAP_DAC_OVERRIDE (see
 * kenshinProcess) and/or under a given umask (`sh -c 'umask 022; exec …'`, as an operator's shell
 * or `npm start` would run it), so file modes are checked against what a real start creates.
 */
export function processCommand(args: string[], opts: { obeyPermissions?: boolean; umask?: string } = {}): string[] {
  const asRoot = process.getuid?.() === 0;
  const node = opts.obeyPermissions && asRoot ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', process.execPath] : [process.execPath];
  const line = [...node, BIN, ...args];
  return opts.umask === undefined ? line : ['sh', '-c', `umask ${opts.umask} && exec "$@"`, 'sh', ...line];
}
