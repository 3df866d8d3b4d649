import { loadConfig, type Config, type ConfigOverrides } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { makeOut, type Out } from './output.js';
import { reportError } from './errors.js';
import type { Clock } from '../clock.js';

/** What a command needs from the outside world; tests pass their own. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout(s: string): void;
  stderr(s: string): void;
  readStdin(): Promise<string>;
  clock?: Clock;
}

export const processIo: CliIo = {
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export interface CommandScope {
  io: CliIo;
  out: Out;
  config: Config;
  /** Opens database (and lazily the CA) for the command; closed after it. */
  runtime(): Promise<Runtime>;
}

export interface ExitBox {
  code: number;
}

/**
 * Runs one command body with config, output and error reporting set up, and the runtime closed
 * afterwards. Refusals become one stderr line and exit code 2.
 */
export async function runCommand(
  io: CliIo,
  exit: ExitBox,
  opts: { json?: boolean; dataDir?: string; config?: string },
  /** A function when computing the overrides can itself refuse (parsing a flag). */
  overrides: ConfigOverrides | (() => ConfigOverrides),
  body: (scope: CommandScope) => Promise<void>,
): Promise<void> {
  const json = Boolean(opts.json);
  let rt: Runtime | undefined;
  try {
    const env = opts.config ? { ...io.env, KENSHIN_CONFIG: opts.config } : io.env;
    const config = loadConfig({ ...(typeof overrides === 'function' ? overrides() : overrides), ...(opts.dataDir ? { dataDir: opts.dataDir } : {}) }, env);
    const scope: CommandScope = {
      io,
      out: makeOut(json, io.stdout),
      config,
      runtime: async () => (rt ??= await openRuntime(config, io.clock ? { clock: io.clock } : {})),
    };
    await body(scope);
  } catch (e) {
    exit.code = reportError(e, json, io.stderr);
  } finally {
    if (rt) await rt.close();
  }
}
