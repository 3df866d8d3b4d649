/**
 * Serving the CRL: GET /crl/issuing.crl from `kenshin serve` (its own process, direct TLS) against
 * Debian's nginx serving the very same bytes as a static file, with the same load generator, TLS
 * version, server certificate and kept-alive connections; and against Node's own https server
 * serving them (bench/bare-node-server.ts), which shows what Node itself reaches here. Each size in
 * `--revoked` (default 100,000 entries: 4.9 MB, the size of issue 14's table, then 1,000: 48 KB;
 * 1,000 alone in --quick) gets its own installation.
 *
 *   node --import tsx bench/crl.ts [--quick] [--revoked N,M] [--seconds N] [--rounds N] [--connections N]
 *
 * Target (issue 14): ≥ 0.5× nginx. Kenshin keeps the published DER ready (web/crl-files.ts) and
 * asks the database only for the stored CRL's number per request.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { loadConfig, dataPaths } from '../src/config.js';
import { createHierarchy } from '../src/ca/hierarchy.js';
import { openRuntime } from '../src/runtime.js';
import { addTenant } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';
import { publishCrl } from '../src/certificates/crl.js';
import { ensureServerCertificate } from '../src/ca/server-certificate.js';
import { cpuMs, option, round, writeResult } from './lib.js';
import { runLoad } from './loadgen.js';
import { freePort, startNginx } from './nginx.js';
import { startBareNode, startKenshinServe } from './kenshin-serve.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const settings = {
  // The size of issue 14's table (4.9 MB) and a small one (48 KB), where the work per request shows.
  revoked: (option(argv, '--revoked') ?? (quick ? '1000' : '100000,1000')).split(',').map(Number),
  /** Unmeasured load on each server before the first round. */
  initialWarmupSeconds: quick ? 0 : 3,
  seconds: Number(option(argv, '--seconds') ?? (quick ? 1 : 6)),
  rounds: Number(option(argv, '--rounds') ?? (quick ? 1 : 3)),
  connections: Number(option(argv, '--connections') ?? 16),
  threads: os.availableParallelism(),
};
const PATH = '/crl/issuing.crl';
const PASSPHRASE = 'bench-passphrase';

async function prepare(revoked: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-crl-'));
  const env = { KENSHIN_CA_PASSPHRASE: PASSPHRASE };
  const config = loadConfig({ dataDir: dir }, env);
  const paths = dataPaths(dir);
  await createHierarchy({ paths, keyType: 'p256', commonNamePrefix: 'Kenshin Bench', passphraseFromEnv: PASSPHRASE, now: new Date() });
  const rt = await openRuntime(config, { create: true });
  try {
    await addTenant({ db: rt.database.db, clock: rt.clock }, { code: 'T0001', name: 'ベンチマーク医院' }, 'bench');
    const deps = await rt.certificateDeps();
    // The load generator's certificate (a CRL needs none; Kenshin asks for one and it is shown).
    const client = await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'bench' });
    // The revoked entries: rows like the client's with their own serial and fingerprint. Only the
    // CRL reads them, and it reads serial, date and reason.
    const row: Partial<typeof client.row> = { ...client.row };
    delete row.id;
    const revokedAt = new Date().toISOString();
    for (let done = 0; done < revoked; ) {
      const n = Math.min(500, revoked - done);
      const rows = Array.from({ length: n }, () => ({ ...(row as Omit<typeof client.row, 'id'>), serial: '4' + randomBytes(15).toString('hex'), fingerprint_sha256: randomBytes(32).toString('hex'), status: 'revoked' as const, revoked_at: revokedAt, revocation_reason: 'superseded' }));
      await rt.database.db.insertInto('certificates').values(rows).execute();
      done += n;
    }
    const crl = await publishCrl({ db: rt.database.db, clock: rt.clock, authority: await rt.authority() });
    const tls = await ensureServerCertificate(await rt.authority(), paths, config.serverNames, PASSPHRASE, new Date());
    return { dir, env, ca: fs.readFileSync(paths.rootCert, 'utf8'), pfx: client.pkcs12, passphrase: client.password, tls, crlBytes: crl.der.length };
  } finally {
    await rt.close();
  }
}

function fetchOnce(p: Awaited<ReturnType<typeof prepare>>, port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: PATH, ca: p.ca, pfx: Buffer.from(p.pfx), passphrase: p.passphrase, servername: 'localhost', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${PATH}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

interface Measured {
  requestsPerSecond: number;
  megabytesPerSecond: number;
  serverCpuMsPerRequest: number;
  p50Ms: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One CRL size: Kenshin, nginx and bare Node serving the same bytes, round after round. */
async function measure(revoked: number) {
  const p = await prepare(revoked);
  console.log(`CRL with ${revoked} entries: ${round(p.crlBytes / 1e6, 2)} MB`);
  const kPort = await freePort();
  // --server-node-args "--cpu-prof --cpu-prof-dir=DIR": profile the server under this load.
  const nodeArgs = (option(argv, '--server-node-args') ?? '').split(' ').filter(Boolean);
  const kenshin = await startKenshinServe({ dir: p.dir, env: p.env, listen: { port: kPort }, nodeArgs });
  const running: { close(): Promise<void> }[] = [kenshin];
  try {
    const body = await fetchOnce(p, kPort);
    const nPort = await freePort();
    const nginx = await startNginx({
      port: nPort,
      workers: 'auto',
      files: { 'server.crt': p.tls.certChainPem, 'server.key': p.tls.keyPem, [`html${PATH}`]: body },
      http: `
  server {
    listen 127.0.0.1:${nPort} ssl;
    ssl_certificate server.crt;
    ssl_certificate_key server.key;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    location / { root html; default_type application/pkix-crl; }
  }`,
    });
    running.push(nginx);
    const bPort = await freePort();
    const bare = await startBareNode({ dir: p.dir, port: bPort, certChainPem: p.tls.certChainPem, keyPem: p.tls.keyPem, clientCaPem: p.ca, body, contentType: 'application/pkix-crl', processes: settings.threads });
    running.push(bare);
    for (const port of [nPort, bPort]) if (!(await fetchOnce(p, port)).equals(body)) throw new Error(`port ${port} does not serve the same bytes`);
    const targets = [
      { name: 'kenshin', port: kPort, pids: kenshin.pids },
      { name: 'nginx', port: nPort, pids: nginx.pids },
      { name: 'bareNode', port: bPort, pids: bare.pids },
    ];
    const load = (t: (typeof targets)[number], warmupSeconds: number, seconds: number, onWindow?: (edge: 'start' | 'end') => void) =>
      runLoad({ host: '127.0.0.1', port: t.port, path: PATH, ca: p.ca, pfx: p.pfx, passphrase: p.passphrase, connections: settings.connections, threads: settings.threads, mode: 'keepalive', warmupSeconds, seconds, ...(onWindow ? { onWindow } : {}) });
    // Node compiles its hot paths under load: without this the first round measures the JIT.
    if (settings.initialWarmupSeconds > 0) for (const t of targets) await load(t, 0, settings.initialWarmupSeconds);
    const results: Record<string, Measured[]> = { kenshin: [], nginx: [], bareNode: [] };
    for (let round_ = 1; round_ <= settings.rounds; round_++) {
      for (const t of targets) {
        let c0 = cpuMs(t.pids());
        let c1 = c0;
        const r = await load(t, quick ? 0.3 : 1, settings.seconds, (edge) => (edge === 'start' ? (c0 = cpuMs(t.pids())) : (c1 = cpuMs(t.pids()))));
        const m = { requestsPerSecond: round(r.requestsPerSecond, 0), megabytesPerSecond: round((r.requestsPerSecond * body.length) / 1e6, 0), serverCpuMsPerRequest: round((c1.total - c0.total) / r.count, 3), p50Ms: round(r.p50Ms, 3) };
        results[t.name]!.push(m);
        console.log(`round ${round_}/${settings.rounds} ${t.name.padEnd(8)} ${m.requestsPerSecond} req/s (${m.megabytesPerSecond} MB/s), ${m.serverCpuMsPerRequest} ms CPU/req, p50 ${m.p50Ms} ms`);
      }
    }
    const med = (who: string, key: keyof Measured) => median(results[who]!.map((x) => x[key]));
    const ratio = round(med('kenshin', 'requestsPerSecond') / med('nginx', 'requestsPerSecond'), 2);
    // When the load generator is what limits (nginx and bare Node at the same rate), the requests
    // per second say little; the CPU each server spent on a request still does.
    const cpuRatio = round(med('nginx', 'serverCpuMsPerRequest') / med('kenshin', 'serverCpuMsPerRequest'), 2);
    const bareRatio = round(med('bareNode', 'requestsPerSecond') / med('nginx', 'requestsPerSecond'), 2);
    console.log(`kenshin / nginx serving the same ${round(body.length / 1e6, 2)} MB CRL: ${ratio}× (target ≥ 0.5); CPU per request ${cpuRatio}×; bare Node ${bareRatio}×`);
    return { revoked, crlBytes: body.length, results, ratio, cpuRatio, bareNodeRatio: bareRatio, met: ratio >= 0.5 };
  } finally {
    for (const r of running.reverse()) await r.close();
    fs.rmSync(p.dir, { recursive: true, force: true });
  }
}

async function main() {
  const sizes = [];
  for (const revoked of settings.revoked) sizes.push(await measure(revoked));
  const out = writeResult('crl', quick, { settings, sizes, target: '≥ 0.5× nginx', met: sizes.every((s) => s.met) });
  console.log(`written ${path.relative(process.cwd(), out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
