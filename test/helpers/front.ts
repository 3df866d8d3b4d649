import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { World } from './world.js';
import { startServer, type RunningServer } from '../../src/web/server.js';
import { ensureServerCertificate } from '../../src/ca/server-certificate.js';
import { loadTrustedCaPems } from '../../src/ca/hierarchy.js';
import { startNginx, type NginxFiles, type RunningNginx } from './nginx.js';
import type { Config } from '../../src/config.js';
import type { Clock } from '../../src/clock.js';

/**
 * The portal as the clinics reach it. By default `kenshin serve` terminating TLS itself; with
 * KENSHIN_TEST_VIA=nginx, the same tests go through Debian's nginx running deploy/nginx.conf, with
 * Kenshin in proxy mode on a unix socket behind it — so every portal, API and console test proves
 * the proxy deployment too (`npm run test:nginx`).
 */
export interface Front {
  server: RunningServer;
  /** What clients connect to: Kenshin's own HTTPS port, or nginx's. */
  url: string;
  nginx?: RunningNginx;
}

export const viaNginx = () => process.env.KENSHIN_TEST_VIA === 'nginx';

export function getOverSocket(socketPath: string, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: urlPath }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${urlPath}: ${res.statusCode} ${body}`))));
      })
      .on('error', reject);
  });
}

export async function startFront(w: World, opts: { via?: 'direct' | 'nginx' } = {}): Promise<Front> {
  if ((opts.via ?? (viaNginx() ? 'nginx' : 'direct')) === 'direct') {
    const server = await startServer(w.config, { clock: w.clock });
    w.onClose(() => server.close());
    return { server, url: server.url };
  }
  const { server, files, dir } = await kenshinBehindProxy(w, {}, w.clock, 'nginx');
  const nginx = await startNginx(dir, files);
  w.onClose(() => nginx.stop());
  return { server, url: nginx.url, nginx };
}

/**
 * Kenshin in proxy mode on a unix socket, and what an operator puts in /etc/kenshin for the proxy in
 * front: the site certificate (ours here; a public one in production), and the CA and CRL bundles
 * the service publishes. `overrides` adjust the config (the gateway sets its public URL).
 */
export async function kenshinBehindProxy(w: World, overrides: Partial<Config>, clock: Clock, dirName: string): Promise<{ server: RunningServer; files: NginxFiles; dir: string }> {
  // Unix socket paths are limited to ~100 bytes: keep it short.
  const sockDir = fs.mkdtempSync('/tmp/ks-');
  const socket = path.join(sockDir, 'kenshin.sock');
  const server = await startServer({ ...w.config, mode: 'proxy', listen: { socket }, ...overrides }, { clock });
  w.onClose(async () => {
    await server.close();
    fs.rmSync(sockDir, { recursive: true, force: true });
  });
  const dir = path.join(w.dir, dirName);
  fs.mkdirSync(dir, { recursive: true });
  const authority = await w.runtime.authority();
  const tls = await ensureServerCertificate(authority, w.runtime.paths, ['localhost', '127.0.0.1'], w.config.caPassphrase!, w.clock.now());
  const files = {
    upstreamSocket: socket,
    tlsCert: path.join(dir, 'fullchain.pem'),
    tlsKey: path.join(dir, 'privkey.pem'),
    clientCa: path.join(dir, 'client-ca.pem'),
    crl: path.join(dir, 'crl.pem'),
  };
  fs.writeFileSync(files.tlsCert, tls.certChainPem);
  fs.writeFileSync(files.tlsKey, tls.keyPem, { mode: 0o600 });
  fs.writeFileSync(files.clientCa, loadTrustedCaPems(w.runtime.paths).join('\n'));
  fs.writeFileSync(files.crl, await getOverSocket(socket, '/crl/bundle.pem'));
  return { server, files, dir };
}
