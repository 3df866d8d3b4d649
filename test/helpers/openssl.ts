import { execFileSync, spawnSync } from 'node:child_process';

/** Runs a real tool and returns stdout; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], input?: string | Uint8Array): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout + r.stderr;
}

export function tryRun(cmd: string, args: string[], input?: string | Uint8Array): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

export function certText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space'], { input: pem, encoding: 'utf8' });
}
