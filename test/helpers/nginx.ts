import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

/**
 * Debian's real nginx running deploy/nginx.conf — the file we ship — as an unprivileged child with
 * its own prefix. Only what cannot be the same on a test machine is rewritten (ports, file paths,
 * the socket); each rewrite must match exactly once, so a change to the shipped file that the test
 * no longer covers fails here instead of passing silently.
 */
export const NGINX = '/usr/sbin/nginx';
export const SHIPPED_CONF = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'nginx.conf');

export interface NginxFiles {
  /** Where Kenshin (proxy mode) listens. */
  upstreamSocket: string;
  tlsCert: string;
  tlsKey: string;
  clientCa: string;
  crl: string;
}

export interface RunningNginx {
  url: string;
  port: number;
  httpPort: number;
  dir: string;
  errorLog(): string;
  /** nginx -s reload (e.g. after a new CRL bundle), resolved once the new configuration answers. */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export function replaceOnce(text: string, from: string, to: string, file = 'deploy/nginx.conf'): string {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`${file}: expected "${from}" exactly once, found ${n} times`);
  return text.replace(from, to);
}

export function testableConf(shipped: string, files: NginxFiles, port: number, httpPort: number): string {
  let c = shipped;
  c = replaceOnce(c, 'server unix:/run/kenshin/kenshin.sock;', `server unix:${files.upstreamSocket};`);
  c = replaceOnce(c, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`);
  c = replaceOnce(c, 'listen [::]:443 ssl;', '');
  c = replaceOnce(c, 'listen 80;', `listen 127.0.0.1:${httpPort};`);
  c = replaceOnce(c, 'listen [::]:80;', '');
  c = replaceOnce(c, 'ssl_certificate     /etc/kenshin/tls/fullchain.pem;', `ssl_certificate ${files.tlsCert};`);
  c = replaceOnce(c, 'ssl_certificate_key /etc/kenshin/tls/privkey.pem;', `ssl_certificate_key ${files.tlsKey};`);
  c = replaceOnce(c, 'ssl_client_certificate /etc/kenshin/proxy/client-ca.pem;', `ssl_client_certificate ${files.clientCa};`);
  c = replaceOnce(c, 'ssl_crl /etc/kenshin/proxy/crl.pem;', `ssl_crl ${files.crl};`);
  return c;
}

/**
 * `conf`: another shipped file rendered for the test (deploy/nginx-gateway.conf); `port`: the HTTPS
 * port when the caller had to know it before (Kenshin's public URL is the assertion's issuer).
 */
export async function startNginx(dir: string, files: NginxFiles, opts: { port?: number; conf?: (port: number, httpPort: number) => string } = {}): Promise<RunningNginx> {
  // freePort() closes the port it found before nginx binds it, so another test process can take it
  // in between. Ports we chose are chosen again; a port the caller fixed is its problem to report.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNginxOnce(dir, files, opts);
    } catch (e) {
      if (!(e instanceof PortTaken) || opts.port !== undefined || attempt === 5) throw e;
    }
  }
}

class PortTaken extends Error {}

async function startNginxOnce(dir: string, files: NginxFiles, opts: { port?: number; conf?: (port: number, httpPort: number) => string }): Promise<RunningNginx> {
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const port = opts.port ?? (await freePort());
  const httpPort = await freePort();
  const pidFile = path.join(dir, 'nginx.pid');
  fs.rmSync(pidFile, { force: true });
  fs.writeFileSync(path.join(dir, 'kenshin.conf'), opts.conf ? opts.conf(port, httpPort) : testableConf(fs.readFileSync(SHIPPED_CONF, 'utf8'), files, port, httpPort));
  const t = (n: string) => path.join(dir, 'tmp', n);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    [
      // As root, nginx's workers would become "nobody" and could not open the test's socket.
      process.getuid?.() === 0 ? 'user root;' : '',
      'worker_processes 1;',
      `pid ${pidFile};`,
      `error_log ${path.join(dir, 'error.log')} info;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${path.join(dir, 'access.log')};`,
      `  client_body_temp_path ${t('body')}; proxy_temp_path ${t('proxy')}; fastcgi_temp_path ${t('fastcgi')}; uwsgi_temp_path ${t('uwsgi')}; scgi_temp_path ${t('scgi')};`,
      `  include ${path.join(dir, 'kenshin.conf')};`,
      '}',
    ].join('\n'),
  );
  const args = ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'];
  const test = spawn(NGINX, [...args, '-t'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let testOut = '';
  test.stderr.on('data', (d: Buffer) => (testOut += d.toString()));
  const testCode = await new Promise<number | null>((resolve) => test.on('exit', resolve));
  if (testCode !== 0) throw new Error(`nginx -t failed:\n${testOut}`);
  // `nginx -t` leaves no pid file, but be sure the one we wait for is the server's own.
  fs.rmSync(pidFile, { force: true });

  const child: ChildProcess = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const failed = () => {
    if (/Address already in use/.test(stderr)) return new PortTaken(`nginx could not listen on ${port}/${httpPort}: ${stderr}`);
    return new Error(`nginx exited: ${stderr}`);
  };
  const up = async () => {
    // nginx writes its pid file only once it holds its listening sockets; until then a TLS answer on
    // the port may come from another test's nginx (nginx retries a busy bind for 2.5 s).
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw failed();
      const ours = fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() === String(child.pid);
      const ok =
        ours &&
        (await new Promise<boolean>((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }));
      if (ok) return;
      if (/Address already in use/.test(stderr)) {
        child.kill('SIGKILL');
        await exited;
        throw failed();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // SIGTERM first: its workers, if it forked any, go with it (a SIGKILLed master leaves them on the port).
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw new Error(`nginx did not start: ${stderr}`);
  };
  await up();
  return {
    url: `https://127.0.0.1:${port}/`,
    port,
    httpPort,
    dir,
    errorLog: () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8'),
    async reload() {
      const before = fs.readFileSync(path.join(dir, 'error.log'), 'utf8').split('gracefully shutting down').length;
      process.kill(child.pid!, 'SIGHUP');
      // Old workers finish gracefully once the new ones run.
      for (let i = 0; i < 100; i++) {
        if (fs.readFileSync(path.join(dir, 'error.log'), 'utf8').split('gracefully shutting down').length > before) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('nginx did not reload');
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  };
}
