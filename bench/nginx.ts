import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { childPids } from './lib.js';

/**
 * Debian's real nginx as an unprivileged process with its own prefix, configuration and logs in a
 * temp dir, on a loopback port. Running as root (CI containers), it is started as `nobody` through
 * setpriv, so it never holds privileges the benchmark does not need.
 */
export const NGINX = '/usr/sbin/nginx';

export interface RunningNginx {
  port: number;
  prefix: string;
  /** The master and its workers, for CPU accounting. */
  pids(): number[];
  close(): Promise<void>;
}

export interface NginxOptions {
  port: number;
  /** `worker_processes`: 'auto' (Debian's default, one per core) or a number. */
  workers: 'auto' | number;
  /** Files written under the prefix before start (relative paths); the config refers to them. */
  files: Record<string, string | Uint8Array>;
  /** The `server { … }` blocks (and anything else inside `http { … }`). */
  http: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess | undefined, what: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNginx(o: NginxOptions): Promise<RunningNginx> {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-nginx-'));
  fs.chmodSync(prefix, 0o755);
  for (const [rel, content] of Object.entries(o.files)) {
    const file = path.join(prefix, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${prefix}/tmp/${t};`).join('\n  ');
  fs.mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  fs.mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  const conf = `# Written by the Kenshin benchmark; runs in the foreground as an unprivileged process.
daemon off;
worker_processes ${o.workers};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log ${prefix}/logs/access.log;
  sendfile on;
  ${temp}
${o.http}
}
`;
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf);
  const args = ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'logs', 'error.log')];
  const root = process.getuid?.() === 0;
  if (root) fs.chownSync(prefix, 65534, 65534);
  if (root) for (const e of fs.readdirSync(prefix, { recursive: true }) as string[]) fs.chownSync(path.join(prefix, e), 65534, 65534);
  const child = root ? spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NGINX, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    await waitForPort(o.port, child, 'nginx');
  } catch (e) {
    child.kill('SIGKILL');
    const log = fs.existsSync(path.join(prefix, 'logs', 'error.log')) ? fs.readFileSync(path.join(prefix, 'logs', 'error.log'), 'utf8') : '';
    throw new Error(`${(e as Error).message}\n${stderr}${log}`);
  }
  return {
    port: o.port,
    prefix,
    pids: () => [child.pid!, ...childPids(child.pid!)],
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT'); // graceful: workers finish, then the master exits
        await exited;
      }
      fs.rmSync(prefix, { recursive: true, force: true });
    },
  };
}
