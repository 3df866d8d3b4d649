/**
 * `npm run bench`: every benchmark, each in its own process (so one's threads, sockets and heap do
 * not disturb the next), then one table. Each writes bench/results/<name>-<full|quick>.json; this
 * writes bench/results/summary-<full|quick>.json with the table's rows.
 *
 *   npm run bench [-- --quick] [--only issue,mtls,database]
 *
 * --quick is the CI smoke check: small sizes and one short round each (well under two minutes).
 * Arguments after `--` that a section does not know are passed to every section.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { machine, option, round } from './lib.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const SECTIONS = [
  { name: 'issue', file: 'issue.ts', what: 'issuance vs the openssl CLI' },
  { name: 'mtls', file: 'mtls.ts', what: 'mTLS request throughput vs nginx' },
  { name: 'database', file: 'database.ts', what: 'renewal check, CRL, expiring query and size with 1,000,000 certificates' },
  { name: 'onboard', file: 'onboard.ts', what: 'kenshin onboard on 1,000 rows (users, certificates, .p12, PDF) vs the issuance rate' },
  { name: 'storm', file: 'storm.ts', what: 'the wait after 「開始する」 in a renewal storm, with and without the key pool' },
  { name: 'crl', file: 'crl.ts', what: 'serving the CRL (100,000 and 1,000 entries) vs nginx and bare Node serving the same bytes' },
  { name: 'gateway', file: 'gateway.ts', what: 'what the gateway adds per request to an application, vs nginx proxy_pass with no auth' },
] as const;
const only = option(argv, '--only')?.split(',');
const passThrough = argv.filter((a, i) => a !== '--only' && argv[i - 1] !== '--only');

/** Cores' worth of CPU the rest of the machine is using right now (other jobs add noise). */
async function otherLoad(): Promise<number> {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { busy: f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!, total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await new Promise((r) => setTimeout(r, 1000));
    const b = read();
    return round(((b.busy - a.busy) / (b.total - a.total)) * os.availableParallelism());
  } catch {
    return NaN;
  }
}

function runSection(file: string): Promise<{ code: number; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, file), ...passThrough], { stdio: 'inherit' });
    child.on('exit', (code) => resolve({ code: code ?? 1, seconds: round((performance.now() - t0) / 1000, 1) }));
  });
}

type Json = Record<string, unknown>;
const readResult = (name: string): Json | undefined => {
  const f = path.join(import.meta.dirname, 'results', `${name}-${quick ? 'quick' : 'full'}.json`);
  return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as Json) : undefined;
};
const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Json)[k] : undefined), o);
const num = (v: unknown, digits = 2) => (typeof v === 'number' && Number.isFinite(v) ? String(round(v, digits)) : '—');

interface Row {
  figure: string;
  kenshin: string;
  peer: string;
  ratio: string;
  target: string;
  met: boolean | null;
}

function rows(startedAt: number): Row[] {
  const out: Row[] = [];
  const fresh = (r: Json | undefined) => (r && new Date(String(r.date)).getTime() >= startedAt ? r : undefined);
  const issue = fresh(readResult('issue'));
  if (issue) {
    const p = at(issue, 'p256') as Json | undefined;
    const r = at(issue, 'rsa2048') as Json | undefined;
    if (p) out.push({ figure: 'P-256 issuance', kenshin: `${num(p.kenshinPerSecond, 1)} /s`, peer: `openssl CLI ${num(p.opensslCliPerSecond, 1)} /s`, ratio: `${num(p.ratioVsOpensslCli)}×`, target: '≥ 3×', met: Number(p.ratioVsOpensslCli) >= 3 });
    if (r) out.push({ figure: 'RSA-2048 issuance', kenshin: `${num(r.kenshinPerSecond, 1)} /s`, peer: `bare key generation ${num(r.bareKeygenPerSecond, 1)} /s`, ratio: `${num(r.ratioVsBareKeygen)}×`, target: '≥ 0.9×', met: Number(r.ratioVsBareKeygen) >= 0.9 });
    const lat = at(issue, 'idleIssueLatency') as Json | undefined;
    if (lat) out.push({ figure: 'wait after 「開始する」 (idle, p50)', kenshin: `P-256 ${num(at(lat, 'p256', 'p50Ms'), 0)} ms, RSA-2048 ${num(at(lat, 'rsa2048', 'p50Ms'), 0)} ms`, peer: '', ratio: '', target: '< 1 s', met: Number(at(lat, 'rsa2048', 'p50Ms') ?? at(lat, 'p256', 'p50Ms')) < 1000 });
  }
  const mtls = fresh(readResult('mtls'));
  if (mtls) {
    const res = at(mtls, 'results') as Json;
    for (const [mode, label, target] of [
      ['keepalive', 'keep-alive', 0.5],
      ['handshake', 'new TLS handshake per request', 0.9],
    ] as const) {
      const n = Number(at(res, 'nginx', mode, 'requestsPerSecond'));
      for (const who of ['kenshin', 'behind-nginx'] as const) {
        const k = at(res, who, mode, 'requestsPerSecond');
        if (typeof k !== 'number') continue;
        const ratio = k / n;
        const bare = at(res, 'bare-node', mode, 'requestsPerSecond');
        out.push({ figure: `mTLS API request, ${label}${who === 'behind-nginx' ? ', Kenshin behind nginx' : ''}`, kenshin: `${num(k, 0)} req/s${who === 'kenshin' && typeof bare === 'number' ? ` (bare Node https ${num(bare, 0)} = ${num(bare / n)}×)` : ''}`, peer: `nginx static file ${num(n, 0)} req/s`, ratio: `${num(ratio)}×`, target: `≥ ${target}×`, met: ratio >= target });
      }
    }
  }
  const db = fresh(readResult('database'));
  if (db) {
    const certificates = Number(at(db, 'sizes', 'certificates')).toLocaleString('en');
    const revoked = Number(at(db, 'sizes', 'revoked')).toLocaleString('en');
    for (const [dialect, r] of Object.entries((at(db, 'results') as Json) ?? {})) {
      const d = dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      const check = at(r, 'renewalCheck') as Json;
      out.push({ figure: `renewal check at login, ${certificates} certificates (${d})`, kenshin: `p50 ${num(check.p50Ms)} ms, p99 ${num(check.p99Ms)} ms`, peer: '', ratio: '', target: 'p99 < 10 ms', met: Boolean(check.met) });
      const crl = at(r, 'crl') as Json;
      out.push({
        figure: `CRL with ${revoked} revoked (${d})`,
        kenshin: `${num(at(crl, 'kenshin', 'seconds'))} s`,
        peer: `openssl ca -gencrl ${num(at(crl, 'opensslCaGencrl', 'revokedOnly', 'seconds'))} s`,
        ratio: `${num(Number(at(crl, 'opensslCaGencrl', 'revokedOnly', 'seconds')) / Number(at(crl, 'kenshin', 'seconds')))}×`,
        target: '< 3 s',
        met: Boolean(at(crl, 'kenshin', 'met')),
      });
      const exp = at(r, 'expiringWithin90Days') as Json;
      out.push({ figure: `"expiring within 90 days" (${d}, ${Number(exp.rows).toLocaleString('en')} rows)`, kenshin: `${num(exp.medianMs, 0)} ms`, peer: '', ratio: '', target: '< 100 ms', met: Boolean(exp.met) });
      out.push({ figure: `operator dashboard /admin (${d})`, kenshin: `${num(exp.dashboardMs, 0)} ms`, peer: '', ratio: '', target: '< 100 ms', met: Boolean(exp.dashboardMet) });
      out.push({ figure: `database size (${d})`, kenshin: `${num(at(r, 'databaseSize', 'megabytes'), 0)} MB`, peer: '', ratio: '', target: '—', met: null });
    }
  }
  const ob = fresh(readResult('onboard'));
  if (ob) {
    for (const [k, label] of [['p256', 'P-256'], ['rsa2048', 'RSA-2048']] as const) {
      const e = at(ob, k) as Json | undefined;
      if (!e) continue;
      const st = (at(e, 'steps') ?? {}) as Json;
      out.push({
        figure: `onboard ${num(ob.rows, 0)} rows, ${label} (${num(e.users, 0)} users, ${num(e.pages, 0)}-page PDF)`,
        kenshin: `${num(e.rowsPerSecond, 1)} rows/s (users ${num(st.users, 1)} s, certificates ${num(st.certificates, 1)} s, PDF ${num(st.pdf, 1)} s)`,
        peer: `issuance ${num(e.issuancePerSecond, 1)} /s`,
        ratio: `${num(e.ratioVsIssuance)}×`,
        target: '≥ 0.8×',
        met: Boolean(e.met),
      });
    }
  }
  const storm = fresh(readResult('storm'));
  if (storm) {
    const w = at(storm, 'without') as Json;
    const p = at(storm, 'withPool') as Json;
    out.push({
      figure: `renewal storm: ${num(storm.renewals, 0)} RSA renewals over ${num(storm.seconds, 0)} s, wait after 「開始する」`,
      kenshin: `key pool: p50 ${num(p.p50Ms, 0)} ms, p99 ${num(p.p99Ms, 0)} ms`,
      peer: `no pool: p50 ${num(w.p50Ms, 0)} ms, p99 ${num(w.p99Ms, 0)} ms`,
      ratio: '',
      target: 'p99 < 3 s',
      met: Boolean(storm.met),
    });
  }
  const crl = fresh(readResult('crl'));
  for (const size of (crl && (at(crl, 'sizes') as Json[] | undefined)) ?? []) {
    const med = (who: string, key: string) => {
      const xs = ((at(size, 'results', who) as Json[] | undefined) ?? []).map((r) => Number(r[key])).sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)];
    };
    out.push({
      figure: `serving the CRL (${num(Number(size.revoked), 0)} entries, ${num(Number(size.crlBytes) / 1e6, 2)} MB), kept-alive TLS`,
      kenshin: `${num(med('kenshin', 'requestsPerSecond'), 0)} req/s, ${num(med('kenshin', 'serverCpuMsPerRequest'), 3)} ms CPU/req (bare Node https ${num(med('bareNode', 'requestsPerSecond'), 0)} req/s, ${num(med('bareNode', 'serverCpuMsPerRequest'), 3)} ms)`,
      peer: `nginx static file ${num(med('nginx', 'requestsPerSecond'), 0)} req/s, ${num(med('nginx', 'serverCpuMsPerRequest'), 3)} ms CPU/req`,
      ratio: `${num(size.ratio)}× (CPU ${num(size.cpuRatio)}×)`,
      target: '≥ 0.5×',
      met: Boolean(size.met),
    });
  }
  const gw = fresh(readResult('gateway'));
  if (gw) {
    const res = at(gw, 'results') as Json;
    const plainRps = at(res, 'plain', 'requestsPerSecond');
    const plainP50 = at(res, 'plain', 'oneConnection', 'p50Ms');
    for (const [who, label, summary] of [
      ['gateway', 'gateway: nginx auth_request → Kenshin (deploy/nginx-gateway.conf)', at(gw, 'gateway')],
      ['built-in', "gateway: Kenshin's built-in proxy (KENSHIN_UPSTREAM_URL)", at(gw, 'builtIn')],
    ] as const) {
      const ratio = Number(at(summary, 'throughputRatio'));
      const added = Number(at(summary, 'addedP50Ms'));
      out.push({
        figure: `${label}, requests to the application`,
        kenshin: `${num(at(res, who, 'requestsPerSecond'), 0)} req/s, p50 ${num(at(res, who, 'oneConnection', 'p50Ms'), 3)} ms (+${num(added, 3)} ms)${who === 'gateway' && at(gw, 'authFloor') ? ` (auth_request answered by nginx itself: ${num(at(res, 'auth-floor', 'requestsPerSecond'), 0)} req/s = ${num(at(gw, 'authFloor', 'throughputRatio'))}×)` : ''}`,
        peer: `nginx proxy_pass, no auth ${num(plainRps, 0)} req/s, p50 ${num(plainP50, 3)} ms`,
        ratio: `${num(ratio)}×`,
        target: '≥ 0.5×, < 1 ms added at p50',
        met: ratio >= 0.5 && added < 1,
      });
    }
  }
  return out;
}

/** Columns on a terminal: CJK characters (「開始する」) take two. */
const width = (s: string) => [...s].reduce((n, ch) => n + (/[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 2 : 1), 0);

function table(rs: Row[]): string {
  const head = ['figure', 'Kenshin', 'peer in the same run', 'ratio', 'target', ''];
  const cells = rs.map((r) => [r.figure, r.kenshin, r.peer, r.ratio, r.target, r.met === null ? '' : r.met ? 'met' : 'MISSED']);
  const widths = head.map((h, i) => Math.max(width(h), ...cells.map((c) => width(c[i]!))));
  const line = (c: string[]) => c.map((x, i) => x + ' '.repeat(widths[i]! - width(x))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

async function main() {
  const startedAt = Date.now();
  const load = await otherLoad();
  const cores = os.availableParallelism();
  console.log(`Kenshin benchmarks (${quick ? 'quick smoke run' : 'full run'}) on ${cores} cores; other load right now: ${load} cores${load > 0.25 ? ' — figures will be noisy' : ''}`);
  const sections: Json = {};
  let failed = 0;
  for (const s of SECTIONS) {
    if (only && !only.includes(s.name)) continue;
    console.log(`\n== ${s.name}: ${s.what}`);
    const r = await runSection(s.file);
    sections[s.name] = r;
    if (r.code !== 0) {
      failed++;
      console.error(`${s.name} failed (exit ${r.code})`);
    }
  }
  const rs = rows(startedAt);
  console.log(`\n${table(rs)}\n`);
  const out = path.join(import.meta.dirname, 'results', `summary-${quick ? 'quick' : 'full'}.json`);
  fs.writeFileSync(out, JSON.stringify({ machine: machine(), date: new Date(startedAt).toISOString(), quick, otherLoadAtStartCores: load, loadAverageAtEnd: os.loadavg().map((x) => round(x)), sections, rows: rs }, null, 2) + '\n');
  console.log(`written ${path.relative(process.cwd(), out)}${quick ? ' (quick mode: small sizes, figures are a smoke check only)' : ''}`);
  if (failed) process.exitCode = 1;
}

void main();
