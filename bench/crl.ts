/**
 * Serving the CRL: GET /crl/issuing.crl from `kenshin serve` (its own process, direct TLS) against
 * Debian's nginx serving the very same bytes as a static file, with the same load generator, TLS
 * version, server certificate and kept-alive connections. The CRL has `--revoked` entries (default
 * 100,000: 4.7 MB, the size of issue 14's table; 1,000 in --quick).
 *
 *   node --import tsx bench/crl.ts [--quick] [--revoked N] [--seconds N] [--rounds N] [--connections N]
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
import { startKenshinServe } from './kenshin-serve.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const settings = {
  revoked: Number(option(argv, '--revoked') ?? (quick ? 1_000 : 100_000)),
  seconds: Number(option(argv, '--seconds') ?? (quick ? 1 : 6)),
  rounds: Number(option(argv, '--rounds') ?? (quick ? 1 : 3)),
  connections: Number(option(argv, '--connections') ?? 16),
  threads: os.availableParallelism(),
};
const PATH = '/crl/issuing.crl';
const PASSPHRASE = 'bench-passphrase';

async function prepare() {
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
    for (let done = 0; done < settings.revoked; ) {
      const n = Math.min(500, settings.revoked - done);
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

async function main() {
  const p = await prepare();
  console.log(`CRL with ${settings.revoked} entries: ${round(p.crlBytes / 1e6, 2)} MB`);
  const kPort = await freePort();
  // --server-node-args "--cpu-prof --cpu-prof-dir=DIR": profile the server under this load.
  const nodeArgs = (option(argv, '--server-node-args') ?? '').split(' ').filter(Boolean);
  const kenshin = await startKenshinServe({ dir: p.dir, env: p.env, listen: { port: kPort }, nodeArgs });
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
  try {
    const same = (await fetchOnce(p, nPort)).equals(body);
    if (!same) throw new Error('nginx does not serve the same bytes');
    const targets = [
      { name: 'kenshin', port: kPort, pids: kenshin.pids },
      { name: 'nginx', port: nPort, pids: nginx.pids },
    ];
    const results: Record<string, { requestsPerSecond: number; megabytesPerSecond: number; serverCpuMsPerRequest: number; p50Ms: number }[]> = { kenshin: [], nginx: [] };
    for (let round_ = 1; round_ <= settings.rounds; round_++) {
      for (const t of targets) {
        let c0 = cpuMs(t.pids());
        let c1 = c0;
        const r = await runLoad({
          host: '127.0.0.1', port: t.port, path: PATH, ca: p.ca, pfx: p.pfx, passphrase: p.passphrase,
          connections: settings.connections, threads: settings.threads, mode: 'keepalive', warmupSeconds: quick ? 0.3 : 1, seconds: settings.seconds,
          onWindow: (edge) => (edge === 'start' ? (c0 = cpuMs(t.pids())) : (c1 = cpuMs(t.pids()))),
        });
        const m = { requestsPerSecond: round(r.requestsPerSecond, 0), megabytesPerSecond: round((r.requestsPerSecond * body.length) / 1e6, 0), serverCpuMsPerRequest: round((c1.total - c0.total) / r.count, 3), p50Ms: round(r.p50Ms, 3) };
        results[t.name]!.push(m);
        console.log(`round ${round_}/${settings.rounds} ${t.name.padEnd(8)} ${m.requestsPerSecond} req/s (${m.megabytesPerSecond} MB/s), ${m.serverCpuMsPerRequest} ms CPU/req, p50 ${m.p50Ms} ms`);
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratio = round(med(results.kenshin!.map((x) => x.requestsPerSecond)) / med(results.nginx!.map((x) => x.requestsPerSecond)), 2);
    console.log(`kenshin / nginx serving the same ${round(body.length / 1e6, 2)} MB CRL: ${ratio}× (target ≥ 0.5)`);
    const out = writeResult('crl', quick, { settings, crlBytes: body.length, results, ratio, target: '≥ 0.5× nginx', met: ratio >= 0.5 });
    console.log(`written ${path.relative(process.cwd(), out)}`);
  } finally {
    await nginx.close();
    await kenshin.close();
    fs.rmSync(p.dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
