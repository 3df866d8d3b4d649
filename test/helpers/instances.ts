import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { after } from 'node:test';
import { processCommand } from './cli.js';

/**
 * Real `kenshin serve` processes (the binary, as an operator starts it), for tests of several
 * instances sharing one data directory and one database.
 */
export interface Instance {
  name: string;
  /** https://127.0.0.1:PORT/ */
  url: string;
  port: number;
  /** The process's pid (with KENSHIN_PROCESSES > 1, the primary's). */
  pid: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | string>;
}

// A port nobody listens on right now (the kernel's pick), for KENSHIN_LISTEN.
import { freePort } from './nginx.js';
import { childEnv } from './child-env.js';
export { freePort };

const running = new Set<Instance>();
after(async () => {
  // A failed assertion must not leave servers behind: stop what this file started.
  await Promise.all([...running].map((i) => i.stop()));
});

/** Spawns `node bin/kenshin.js ARGS` on its own port; `env` is the whole KENSHIN_* environment. */
export async function spawnInstance(name: string, args: string[], env: Record<string, string>, opts: { umask?: string } = {}): Promise<Instance> {
  const port = await freePort();
  const [cmd, ...rest] = processCommand(args, opts);
  const child = spawn(cmd!, rest, {
    env: childEnv({ KENSHIN_LISTEN: `127.0.0.1:${port}`, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const instance: Instance = {
    name,
    url: `https://127.0.0.1:${port}/`,
    port,
    pid: child.pid!,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      running.delete(instance);
      return code;
    },
  };
  running.add(instance);
  void exited.then(() => running.delete(instance));
  return instance;
}

/**
 * Waits until the instance answers GET /healthz over TLS, verified against the root CA in
 * `dataDir` (read on every attempt: with `serve --init` it does not exist yet at first).
 * Fails with the instance's stderr when it exits instead; the deadline only stops a hung test.
 */
export async function waitReady(instance: Instance, dataDir: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  let ended: number | string | undefined;
  void instance.exited.then((code) => (ended = code));
  for (;;) {
    if (ended !== undefined) throw new Error(`${instance.name} exited (${ended}) before it was ready:\n${instance.stderr}\n${instance.stdout}`);
    const rootFile = path.join(dataDir, 'ca', 'root.crt');
    if (fs.existsSync(rootFile)) {
      const status = await healthz(instance.url, fs.readFileSync(rootFile, 'utf8')).catch(() => 0);
      if (status === 200) return;
    }
    if (Date.now() > end) throw new Error(`${instance.name} not ready after ${deadlineMs} ms:\n${instance.stderr}\n${instance.stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function healthz(base: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(new URL('/healthz', base), { ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** The DER of the certificate the server presents in its TLS handshake. */
export function serverCertificate(base: string, ca: string): Promise<Buffer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.end();
      resolve(der);
    });
    socket.on('error', reject);
  });
}

export interface RawResponse {
  status: number;
  body: string;
}

/**
 * Sends the same request over many connections at the same moment: every TLS handshake (with the
 * client certificate) completes first, then all requests are written together, so they are truly
 * in flight at once rather than queued behind each other's handshakes.
 */
export async function simultaneousRequests(
  targets: { base: string; method: string; path: string; headers?: Record<string, string>; body?: string }[],
  opts: { ca: string; pfx: Uint8Array; passphrase: string },
): Promise<RawResponse[]> {
  const sockets = await Promise.all(
    targets.map(
      (t) =>
        new Promise<tls.TLSSocket>((resolve, reject) => {
          const url = new URL(t.base);
          const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: opts.ca, pfx: Buffer.from(opts.pfx), passphrase: opts.passphrase, ALPNProtocols: ['http/1.1'] }, () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  return Promise.all(
    targets.map(
      (t, i) =>
        new Promise<RawResponse>((resolve, reject) => {
          const payload = t.body === undefined ? undefined : Buffer.from(t.body);
          const req = https.request(new URL(t.path, t.base), {
            method: t.method,
            headers: { ...t.headers, ...(payload ? { 'content-length': String(payload.length) } : {}) },
            // No agent: the request goes over the connection that is already open (see above).
            createConnection: () => sockets[i]!,
          });
          req.on('response', (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => {
              sockets[i]!.end();
              resolve({ status: res.statusCode ?? 0, body });
            });
          });
          req.on('error', reject);
          req.end(payload);
        }),
    ),
  );
}
