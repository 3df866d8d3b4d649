/**
 * What the gateway adds per request. The same application (Debian's nginx answering a fixed JSON
 * body on loopback: the cheapest upstream there is, so the figure is the gateway's own cost) reached
 * three ways, with the same load generator, client certificate and server certificate:
 *
 *   plain    nginx, TLS + ssl_verify_client on, proxy_pass to the application, no auth (the peer)
 *   gateway  nginx with deploy/nginx-gateway.conf as shipped (ports and paths rewritten): every
 *            request first asks Kenshin (auth_request /auth/verify over a unix socket, proxy mode)
 *   built-in kenshin serve in direct mode with KENSHIN_UPSTREAM_URL: TLS, the check and the proxy in
 *            Kenshin (gateway/built-in-proxy.ts)
 *   auth-floor the same shipped nginx-gateway.conf, but the check is answered by a second nginx on the
 *            unix socket (`return 200` with identity headers of the same sizes): what auth_request
 *            itself costs nginx on this machine, the best any forward-auth server could reach
 *
 * Throughput with `--connections` kept-alive connections; latency with one connection (nothing
 * queues, so p50 is the path's own time). Each request carries the session cookie of a real login.
 *
 *   node --import tsx bench/gateway.ts [--quick] [--seconds N] [--rounds N] [--connections N] [--threads N]
 *
 * Targets (issue 12): gateway ≥ 0.5× plain's throughput, < 1 ms added at p50.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, dataPaths } from '../src/config.js';
import { createHierarchy } from '../src/ca/hierarchy.js';
import { openRuntime } from '../src/runtime.js';
import { addInstitution, addTenant, addUser } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';
import { ensureServerCertificate } from '../src/ca/server-certificate.js';
import { DAY_MS } from '../src/clock.js';
import { crlBundlePem, currentCrls } from '../src/certificates/crl-set.js';
import { TlsClient } from '../test/helpers/client.js';
import { SHIPPED_GATEWAY_CONF, testableGatewayConf } from '../test/helpers/gateway.js';
import { cpuMs, option, round, writeResult } from './lib.js';
import { runLoad, type LoadResult } from './loadgen.js';
import { freePort, startNginx } from './nginx.js';
import { startKenshinBehindNginx, startKenshinServe, type Target } from './kenshin-serve.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const cores = os.availableParallelism();
const settings = {
  seconds: Number(option(argv, '--seconds') ?? (quick ? 1 : 6)),
  warmupSeconds: quick ? 0.3 : 1,
  rounds: Number(option(argv, '--rounds') ?? (quick ? 1 : 3)),
  connections: Number(option(argv, '--connections') ?? 16),
  threads: Number(option(argv, '--threads') ?? cores),
};
// --server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof": profile Kenshin under the gateway's load.
const nodeArgs = (option(argv, '--server-node-args') ?? '').split(' ').filter(Boolean);
const PASSPHRASE = 'bench-passphrase';
const LOGIN_PASSWORD = 'bench gateway password';
const APP_PATH = '/records/42?tab=a';
const AUDIENCE = 'https://app.example.test/';
/** About the length of a real X-Kenshin-Assertion (an ES256 JWT with the identity's claims). */
const ASSERTION_LENGTH = 900;
const APP_BODY = '{"application":"健診アプリ","ok":true}';

interface Installation {
  dir: string;
  env: Record<string, string>;
  ca: string;
  pfx: Uint8Array;
  passphrase: string;
  serverCertChainPem: string;
  serverKeyPem: string;
  clientCaPem: string;
  /** Every CRL in one PEM (what nginx's ssl_crl reads), for the floor's nginx. */
  crlPem: string;
}

/** A CA, one tenant with one 健診機関 and one user, and a client certificate 400 days from expiry (no renewal check in the way). */
async function install(): Promise<Installation> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-gateway-'));
  const env = { KENSHIN_CA_PASSPHRASE: PASSPHRASE, KENSHIN_GATEWAY_AUDIENCE: AUDIENCE, KENSHIN_MINT_WORKERS: '0' };
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Bench', passphraseFromEnv: PASSPHRASE, now: new Date() });
  const config = loadConfig({ dataDir: dir }, env);
  const rt = await openRuntime(config, { create: true });
  try {
    const deps = { db: rt.database.db, clock: rt.clock };
    await addTenant(deps, { code: 'T0001', name: 'ベンチマーク医院' }, 'bench');
    await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: 'ベンチマーク医院本院' }, 'bench');
    await addUser(deps, { tenantCode: 'T0001', loginId: 'bench', password: LOGIN_PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'bench');
    const now = Date.now();
    const cert = await issueCertificate(await rt.certificateDeps(), {
      tenantCode: 'T0001',
      keyType: 'p256',
      profile: 'compatible',
      validity: { kind: 'explicit', notBefore: new Date(now - 600 * DAY_MS), notAfter: new Date(now + 400 * DAY_MS) },
      actor: 'bench',
    });
    const tls = await ensureServerCertificate(await rt.authority(), paths, ['localhost', '127.0.0.1'], PASSPHRASE, new Date());
    const root = fs.readFileSync(paths.rootCert, 'utf8');
    const crlPem = crlBundlePem(await currentCrls({ db: rt.database.db, clock: rt.clock, cas: await rt.caSet() }), []);
    return { dir, env, ca: root, pfx: cert.pkcs12, passphrase: cert.password, serverCertChainPem: tls.certChainPem, serverKeyPem: tls.keyPem, clientCaPem: root + fs.readFileSync(paths.issuingCert, 'utf8'), crlPem };
  } finally {
    await rt.close();
  }
}

const tlsFiles = (p: Installation) => ({ 'server.crt': p.serverCertChainPem, 'server.key': p.serverKeyPem, 'client-ca.pem': p.clientCaPem });

/** The application: nginx answering one fixed body over plain HTTP on loopback. */
async function startApplication() {
  const port = await freePort();
  const nginx = await startNginx({
    port,
    workers: 1,
    files: {},
    http: `
  server {
    listen 127.0.0.1:${port};
    access_log off;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '${APP_BODY}'; }
  }`,
  });
  return { address: `127.0.0.1:${port}`, nginx };
}

async function startPlain(p: Installation, app: string): Promise<Target> {
  const port = await freePort();
  const nginx = await startNginx({
    port,
    workers: 'auto',
    files: tlsFiles(p),
    http: `
  upstream application { server ${app}; keepalive 16; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate server.crt;
    ssl_certificate_key server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate client-ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    location / {
      proxy_pass http://application;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
    }
  }`,
  });
  return { name: 'plain', description: 'nginx proxy_pass to the application, ssl_verify_client on, no auth', port, pids: nginx.pids, close: nginx.close };
}

async function startGatewayPeer(p: Installation, app: string): Promise<Target> {
  const behind = await startKenshinBehindNginx({
    dir: p.dir,
    env: p.env,
    envForPort: (port) => ({ KENSHIN_PUBLIC_URL: `https://127.0.0.1:${port}/` }),
    nodeArgs,
    files: tlsFiles(p),
    conf: (socket, port, httpPort) =>
      testableGatewayConf(fs.readFileSync(SHIPPED_GATEWAY_CONF, 'utf8'), { upstreamSocket: socket, tlsCert: 'server.crt', tlsKey: 'server.key', clientCa: 'client-ca.pem', crl: 'crl.pem', application: app }, port, httpPort),
  });
  return { name: 'gateway', description: 'nginx with deploy/nginx-gateway.conf: auth_request /auth/verify → kenshin serve (proxy mode, unix socket), then proxy_pass to the application', ...behind };
}

/**
 * The floor of the auth_request design: deploy/nginx-gateway.conf exactly as the gateway target
 * runs it, with the check answered by a second nginx on the unix socket — no session, no lookup,
 * a fixed 200 with the identity headers Kenshin sends (the same names and sizes, the assertion a
 * string as long as a real one). Whatever the gateway loses to it is Kenshin's; what it loses to
 * plain is nginx's subrequest.
 */
async function startAuthFloor(p: Installation, app: string): Promise<Target> {
  const sockDir = fs.mkdtempSync('/tmp/ks-bench-floor-');
  fs.chmodSync(sockDir, 0o777);
  const socket = path.join(sockDir, 'auth.sock');
  const identity: Record<string, string> = {
    'X-Kenshin-Tenant': 'T0001',
    'X-Kenshin-Institution': '1312345678',
    'X-Kenshin-Institution-Name': encodeURIComponent('ベンチマーク医院本院'),
    'X-Kenshin-User': 'bench',
    'X-Kenshin-Role': 'user',
    'X-Kenshin-Certificate-Serial': '4'.padEnd(32, '0'),
    'X-Kenshin-Certificate-Not-After': new Date(Date.now() + 400 * DAY_MS).toISOString(),
    'X-Kenshin-Certificate-Days-Left': '400',
    'X-Kenshin-Assertion': 'e'.repeat(ASSERTION_LENGTH),
  };
  const authPort = await freePort();
  const auth = await startNginx({
    port: authPort,
    workers: 'auto',
    files: {},
    http: `
  server {
    listen 127.0.0.1:${authPort};
    listen unix:${socket};
    access_log off;
    keepalive_requests 1000000;
    location / {
${Object.entries(identity).map(([k, v]) => `      add_header ${k} "${v}";`).join('\n')}
      return 200;
    }
  }`,
  });
  try {
    const port = await freePort();
    const front = await startNginx({
      port,
      workers: 'auto',
      files: { ...tlsFiles(p), 'crl.pem': p.crlPem },
      http: testableGatewayConf(fs.readFileSync(SHIPPED_GATEWAY_CONF, 'utf8'), { upstreamSocket: socket, tlsCert: 'server.crt', tlsKey: 'server.key', clientCa: 'client-ca.pem', crl: 'crl.pem', application: app }, port, await freePort()),
    });
    return {
      name: 'auth-floor',
      description: 'deploy/nginx-gateway.conf with the check answered by nginx (return 200 with identity headers) on the unix socket',
      port,
      pids: () => [...front.pids(), ...auth.pids()],
      async close() {
        await front.close();
        await auth.close();
        fs.rmSync(sockDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await auth.close();
    fs.rmSync(sockDir, { recursive: true, force: true });
    throw e;
  }
}

async function startBuiltIn(p: Installation, app: string): Promise<Target> {
  const port = await freePort();
  const serve = await startKenshinServe({ dir: p.dir, env: { ...p.env, KENSHIN_UPSTREAM_URL: `http://${app}`, KENSHIN_PUBLIC_URL: `https://127.0.0.1:${port}/` }, listen: { port }, nodeArgs });
  return { name: 'built-in', description: 'kenshin serve (direct TLS) with KENSHIN_UPSTREAM_URL: the check and the proxy in Kenshin', port, pids: serve.pids, close: serve.close };
}

/** A real login through the target (the login form with its CSRF token); returns the Cookie header, after checking the application answers with it. */
async function logIn(p: Installation, t: Target): Promise<string> {
  const c = new TlsClient(`https://127.0.0.1:${t.port}/`, p.ca, { file: p.pfx, password: p.passphrase });
  if (t.name !== 'plain' && t.name !== 'auth-floor') {
    const login = await c.get('/login');
    await c.follow(await c.submit(login, '/login', { loginId: 'bench', password: LOGIN_PASSWORD }));
  }
  const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const probe = await c.get(APP_PATH);
  if (probe.status !== 200 || !probe.text.includes('健診アプリ')) throw new Error(`${t.name}: the application did not answer after login (${probe.status}): ${probe.text.slice(0, 300)}`);
  return cookie;
}

interface Measurement extends LoadResult {
  serverCpuMsPerRequest: number;
}

async function measure(p: Installation, t: Target, cookie: string, connections: number, threads: number, seconds = settings.seconds): Promise<Measurement> {
  let cpu0 = { user: 0, system: 0, total: 0 };
  let cpu1 = cpu0;
  const r = await runLoad({
    host: '127.0.0.1',
    port: t.port,
    path: APP_PATH,
    ca: p.ca,
    pfx: p.pfx,
    passphrase: p.passphrase,
    headers: cookie ? { Cookie: cookie } : {},
    connections,
    threads,
    mode: 'keepalive',
    warmupSeconds: settings.warmupSeconds,
    seconds,
    onWindow(edge) {
      if (edge === 'start') cpu0 = cpuMs(t.pids());
      else cpu1 = cpuMs(t.pids());
    },
  });
  return { ...r, serverCpuMsPerRequest: (cpu1.total - cpu0.total) / r.count };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const p = await install();
  const app = await startApplication();
  const targets: Target[] = [];
  try {
    targets.push(await startPlain(p, app.address), await startGatewayPeer(p, app.address), await startBuiltIn(p, app.address), await startAuthFloor(p, app.address));
    const cookies = new Map<string, string>();
    for (const t of targets) cookies.set(t.name, await logIn(p, t));
    // Warm-up: JIT, statement caches, nginx's upstream keepalive pools.
    for (const t of targets) await measure(p, t, cookies.get(t.name)!, settings.connections, settings.threads, quick ? 0.5 : 3);

    const load: Record<string, Measurement[]> = {};
    const single: Record<string, Measurement[]> = {};
    for (let r = 0; r < settings.rounds; r++) {
      for (const t of targets) {
        const m = await measure(p, t, cookies.get(t.name)!, settings.connections, settings.threads);
        (load[t.name] ??= []).push(m);
        const s = await measure(p, t, cookies.get(t.name)!, 1, 1);
        (single[t.name] ??= []).push(s);
        console.log(`round ${r + 1}/${settings.rounds} ${t.name.padEnd(8)} ${m.requestsPerSecond.toFixed(0).padStart(6)} req/s (${settings.connections} connections), ${m.serverCpuMsPerRequest.toFixed(3)} ms CPU/req; one connection: p50 ${s.p50Ms.toFixed(3)} ms, p99 ${s.p99Ms.toFixed(3)} ms`);
      }
    }
    const summary = (name: string) => ({
      description: targets.find((t) => t.name === name)!.description,
      requestsPerSecond: round(median(load[name]!.map((m) => m.requestsPerSecond)), 0),
      allRounds: load[name]!.map((m) => round(m.requestsPerSecond, 0)),
      serverCpuMsPerRequest: round(median(load[name]!.map((m) => m.serverCpuMsPerRequest)), 4),
      underLoad: { p50Ms: round(median(load[name]!.map((m) => m.p50Ms)), 3), p99Ms: round(median(load[name]!.map((m) => m.p99Ms)), 3) },
      oneConnection: { p50Ms: round(median(single[name]!.map((m) => m.p50Ms)), 3), p99Ms: round(median(single[name]!.map((m) => m.p99Ms)), 3), requestsPerSecond: round(median(single[name]!.map((m) => m.requestsPerSecond)), 0) },
    });
    const results = Object.fromEntries(targets.map((t) => [t.name, summary(t.name)]));
    const vsPlain = (name: string) => ({
      throughputRatio: round(results[name]!.requestsPerSecond / results.plain!.requestsPerSecond),
      addedP50Ms: round(results[name]!.oneConnection.p50Ms - results.plain!.oneConnection.p50Ms, 3),
      addedP99Ms: round(results[name]!.oneConnection.p99Ms - results.plain!.oneConnection.p99Ms, 3),
    });
    const gateway = vsPlain('gateway');
    const builtIn = vsPlain('built-in');
    const authFloor = vsPlain('auth-floor');
    const out = writeResult('gateway', quick, {
      settings: { ...settings, request: `GET ${APP_PATH} with the session cookie`, application: `nginx return 200 (${Buffer.byteLength(APP_BODY)} bytes)` },
      results,
      gateway: { ...gateway, targets: { throughputRatio: 0.5, addedP50Ms: 1 }, met: gateway.throughputRatio >= 0.5 && gateway.addedP50Ms < 1 },
      builtIn,
      authFloor: { ...authFloor, gatewayVsFloor: round(results.gateway!.requestsPerSecond / results['auth-floor']!.requestsPerSecond) },
    });
    console.log(`gateway / plain nginx proxy: ${gateway.throughputRatio}× throughput (target ≥ 0.5), +${gateway.addedP50Ms} ms at p50 (target < 1); built-in proxy: ${builtIn.throughputRatio}×, +${builtIn.addedP50Ms} ms; auth_request answered by nginx itself: ${authFloor.throughputRatio}×, +${authFloor.addedP50Ms} ms; written ${path.relative(process.cwd(), out)}`);
  } finally {
    for (const t of targets.reverse()) await t.close().catch(() => undefined);
    await app.nginx.close().catch(() => undefined);
    fs.rmSync(p.dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
