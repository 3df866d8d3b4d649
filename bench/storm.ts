/**
 * The renewal storm: many clinics pressing 「開始する」 at once, e.g. the first morning after a
 * reminder mail. `renewals` RSA-2048 renewals (POST /api/v1/certificate/renewal over mTLS, each with
 * its own certificate) arrive spread evenly over `--seconds`, against a real `kenshin serve`
 * (startServer, mint workers as configured by default), once without the key pool and once with
 * it (KENSHIN_KEY_POOL_SIZE, ca/key-pool.ts). Reported: the wait after 「開始する」 — the request's
 * latency — at p50, p99 and max.
 *
 *   node --import tsx bench/storm.ts [--quick] [--renewals N] [--seconds N] [--pool N]
 *
 * There is no peer to compare with: the figure is the wait itself (target: a few seconds at p99).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, dataPaths } from '../src/config.js';
import { createHierarchy } from '../src/ca/hierarchy.js';
import { openRuntime } from '../src/runtime.js';
import { addTenant } from '../src/tenancy/service.js';
import { issueCertificate } from '../src/certificates/service.js';
import { startServer } from '../src/web/server.js';
import { DAY_MS } from '../src/clock.js';
import { TlsClient } from '../test/helpers/client.js';
import { option, percentile, round, writeResult } from './lib.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const renewals = Number(option(argv, '--renewals') ?? (quick ? 20 : 200));
const seconds = Number(option(argv, '--seconds') ?? (quick ? 6 : 60));
const poolSize = Number(option(argv, '--pool') ?? 8);
const PASSPHRASE = 'bench-passphrase';

async function installation(count: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-storm-'));
  const env = { KENSHIN_CA_PASSPHRASE: PASSPHRASE, KENSHIN_LOG_LEVEL: 'silent', KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_METRICS_LISTEN: 'off' };
  await createHierarchy({ paths: dataPaths(dir), keyType: 'p256', commonNamePrefix: 'Kenshin Bench', passphraseFromEnv: PASSPHRASE, now: new Date() });
  const rt = await openRuntime(loadConfig({ dataDir: dir }, env), { create: true });
  const certs: { file: Uint8Array; password: string }[] = [];
  try {
    await addTenant({ db: rt.database.db, clock: rt.clock }, { code: 'T0001', name: 'ベンチマーク医院' }, 'bench');
    const deps = await rt.certificateDeps();
    const now = Date.now();
    // The clinics' current certificates: RSA-2048, 60 days left (inside the renewal window).
    const issue = () =>
      issueCertificate(deps, { tenantCode: 'T0001', keyType: 'rsa2048', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + 60 * DAY_MS) }, actor: 'bench' });
    for (let i = 0; i < count; i += 8) {
      for (const r of await Promise.all(Array.from({ length: Math.min(8, count - i) }, issue))) certs.push({ file: r.pkcs12, password: r.password });
    }
  } finally {
    await rt.close();
  }
  return { dir, env, certs, ca: fs.readFileSync(dataPaths(dir).rootCert, 'utf8') };
}

async function storm(pool: number) {
  const inst = await installation(renewals);
  const config = loadConfig({ dataDir: inst.dir }, { ...inst.env, KENSHIN_KEY_POOL_SIZE: String(pool) });
  const server = await startServer(config);
  try {
    // Let the workers fill their pools (an idle service has had all night).
    await new Promise((r) => setTimeout(r, pool > 0 ? 3000 + pool * 400 : 500));
    const waits: number[] = [];
    const started = performance.now();
    let failures = 0;
    await Promise.all(
      inst.certs.map(async (cert, i) => {
        await new Promise((r) => setTimeout(r, (i * seconds * 1000) / renewals));
        const t0 = performance.now();
        const res = await new TlsClient(server.url, inst.ca, cert).request('POST', '/api/v1/certificate/renewal', { json: {} });
        if (res.status !== 201) failures++;
        waits.push(performance.now() - t0);
      }),
    );
    const sorted = waits.sort((a, b) => a - b);
    return { pool, renewals, overSeconds: round((performance.now() - started) / 1000, 1), failures, p50Ms: round(percentile(sorted, 50), 0), p99Ms: round(percentile(sorted, 99), 0), maxMs: round(sorted[sorted.length - 1]!, 0) };
  } finally {
    await server.close();
    fs.rmSync(inst.dir, { recursive: true, force: true });
  }
}

const without = await storm(0);
console.log(`renewal storm, no key pool: ${renewals} RSA renewals over ${seconds} s: wait p50 ${without.p50Ms} ms, p99 ${without.p99Ms} ms, max ${without.maxMs} ms (${without.failures} failed)`);
const withPool = await storm(poolSize);
console.log(`renewal storm, key pool of ${poolSize} per worker: wait p50 ${withPool.p50Ms} ms, p99 ${withPool.p99Ms} ms, max ${withPool.maxMs} ms (${withPool.failures} failed)`);
if (without.failures || withPool.failures) process.exitCode = 1;
console.log(`written ${writeResult('storm', quick, { renewals, seconds, without, withPool, target: 'p99 < a few seconds', met: withPool.p99Ms < 3000 })}`);
