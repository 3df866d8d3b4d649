import fs from 'node:fs';
import net from 'node:net';
import { sql } from 'kysely';
import { loadConfig, dataPaths, SETTINGS, SECRET_SETTINGS, settingsEnv, type Config } from '../config.js';
import { isInitialised, loadIssuingAuthority } from '../ca/hierarchy.js';
import { openDatabase, MIGRATIONS, type Db } from '../db/database.js';
import { x509 } from '../ca/x509.js';
import { splitPemCertificates } from '../web/tls.js';
import { DAY_MS } from '../clock.js';
import { exposedRefusal, looseEntries } from '../private-files.js';
import { readPackageKey } from '../renewal/package-vault.js';

/**
 * `kenshin config check`: everything `serve` would trip over, found before it starts — each finding
 * names the setting (or file) and says what is wrong. Errors stop a start; warnings are the
 * production footguns that still work (plain HTTP on a public address, no public URL behind a proxy).
 */
/**
 * Proxy mode on TCP loopback: every local process (any local user, or an SSRF in another service)
 * can send the certificate header, and a clinic's certificate is public, so it can fetch that
 * clinic's renewal package. The unix socket's file mode limits who can.
 */
export const PROXY_TCP_WARNING = 'proxy mode on TCP: any local process can send the certificate header as a trusted proxy; use a unix socket (KENSHIN_LISTEN=unix:/run/kenshin/kenshin.sock)';

export type Severity = 'ok' | 'warn' | 'error';
export interface Finding {
  severity: Severity;
  subject: string;
  message: string;
}

type Env = Record<string, string | undefined>;

export interface CheckReport {
  findings: Finding[];
  /** Effective settings (secrets shown as "(set)"), with where each came from. */
  settings: { key: string; value: string; source: 'file' | 'environment' | 'default' }[];
  ok: boolean;
}

function effectiveSettings(env: Env): CheckReport['settings'] {
  const merged = settingsEnv(env);
  const fromFile = env.KENSHIN_CONFIG ? new Set(Object.keys(merged).filter((k) => env[k] === undefined)) : new Set<string>();
  return SETTINGS.filter((k) => merged[k] !== undefined && merged[k] !== '').map((k) => ({
    key: k,
    value: SECRET_SETTINGS.has(k) ? '(set)' : merged[k]!,
    source: fromFile.has(k) ? ('file' as const) : ('environment' as const),
  }));
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

function certificateExpiry(pem: string, subject: string, now: Date, out: Finding[]): void {
  const first = splitPemCertificates(pem)[0];
  if (!first) return;
  const cert = new x509.X509Certificate(first);
  const days = Math.floor((cert.notAfter.getTime() - now.getTime()) / DAY_MS);
  if (days < 0) out.push({ severity: 'error', subject, message: `the server certificate expired on ${cert.notAfter.toISOString().slice(0, 10)}` });
  else if (days < 30) out.push({ severity: 'warn', subject, message: `the server certificate expires in ${days} days (${cert.notAfter.toISOString().slice(0, 10)}); renew it and send SIGHUP` });
  else out.push({ severity: 'ok', subject, message: `server certificate ${cert.subject}, valid until ${cert.notAfter.toISOString().slice(0, 10)}` });
}

export async function checkConfiguration(env: Env, overrides: Partial<Config> = {}, now = new Date()): Promise<CheckReport> {
  const findings: Finding[] = [];
  const unknownEnv = Object.keys(env).filter((k) => k.startsWith('KENSHIN_') && !(SETTINGS as readonly string[]).includes(k) && !['KENSHIN_CONFIG', 'KENSHIN_DEBUG', 'KENSHIN_SERVE_ROLE'].includes(k) && !k.startsWith('KENSHIN_TEST_') && !k.startsWith('KENSHIN_BENCH_'));
  for (const k of unknownEnv) findings.push({ severity: 'warn', subject: k, message: 'not a Kenshin setting (typo?); it is ignored' });

  let config: Config;
  try {
    config = loadConfig(overrides, env);
  } catch (e) {
    const field = (e as { field?: string }).field;
    findings.push({ severity: 'error', subject: field ?? 'settings', message: (e as Error).message });
    return { findings, settings: [], ok: false };
  }
  const settings = effectiveSettings(env);
  findings.push({ severity: 'ok', subject: 'settings', message: `${settings.length} set${config.configFile ? ` (file ${config.configFile} + environment)` : ' (environment)'}, the rest default` });

  // The CA: present, and its key opens with the configured passphrase.
  const paths = dataPaths(config.dataDir);
  if (!isInitialised(paths)) {
    findings.push({ severity: 'error', subject: 'KENSHIN_DATA_DIR', message: `no CA in ${config.dataDir}: run \`kenshin init\` (or restore a backup) first` });
  } else {
    try {
      const authority = await loadIssuingAuthority(paths, config.caPassphrase, config.crlUrl);
      findings.push({ severity: 'ok', subject: 'CA', message: `issuing CA ${authority.issuing.subject} loads, valid until ${authority.issuing.notAfter.toISOString().slice(0, 10)}` });
    } catch (e) {
      findings.push({ severity: 'error', subject: 'KENSHIN_CA_PASSPHRASE', message: `the issuing CA key does not open: ${(e as Error).message}` });
    }
  }

  // The package key, with serve's own loader (a missing file is generated at the first start).
  try {
    const key = readPackageKey(config.packageKey, paths.packageKeyFile);
    findings.push({ severity: 'ok', subject: 'package key', message: key ? (config.packageKey ? 'KENSHIN_PACKAGE_KEY, 32 bytes' : `${paths.packageKeyFile}, 32 bytes`) : `${paths.packageKeyFile} is generated at the first start` });
  } catch (e) {
    findings.push({ severity: 'error', subject: (e as { field?: string }).field ?? 'KENSHIN_PACKAGE_KEY', message: (e as Error).message });
  }

  // Nobody but the service account may read the data directory: serve refuses otherwise.
  const loose = looseEntries(paths.dataDir);
  if (loose.length) findings.push({ severity: 'error', subject: 'KENSHIN_DATA_DIR', message: exposedRefusal(paths.dataDir, loose[0]!, loose.length - 1).message });

  // The database: reachable, and how far migrated (serve migrates the rest at start).
  if (config.databaseUrl || fs.existsSync(paths.sqliteFile)) {
    const database = (() => {
      try {
        return openDatabase({ url: config.databaseUrl, sqliteFile: paths.sqliteFile });
      } catch (e) {
        findings.push({ severity: 'error', subject: config.databaseUrl ? 'KENSHIN_DATABASE_URL' : paths.sqliteFile, message: (e as Error).message });
        return undefined;
      }
    })();
    if (database) {
      try {
        await sql`select 1`.execute(database.db);
        const applied = await sql<{ n: number }>`select count(*) as n from kysely_migration`.execute(database.db).then((r) => Number(r.rows[0]?.n ?? 0), () => 0);
        const total = Object.keys(MIGRATIONS).length;
        findings.push({ severity: 'ok', subject: config.databaseUrl ? 'KENSHIN_DATABASE_URL' : 'database', message: `${database.dialect} reachable; ${applied} of ${total} migrations applied${applied < total ? ' (serve applies the rest at start)' : ''}` });
        if (database.dialect === 'postgres') findings.push(await connectionBudget(database.db, config));
      } catch (e) {
        findings.push({ severity: 'error', subject: config.databaseUrl ? 'KENSHIN_DATABASE_URL' : 'database', message: `cannot query the database: ${(e as Error).message}` });
      } finally {
        await database.close();
      }
    }
  } else {
    findings.push({ severity: 'error', subject: 'database', message: `no database at ${paths.sqliteFile}: run \`kenshin init\` first` });
  }

  // The listener.
  if (config.mode === 'direct') {
    if (config.tlsCertFile && config.tlsKeyFile) {
      try {
        const cert = fs.readFileSync(config.tlsCertFile, 'utf8');
        const key = fs.readFileSync(config.tlsKeyFile, 'utf8');
        (await import('node:tls')).createSecureContext({ cert, key });
        certificateExpiry(cert, 'KENSHIN_TLS_CERT', now, findings);
      } catch (e) {
        findings.push({ severity: 'error', subject: 'KENSHIN_TLS_CERT', message: `cannot use ${config.tlsCertFile} with ${config.tlsKeyFile}: ${(e as Error).message}` });
      }
    } else {
      findings.push({ severity: 'ok', subject: 'KENSHIN_TLS_CERT', message: `unset: serving the generated certificate for ${config.serverNames.join(', ')} (browsers must trust our root; production usually sets a public one)` });
    }
    if (config.clientCaFile) {
      const n = fs.existsSync(config.clientCaFile) ? splitPemCertificates(fs.readFileSync(config.clientCaFile, 'utf8')).length : 0;
      findings.push(n > 0 ? { severity: 'ok', subject: 'KENSHIN_CLIENT_CA_FILE', message: `${n} CA certificate(s) named in the client-certificate request` } : { severity: 'error', subject: 'KENSHIN_CLIENT_CA_FILE', message: `${config.clientCaFile} is missing or holds no PEM certificate` });
    }
  } else {
    const where = 'socket' in config.listen ? `unix socket ${config.listen.socket}` : `${config.listen.host}:${config.listen.port}`;
    if ('host' in config.listen && !isLoopback(config.listen.host)) {
      findings.push({ severity: 'warn', subject: 'KENSHIN_LISTEN', message: `proxy mode speaks plain HTTP on ${where}, not a loopback address: make sure only the proxy can reach it` });
    } else if ('host' in config.listen) {
      findings.push({ severity: 'warn', subject: 'KENSHIN_LISTEN', message: `${PROXY_TCP_WARNING} (${where})` });
    } else {
      findings.push({ severity: 'ok', subject: 'KENSHIN_LISTEN', message: `proxy mode, plain HTTP on ${where}` });
    }
    findings.push({ severity: 'ok', subject: 'KENSHIN_TRUSTED_PROXIES', message: `the ${config.proxyCertHeader} header is believed only from ${config.trustedProxies.join(', ')}` });
    if (!settingsEnv(env).KENSHIN_PUBLIC_URL) findings.push({ severity: 'warn', subject: 'KENSHIN_PUBLIC_URL', message: 'unset: reminder mails would link to https://localhost/; set the portal URL the clinics use' });
  }
  if (config.mode === 'direct' && !settingsEnv(env).KENSHIN_PUBLIC_URL && 'host' in config.listen && !isLoopback(config.listen.host)) {
    findings.push({ severity: 'warn', subject: 'KENSHIN_PUBLIC_URL', message: `unset while listening on ${config.listen.host}: absolute links (the API's package uri, reminder mails) use ${config.publicUrl} or a Host naming ${config.serverNames.join(', ')}; set the portal URL the clinics use` });
  }
  if (config.upstreamUrl) {
    findings.push({ severity: 'ok', subject: 'KENSHIN_UPSTREAM_URL', message: `fronting the application at ${config.upstreamUrl} (assertion aud ${config.gatewayAudience})` });
    // The application checks `iss` against a fixed string: a guessed URL would change with the listener.
    if (!settingsEnv(env).KENSHIN_PUBLIC_URL) findings.push({ severity: 'warn', subject: 'KENSHIN_PUBLIC_URL', message: `unset while fronting an application: X-Kenshin-Assertion's iss is the guess ${config.publicUrl}; set the site's URL the application checks` });
  }
  if (!config.smtpUrl) findings.push({ severity: 'warn', subject: 'KENSHIN_SMTP_URL', message: 'unset: no expiry reminder mails are sent' });
  if (!config.crlUrl) findings.push({ severity: 'warn', subject: 'KENSHIN_CRL_URL', message: 'unset: new certificates carry no CRL distribution point' });

  return { findings, settings, ok: !findings.some((f) => f.severity === 'error') };
}

/**
 * Every serve process opens up to KENSHIN_DB_POOL connections: past PostgreSQL's max_connections
 * (less the superuser reserve) requests fail with "too many clients" under load, not at start.
 */
async function connectionBudget(db: Db, config: Config): Promise<Finding> {
  const setting = async (name: string) => Number((await sql<{ setting: string }>`select setting from pg_settings where name = ${name}`.execute(db)).rows[0]?.setting ?? 0);
  // reserved_connections: PostgreSQL 16 and later (0 where it does not exist).
  const max = (await setting('max_connections')) - (await setting('superuser_reserved_connections')) - (await setting('reserved_connections'));
  const total = config.processes * config.dbPool;
  const message = `${config.processes} serve process(es) × KENSHIN_DB_POOL ${config.dbPool} = up to ${total} connections; the server takes ${max} (max_connections less the reserved ones)`;
  if (total > max) return { severity: 'error', subject: 'KENSHIN_DB_POOL', message: `${message}: lower KENSHIN_DB_POOL or KENSHIN_PROCESSES, or raise max_connections` };
  if (total * 2 > max) return { severity: 'warn', subject: 'KENSHIN_DB_POOL', message: `${message}: a second instance like this one would not fit` };
  return { severity: 'ok', subject: 'KENSHIN_DB_POOL', message };
}
