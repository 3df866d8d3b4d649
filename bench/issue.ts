/**
 * Issuance throughput: certificates per second (key + certificate + .p12 + database row) on all
 * cores, against the `openssl` CLI doing the same per certificate at the same parallelism, in the
 * same run. For RSA-2048 the physical limit is key generation, so it is also measured bare.
 *
 *   npm run bench:issue [-- --quick] [--seconds N] [--parallel N] [--keys p256,rsa2048]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { issueCertificate } from '../src/certificates/service.js';
import { generateKeyPair } from '../src/ca/keys.js';
import { machine, parseArgs, throughput, withStallMonitor } from './lib.js';
import { benchInstallation } from './installation.js';

const run = promisify(execFile);
const args = parseArgs(process.argv.slice(2));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-bench-'));

const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
x509_extensions = client
[dn]
CN = T0001
O = Bench
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function main() {
  // Minting in a pool of worker threads, one per core, as `kenshin serve` does.
  const { passphrase, paths, rt, pool } = await benchInstallation(dir, { code: 'T0001', name: 'ベンチマーク医院' }, { workers: os.availableParallelism() });
  const deps = await rt.certificateDeps(pool);

  // The openssl CLI peer: one `req -x509 -CA` (key + signed certificate) and one `pkcs12 -export`
  // (the compatible profile) per certificate: the fewest processes the CLI needs for these steps.
  fs.writeFileSync(path.join(dir, 'client.cnf'), OPENSSL_CNF);
  await run('openssl', ['pkey', '-in', paths.issuingKey, '-passin', `pass:${passphrase}`, '-out', path.join(dir, 'issuing-plain.pem')]);
  const opensslOnce = (keyType: 'p256' | 'rsa2048') => async () => {
    const id = randomBytes(6).toString('hex');
    const k = path.join(dir, `${id}.key`);
    const c = path.join(dir, `${id}.crt`);
    const p = path.join(dir, `${id}.p12`);
    const newkey = keyType === 'p256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
    await run('openssl', ['req', '-x509', '-config', path.join(dir, 'client.cnf'), ...newkey, '-nodes', '-keyout', k, '-out', c, '-CA', paths.issuingCert, '-CAkey', path.join(dir, 'issuing-plain.pem'), '-days', '1095']);
    await run('openssl', ['pkcs12', '-export', '-inkey', k, '-in', c, '-certfile', paths.issuingCert, '-name', 'bench', '-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1', '-passout', `pass:${id}`, '-out', p]);
    fs.rmSync(k);
    fs.rmSync(c);
    fs.rmSync(p);
  };
  const kenshinOnce = (keyType: 'p256' | 'rsa2048') => async () => {
    await issueCertificate(deps, { tenantCode: 'T0001', keyType, profile: 'compatible', validity: { kind: 'default' }, actor: 'bench' });
  };

  const secs = args.seconds;
  const par = args.parallel;
  const results: Record<string, unknown> = { machine: machine(), parallel: par, secondsPerMeasurement: secs, date: new Date().toISOString() };

  for (const keyType of args.keys) {
    // Warm up both paths (JIT, page cache) before measuring.
    await kenshinOnce(keyType)();
    await opensslOnce(keyType)();
    // RSA key generation time is random (a prime search), so one window of a few seconds is noisy
    // (±10% between identical runs). RSA alternates Kenshin and bare key generation over several
    // rounds and compares the totals; P-256 is steady enough for one window each.
    const rounds = keyType === 'rsa2048' && !args.quick ? 3 : 1;
    let oursCount = 0;
    let oursSecs = 0;
    let bareCount = 0;
    let bareSecs = 0;
    let maxStall = 0;
    let p99Stall = 0;
    for (let r = 0; r < rounds; r++) {
      const ours = await withStallMonitor(() => throughput(par, secs, kenshinOnce(keyType)));
      oursCount += ours.result.count;
      oursSecs += ours.result.seconds;
      maxStall = Math.max(maxStall, ours.maxStallMs);
      p99Stall = Math.max(p99Stall, ours.p99StallMs);
      if (keyType === 'rsa2048') {
        const bare = await throughput(par, secs, async () => void (await generateKeyPair('rsa2048')));
        bareCount += bare.count;
        bareSecs += bare.seconds;
      }
    }
    const oursRate = oursCount / oursSecs;
    const peer = await throughput(par, secs, opensslOnce(keyType));
    const entry: Record<string, unknown> = {
      kenshinPerSecond: round(oursRate),
      opensslCliPerSecond: round(peer.perSecond),
      ratioVsOpensslCli: round(oursRate / peer.perSecond),
      maxEventLoopStallMs: round(maxStall),
      p99EventLoopStallMs: round(p99Stall),
    };
    if (keyType === 'rsa2048') {
      entry.bareKeygenPerSecond = round(bareCount / bareSecs);
      entry.ratioVsBareKeygen = round(oursRate / (bareCount / bareSecs));
      entry.rounds = rounds;
    }
    results[keyType] = entry;
    console.log(keyType, JSON.stringify(entry));
  }

  // What a user waits for after 「開始する」 on an idle server: mint in the pool + the database row.
  const latency: Record<string, unknown> = {};
  for (const keyType of args.keys) {
    const times: number[] = [];
    for (let i = 0; i < (args.quick ? 5 : 30); i++) {
      const t0 = performance.now();
      await kenshinOnce(keyType)();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    latency[keyType] = { p50Ms: round(times[Math.floor(times.length / 2)]!), maxMs: round(times[times.length - 1]!) };
  }
  results.idleIssueLatency = latency;
  console.log('idle issue latency', JSON.stringify(latency));

  await pool.close();
  await rt.close();
  const out = path.join(import.meta.dirname, 'results', `issue-${args.quick ? 'quick' : 'full'}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  console.log(`${results.machine ? (results.machine as { cores: number }).cores : '?'} cores, ${par} in flight; written ${path.relative(process.cwd(), out)}`);
}

const round = (n: number) => Math.round(n * 100) / 100;

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(dir, { recursive: true, force: true }));
