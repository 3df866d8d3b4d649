import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { World } from './world.js';
import type { RunningServer } from '../../src/web/server.js';
import { systemClock } from '../../src/clock.js';
import { freePort, replaceOnce, startNginx, type NginxFiles, type RunningNginx } from './nginx.js';
import { childEnv } from './child-env.js';
import { kenshinBehindProxy } from './front.js';

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
  // The real clock, not the world's fixed one: the example application checks the assertion's
  // 60-second expiry with the machine's clock (see helpers/dates.ts); the world starts at that now.
  const { server, files, dir } = await kenshinBehindProxy(w, { publicUrl: url, publicUrlConfigured: true, gatewayAudience: AUDIENCE }, systemClock, 'nginx-gateway');

  // The application fetches the JWKS from the site, as it would in production: over nginx, trusting our root.
  const upstream = await startUpstream(w, { KENSHIN_ISSUER: url, KENSHIN_AUDIENCE: AUDIENCE, NODE_EXTRA_CA_CERTS: w.runtime.paths.rootCert });
  const shipped = fs.readFileSync(SHIPPED_GATEWAY_CONF, 'utf8');
  const nginx = await startNginx(dir, files, { port, conf: (p, httpPort) => testableGatewayConf(shipped, { ...files, application: upstream.address }, p, httpPort) });
  w.onClose(() => nginx.stop());
  return { server, nginx, url, upstreamLog: upstream.log };
}
