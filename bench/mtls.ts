/**
 * mTLS request throughput: an authenticated JSON API request through Kenshin (`kenshin serve`, its
 * own process) against Debian's nginx serving the same bytes as a static file with
 * `ssl_verify_client on`, with the same load generator, client certificate, server certificate and
 * TLS version, with keep-alive and with a full TLS handshake per request.
 *
 *   node --import tsx bench/mtls.ts [--quick] [--seconds N] [--rounds N] [--connections N] [--threads N]
 *        [--client-key p256|rsa2048] [--only kenshin,nginx] [--modes keepalive,handshake] [--server-node-args "--cpu-prof --cpu-prof-dir=DIR"]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { loadConfig, dataPaths } from '../src/config.js';
import { createHierarchy } from '../src/ca/hierarchy.js';
import { openRuntime } from '../src/runtime.js';
import { addTenant } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';
import { openPackage, startRenewal } from '../src/renewal/service.js';
import { ensureServerCertificate } from '../src/ca/server-certificate.js';
import { DAY_MS } from '../src/clock.js';
import { childPids, cpuMs, option, round, writeResult } from './lib.js';
import { runLoad, type LoadResult } from './loadgen.js';
import { freePort, startNginx, type RunningNginx } from './nginx.js';
import { startBareNode, startKenshinBehindNginx, startKenshinServe, type Target } from './kenshin-serve.js';
import { SHIPPED_CONF, testableConf } from '../test/helpers/nginx.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const cores = os.availableParallelism();
const settings = {
  seconds: Number(option(argv, '--seconds') ?? (quick ? 1 : 8)),
  /** Unmeasured load on each server and mode before the first round. */
  initialWarmupSeconds: quick ? 0.5 : 4,
  /** Unmeasured load at the start of each measurement. */
  warmupSeconds: quick ? 0.5 : 1,
  rounds: Number(option(argv, '--rounds') ?? (quick ? 1 : 3)),
  // A fixed number of connections, the same for every server.
  connections: Number(option(argv, '--connections') ?? 16),
  // Generator threads: one per core, so the generator is never the single-threaded bottleneck.
  threads: Number(option(argv, '--threads') ?? cores),
  clientKey: (option(argv, '--client-key') ?? 'p256') as 'p256' | 'rsa2048',
};
const PATH = '/api/v1/certificate';
const PASSPHRASE = 'bench-passphrase';

interface Prepared {
  dir: string;
  ca: string;
  pfx: Uint8Array;
  passphrase: string;
  serverCertChainPem: string;
  serverKeyPem: string;
  /** root + issuing CA: what nginx trusts for client certificates (Kenshin trusts the same two). */
  clientCaPem: string;
  env: Record<string, string>;
}

/**
 * A data dir with a CA, one tenant, and the client certificate: a renewal successor (what most
 * clinics hold after their first three years), so each request also takes Kenshin's "first request
 * with the new certificate" path, which is then a no-op.
 */
async function prepare(): Promise<Prepared> {
  const env = { KENSHIN_CA_PASSPHRASE: PASSPHRASE };
  // --data-dir DIR (with --keep-data on an earlier run) reuses a prepared installation, so a server
  // started by hand for --attach can use the same CA, server certificate and client certificate.
  const reuse = option(argv, '--data-dir');
  if (reuse && fs.existsSync(path.join(reuse, 'bench-client.json'))) return JSON.parse(fs.readFileSync(path.join(reuse, 'bench-client.json'), 'utf8'), (k, v) => (k === 'pfx' ? new Uint8Array(Buffer.from(v as string, 'base64')) : v)) as Prepared;
  const dir = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-mtls-'));
  fs.mkdirSync(dir, { recursive: true });
  const config = loadConfig({ dataDir: dir }, env);
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Bench', passphraseFromEnv: PASSPHRASE, now: new Date() });
  const rt = await openRuntime(config, { create: true });
  try {
    await addTenant({ db: rt.database.db, clock: rt.clock }, { code: 'T0001', name: 'ベンチマーク医院' }, 'bench');
    const deps = await rt.renewalDeps();
    const now = Date.now();
    const first = await issueCertificate(deps, {
      tenantCode: 'T0001',
      keyType: settings.clientKey,
      profile: 'compatible',
      validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + 60 * DAY_MS) },
      actor: 'bench',
    });
    const renewed = await startRenewal(deps, first.row, 'bench');
    const pkg = await openPackage(deps, { downloadId: renewed.renewal.download_id }, renewed.successor);
    const authority = await rt.authority();
    const tls = await ensureServerCertificate(authority, paths, config.serverNames, PASSPHRASE, new Date());
    const root = fs.readFileSync(paths.rootCert, 'utf8');
    const prepared: Prepared = {
      dir,
      ca: root,
      pfx: pkg.contents.pkcs12.compatible!,
      passphrase: pkg.contents.password,
      serverCertChainPem: tls.certChainPem,
      serverKeyPem: tls.keyPem,
      clientCaPem: root + fs.readFileSync(paths.issuingCert, 'utf8'),
      env,
    };
    // 0600: it holds the client's .p12 and password, and serve refuses a data directory others can read.
    fs.writeFileSync(path.join(dir, 'bench-client.json'), JSON.stringify(prepared, (k, v) => (k === 'pfx' ? Buffer.from(v as Uint8Array).toString('base64') : v)), { mode: 0o600 });
    return prepared;
  } finally {
    await rt.close();
  }
}

/** `kenshin serve` in direct mode: TLS and the client certificate at Kenshin. */
async function startKenshin(p: Prepared, processes?: number): Promise<Target> {
  const port = await freePort();
  // --server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof": profile the server under load.
  const nodeArgs = (option(argv, '--server-node-args') ?? '').split(' ').filter(Boolean);
  const serve = await startKenshinServe({ dir: p.dir, env: { ...p.env, ...(processes ? { KENSHIN_PROCESSES: String(processes) } : {}) }, listen: { port }, nodeArgs });
  return {
    name: processes ? `kenshin-${processes}p` : 'kenshin',
    description: `kenshin serve (direct TLS), ${processes ? `KENSHIN_PROCESSES=${processes}` : `KENSHIN_PROCESSES default (${cores})`}, GET /api/v1/certificate`,
    port,
    pids: serve.pids,
    close: serve.close,
  };
}

async function startNginxPeer(p: Prepared, body: Buffer, workers: 'auto' | number): Promise<Target & { nginx: RunningNginx }> {
  const port = await freePort();
  const nginx = await startNginx({
    port,
    workers,
    files: { 'server.crt': p.serverCertChainPem, 'server.key': p.serverKeyPem, 'client-ca.pem': p.clientCaPem, [`html${PATH}`]: body },
    // keepalive_requests: nginx closes a kept-alive connection after 1000 requests by default;
    // Kenshin never does, so the limit is lifted to measure requests, not reconnects.
    http: `
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate server.crt;
    ssl_certificate_key server.key;
    ssl_protocols TLSv1.3;
    ssl_client_certificate client-ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    keepalive_requests 1000000;
    location / {
      root html;
      default_type application/json;
      add_header Cache-Control no-store;
    }
  }`,
  });
  return { name: workers === 'auto' ? 'nginx' : `nginx-${workers}w`, description: `nginx ${workers === 'auto' ? `worker_processes auto (${cores})` : `worker_processes ${workers}`}, static file, ssl_verify_client on`, port, pids: nginx.pids, close: nginx.close, nginx };
}

/**
 * Kenshin behind nginx as deployed: deploy/nginx.conf (only ports and paths rewritten, as in the
 * tests) with TLS and the client certificate at nginx, Kenshin in proxy mode on a unix socket. Its
 * CPU per request is the whole path: nginx's master and workers and the Kenshin process.
 */
async function startBehindNginx(p: Prepared): Promise<Target> {
  const behind = await startKenshinBehindNginx({
    dir: p.dir,
    env: p.env,
    files: { 'server.crt': p.serverCertChainPem, 'server.key': p.serverKeyPem, 'client-ca.pem': p.clientCaPem },
    conf: (socket, port, httpPort) => testableConf(fs.readFileSync(SHIPPED_CONF, 'utf8'), { upstreamSocket: socket, tlsCert: 'server.crt', tlsKey: 'server.key', clientCa: 'client-ca.pem', crl: 'crl.pem' }, port, httpPort),
  });
  return { name: 'behind-nginx', description: 'nginx with deploy/nginx.conf (worker_processes auto) → kenshin serve in proxy mode on a unix socket, GET /api/v1/certificate', ...behind };
}

/** One GET with the benchmark's client certificate: the bytes Kenshin answers, for nginx to serve. */
async function fetchOnce(p: Prepared, port: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: PATH, ca: p.ca, pfx: Buffer.from(p.pfx), passphrase: p.passphrase, agent: false, headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Measurement extends LoadResult {
  serverCpuMsPerRequest: number;
  /** Of the server's CPU time, the part spent in the kernel (TCP on loopback, mostly). */
  serverKernelShare: number;
  /** Cores' worth of CPU the server used during the window. */
  serverCores: number;
  generatorCores: number;
}

async function measure(p: Prepared, t: Target, mode: 'keepalive' | 'handshake'): Promise<Measurement> {
  let cpu0 = { user: 0, system: 0, total: 0 };
  let cpu1 = cpu0;
  let gen0 = process.cpuUsage();
  let gen = { user: 0, system: 0 };
  const r = await runLoad({
    host: '127.0.0.1',
    port: t.port,
    path: PATH,
    ca: p.ca,
    pfx: p.pfx,
    passphrase: p.passphrase,
    connections: settings.connections,
    threads: settings.threads,
    mode,
    warmupSeconds: settings.warmupSeconds,
    seconds: settings.seconds,
    onWindow(edge) {
      if (edge === 'start') {
        cpu0 = cpuMs(t.pids());
        gen0 = process.cpuUsage();
      } else {
        cpu1 = cpuMs(t.pids());
        gen = process.cpuUsage(gen0);
      }
    },
  });
  if (r.resumedHandshakes) throw new Error(`${r.resumedHandshakes} handshakes were resumed; the benchmark wants full handshakes`);
  return {
    ...r,
    serverCpuMsPerRequest: (cpu1.total - cpu0.total) / r.count,
    serverKernelShare: (cpu1.system - cpu0.system) / Math.max(1e-9, cpu1.total - cpu0.total),
    serverCores: (cpu1.total - cpu0.total) / (settings.seconds * 1000),
    generatorCores: (gen.user + gen.system) / 1000 / (settings.seconds * 1000),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const p = await prepare();
  const targets: Target[] = [];
  try {
    const kenshin = await startKenshin(p);
    targets.push(kenshin);
    const probe = await fetchOnce(p, kenshin.port);
    if (probe.status !== 200) throw new Error(`Kenshin answered ${probe.status} to the benchmark certificate: ${probe.body.toString()}`);
    // nginx serves exactly the bytes Kenshin answers, so both send the same body.
    targets.push(await startNginxPeer(p, probe.body, 'auto'));
    if (!quick && cores > 1) targets.push(await startNginxPeer(p, probe.body, 1));
    // One process, as before KENSHIN_PROCESSES: what the other cores add.
    if (!quick && cores > 1) targets.push(await startKenshin(p, 1));
    targets.push(await startBehindNginx(p));
    // Node's own https server answering the same bytes, one process per core: the floor for any
    // Node server here, which tells Kenshin's own cost from Node's TLS and HTTP.
    const barePort = await freePort();
    const bare = await startBareNode({ dir: p.dir, port: barePort, certChainPem: p.serverCertChainPem, keyPem: p.serverKeyPem, clientCaPem: p.clientCaPem, body: probe.body, contentType: 'application/json', processes: cores });
    targets.push({ name: 'bare-node', description: `Node's https server (${cores} processes), the same bytes from memory, requestCert`, port: barePort, pids: bare.pids, close: bare.close });
    // --attach NAME:PORT:PID measures a server started by hand (e.g. an experiment) with the same
    // generator; its CA files are in the data dir printed with --keep-data.
    for (const spec of (option(argv, '--attach') ?? '').split(',').filter(Boolean)) {
      const [name, port, pid] = spec.split(':');
      targets.push({ name: name!, description: `attached ${spec}`, port: Number(port), pids: () => [Number(pid), ...childPids(Number(pid))], close: async () => undefined });
    }

    const only = option(argv, '--only')?.split(',');
    const measured = only ? targets.filter((t) => only.includes(t.name)) : targets;
    const modes = (['keepalive', 'handshake'] as const).filter((m) => (option(argv, '--modes') ?? 'keepalive,handshake').split(',').includes(m));
    const runs: Record<string, Record<string, Measurement[]>> = {};
    // Warm every server up first (JIT, caches, statements), as a server that has been running is.
    for (const t of measured) for (const mode of modes) await runLoad({ host: '127.0.0.1', port: t.port, path: PATH, ca: p.ca, pfx: p.pfx, passphrase: p.passphrase, connections: settings.connections, threads: settings.threads, mode, warmupSeconds: 0, seconds: settings.initialWarmupSeconds });
    // Rounds interleave the servers, so a burst of other load on the machine hits all of them.
    for (let round = 0; round < settings.rounds; round++) {
      for (const mode of modes) {
        for (const t of measured) {
          const m = await measure(p, t, mode);
          ((runs[t.name] ??= {})[mode] ??= []).push(m);
          console.log(`round ${round + 1}/${settings.rounds} ${mode.padEnd(9)} ${t.name.padEnd(9)} ${m.requestsPerSecond.toFixed(0).padStart(6)} req/s  server ${m.serverCpuMsPerRequest.toFixed(3)} ms CPU/req (${(100 * m.serverKernelShare).toFixed(0)}% kernel; ${m.serverCores.toFixed(2)} cores), generator ${m.generatorCores.toFixed(2)} cores, p50 ${m.p50Ms.toFixed(2)} ms p99 ${m.p99Ms.toFixed(2)} ms`);
        }
      }
    }

    const summary = (name: string, mode: string) => {
      const ms = runs[name]?.[mode] ?? [];
      const rps = median(ms.map((m) => m.requestsPerSecond));
      return {
        requestsPerSecond: round(rps, 0),
        allRounds: ms.map((m) => round(m.requestsPerSecond, 0)),
        serverCpuMsPerRequest: round(median(ms.map((m) => m.serverCpuMsPerRequest)), 4),
        serverKernelShare: round(median(ms.map((m) => m.serverKernelShare))),
        serverCores: round(median(ms.map((m) => m.serverCores))),
        generatorCores: round(median(ms.map((m) => m.generatorCores))),
        p50Ms: round(median(ms.map((m) => m.p50Ms))),
        p99Ms: round(median(ms.map((m) => m.p99Ms))),
        negotiated: ms[0]?.negotiated,
      };
    };
    const results: Record<string, unknown> = {};
    for (const t of measured) results[t.name] = { description: t.description, keepalive: summary(t.name, 'keepalive'), handshake: summary(t.name, 'handshake') };
    const ratio = (a: string, b: string, mode: string) => {
      const x = (results[a] as Record<string, { requestsPerSecond: number }> | undefined)?.[mode]?.requestsPerSecond;
      const y = (results[b] as Record<string, { requestsPerSecond: number }> | undefined)?.[mode]?.requestsPerSecond;
      return x && y ? round(x / y) : null;
    };
    const ratios = {
      keepalive: { kenshinVsNginx: ratio('kenshin', 'nginx', 'keepalive'), target: 0.5, oneProcessVsNginx: ratio('kenshin-1p', 'nginx', 'keepalive'), behindNginxVsNginx: ratio('behind-nginx', 'nginx', 'keepalive'), bareNodeVsNginx: ratio('bare-node', 'nginx', 'keepalive'), kenshinVsBareNode: ratio('kenshin', 'bare-node', 'keepalive') },
      handshake: { kenshinVsNginx: ratio('kenshin', 'nginx', 'handshake'), target: 0.9, oneProcessVsNginx: ratio('kenshin-1p', 'nginx', 'handshake'), behindNginxVsNginx: ratio('behind-nginx', 'nginx', 'handshake'), bareNodeVsNginx: ratio('bare-node', 'nginx', 'handshake'), kenshinVsBareNode: ratio('kenshin', 'bare-node', 'handshake') },
    };
    const out = writeResult('mtls', quick, {
      settings: { ...settings, request: `GET ${PATH}`, bodyBytes: probe.body.length, tls: 'TLSv1.3 only on both servers; server certificate P-256 from our issuing CA (the same files); client certificate ' + settings.clientKey },
      results,
      ratios,
    });
    console.log(`mTLS ratios (Kenshin / nginx): keep-alive ${ratios.keepalive.kenshinVsNginx} (target ≥ 0.5; bare Node ${ratios.keepalive.bareNodeVsNginx}), handshake per request ${ratios.handshake.kenshinVsNginx} (target ≥ 0.9; bare Node ${ratios.handshake.bareNodeVsNginx}); written ${path.relative(process.cwd(), out)}`);
  } finally {
    for (const t of targets.reverse()) await t.close().catch(() => undefined);
    if (argv.includes('--keep-data') || option(argv, '--data-dir')) console.log(`data dir kept: ${p.dir}`);
    else fs.rmSync(p.dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
