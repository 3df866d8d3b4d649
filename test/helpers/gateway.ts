import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { World } from './world.js';
import { startServer, type RunningServer } from '../../src/web/server.js';
import { ensureServerCertificate } from '../../src/ca/server-certificate.js';
import { loadTrustedCaPems } from '../../src/ca/hierarchy.js';
import { systemClock } from '../../src/clock.js';
import { freePort, replaceOnce, startNginx, type NginxFiles, type RunningNginx } from './nginx.js';
import { childEnv } from './child-env.js';
import { getOverSocket } from './front.js';

/**
 * The gateway as an operator deploys it: Debian's nginx running deploy/nginx-gateway.conf — the
 * file we ship, with only ports and paths rewritten (each rewrite must match exactly once) — in
 * front of Kenshin (proxy mode, unix socket) and of examples/gateway-upstream/server.mjs, the
 * example application, which verifies every X-Kenshin-Assertion against Kenshin's JWKS over nginx.
 */
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHIPPED_GATEWAY_CONF = path.join(ROOT, 'deploy', 'nginx-gateway.conf');
export const EXAMPLE_UPSTREAM = path.join(ROOT, 'examples', 'gateway-upstream', 'server.mjs');
export const AUDIENCE = 'https://app.example.test/';

export interface Gateway {
  server: RunningServer;
  nginx: RunningNginx;
  url: string;
  /** What the example application printed (its refusals are on its pages; this is for failures). */
  upstreamLog(): string;
}

export function testableGatewayConf(shipped: string, files: NginxFiles & { application: string }, port: number, httpPort: number): string {
  const f = 'deploy/nginx-gateway.conf';
  let c = shipped;
  c = replaceOnce(c, 'server unix:/run/kenshin/kenshin.sock;', `server unix:${files.upstreamSocket};`, f);
  c = replaceOnce(c, 'server 127.0.0.1:3000;', `server ${files.application};`, f);
  c = replaceOnce(c, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`, f);
  c = replaceOnce(c, 'listen [::]:443 ssl;', '', f);
  c = replaceOnce(c, 'listen 80;', `listen 127.0.0.1:${httpPort};`, f);
  c = replaceOnce(c, 'listen [::]:80;', '', f);
  c = replaceOnce(c, 'ssl_certificate     /etc/kenshin/tls/fullchain.pem;', `ssl_certificate ${files.tlsCert};`, f);
  c = replaceOnce(c, 'ssl_certificate_key /etc/kenshin/tls/privkey.pem;', `ssl_certificate_key ${files.tlsKey};`, f);
  c = replaceOnce(c, 'ssl_client_certificate /etc/kenshin/proxy/client-ca.pem;', `ssl_client_certificate ${files.clientCa};`, f);
  c = replaceOnce(c, 'ssl_crl /etc/kenshin/proxy/crl.pem;', `ssl_crl ${files.crl};`, f);
  return c;
}

/** examples/gateway-upstream/server.mjs as a child process; `env` as its README says (LISTEN defaults to a free port). */
export async function startUpstream(w: World, env: Record<string, string>): Promise<{ address: string; log: () => string }> {
  const child = spawn(process.execPath, [EXAMPLE_UPSTREAM], { env: childEnv({ LISTEN: '127.0.0.1:0', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  w.onClose(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const address = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const m = /listening on http:\/\/([\d.]+:\d+)\//.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`example upstream exited (${code}): ${out}`)));
  });
  return { address, log: () => out };
}

export async function startGateway(w: World): Promise<Gateway> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}/`;
  const sockDir = fs.mkdtempSync('/tmp/ks-');
  const socket = path.join(sockDir, 'kenshin.sock');
  // The real clock, not the world's fixed one: the example application checks the assertion's
  // 60-second expiry with the machine's clock (see helpers/dates.ts); the world starts at that now.
  const server = await startServer(
    { ...w.config, mode: 'proxy', listen: { socket }, publicUrl: url, publicUrlConfigured: true, gatewayAudience: AUDIENCE },
    { clock: systemClock },
  );
  w.onClose(async () => {
    await server.close();
    fs.rmSync(sockDir, { recursive: true, force: true });
  });

  const dir = path.join(w.dir, 'nginx-gateway');
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

  // The application fetches the JWKS from the site, as it would in production: over nginx, trusting our root.
  const upstream = await startUpstream(w, { KENSHIN_ISSUER: url, KENSHIN_AUDIENCE: AUDIENCE, NODE_EXTRA_CA_CERTS: w.runtime.paths.rootCert });
  const shipped = fs.readFileSync(SHIPPED_GATEWAY_CONF, 'utf8');
  const nginx = await startNginx(dir, files, { port, conf: (p, httpPort) => testableGatewayConf(shipped, { ...files, application: upstream.address }, p, httpPort) });
  w.onClose(() => nginx.stop());
  return { server, nginx, url, upstreamLog: upstream.log };
}
