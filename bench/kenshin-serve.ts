import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, startNginx, waitForPort } from './nginx.js';
import { getOverSocket } from '../test/helpers/front.js';
import { childPids } from './lib.js';

/** A server under test: where it listens and which processes do its work (for CPU accounting). */
export interface Target {
  name: string;
  description: string;
  port: number;
  pids(): number[];
  close(): Promise<void>;
}

export interface ServeOptions {
  dir: string;
  env: Record<string, string>;
  /** A TCP port on 127.0.0.1 (direct mode), or a unix socket (proxy mode). */
  listen: { port: number } | { socket: string };
  /** Extra node flags, e.g. "--cpu-prof --cpu-prof-dir=DIR". */
  nodeArgs?: string[];
}

export interface ServeProcess {
  pid: number;
  /** The process and its children: with KENSHIN_PROCESSES > 1 the primary and every serve process. */
  pids(): number[];
  close(): Promise<void>;
}

/** A started server process: its CPU is its own and its children's; SIGTERM stops it. */
function served(child: ChildProcess): ServeProcess {
  return {
    pid: child.pid!,
    pids: () => [child.pid!, ...childPids(child.pid!)],
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * `kenshin serve` in its own process, as in production: the bench's load generator and nginx must
 * not share its event loop, and its CPU time is then its own. JSON request lines go to
 * <dir>/serve.log (a failed start shows its tail).
 */
export async function startKenshinServe(o: ServeOptions): Promise<ServeProcess> {
  const log = fs.openSync(path.join(o.dir, 'serve.log'), 'a', 0o600);
  const listen = 'port' in o.listen ? `127.0.0.1:${o.listen.port}` : `unix:${o.listen.socket}`;
  const child: ChildProcess = spawn(process.execPath, [...(o.nodeArgs ?? []), path.join(import.meta.dirname, '..', 'bin', 'kenshin.js'), 'serve', '--data-dir', o.dir, '--listen', listen], {
    env: { ...process.env, KENSHIN_METRICS_LISTEN: '127.0.0.1:0', KENSHIN_LOG_LEVEL: 'info', KENSHIN_LOG_FORMAT: 'json', ...o.env },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  try {
    if ('port' in o.listen) await waitForPort(o.listen.port, child, 'kenshin serve', 60000);
    else await waitForSocket(o.listen.socket, child, 60000);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${fs.readFileSync(path.join(o.dir, 'serve.log'), 'utf8').slice(-2000)}`);
  }
  return served(child);
}

async function waitForSocket(socket: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`kenshin serve exited with ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(socket);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`kenshin serve did not listen on ${socket} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The benchmark's nginx runs as `nobody` when the bench runs as root (bench/nginx.ts); Kenshin's
 * socket is 0660 for its owner's group, so it is handed to nobody's group, as an operator puts
 * nginx's user in Kenshin's group.
 */
function shareSocketWithNginx(socket: string): void {
  if (process.getuid?.() !== 0) return;
  fs.chmodSync(path.dirname(socket), 0o755);
  fs.chownSync(socket, 0, 65534);
}

export interface BehindNginxOptions {
  dir: string;
  env: Record<string, string>;
  /** PEM files nginx needs (server certificate, key, client CA), written under its prefix. */
  files: Record<string, string>;
  /** The nginx `http { … }` contents for Kenshin on `socket` and nginx on `port`; `crl.pem` is under the prefix. */
  conf(socket: string, port: number, httpPort: number): string;
  nodeArgs?: string[];
  /** Kenshin's environment that needs nginx's port (e.g. KENSHIN_PUBLIC_URL). */
  envForPort?(port: number): Record<string, string>;
}

/**
 * nginx with TLS and the client certificate in front of `kenshin serve` in proxy mode on a unix
 * socket, as deployed; pids() is the whole path (nginx's master and workers and Kenshin).
 */
export async function startKenshinBehindNginx(o: BehindNginxOptions): Promise<{ port: number; pids(): number[]; close(): Promise<void> }> {
  const port = await freePort();
  const sockDir = fs.mkdtempSync('/tmp/ks-bench-');
  const socket = path.join(sockDir, 'kenshin.sock');
  const serve = await startKenshinServe({ dir: o.dir, env: { ...o.env, KENSHIN_MODE: 'proxy', ...o.envForPort?.(port) }, listen: { socket }, nodeArgs: o.nodeArgs });
  try {
    shareSocketWithNginx(socket);
    const nginx = await startNginx({ port, workers: 'auto', files: { ...o.files, 'crl.pem': await getOverSocket(socket, '/crl/bundle.pem') }, http: o.conf(socket, port, await freePort()) });
    return {
      port,
      pids: () => [...nginx.pids(), ...serve.pids()],
      async close() {
        await nginx.close();
        await serve.close();
        fs.rmSync(sockDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await serve.close();
    fs.rmSync(sockDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Node's own https server serving one file (bench/bare-node-server.ts), one process per core: the
 * floor any Node server reaches on this machine, beside Kenshin and nginx.
 */
export async function startBareNode(o: { dir: string; port: number; certChainPem: string; keyPem: string; clientCaPem: string; body: Uint8Array; contentType: string; processes: number }): Promise<ServeProcess> {
  const file = (name: string, data: string | Uint8Array) => {
    const p = path.join(o.dir, name);
    fs.writeFileSync(p, data, { mode: 0o600 });
    return p;
  };
  const args = [file('bare.crt', o.certChainPem), file('bare.key', o.keyPem), file('bare-ca.pem', o.clientCaPem), file('bare.body', o.body), String(o.port), String(o.processes), o.contentType];
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'bare-node-server.ts'), ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(o.port, child, 'bare Node https server', 30000);
  return served(child);
}
