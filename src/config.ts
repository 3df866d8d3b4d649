import os from 'node:os';
import path from 'node:path';
import { invalidInput } from './errors.js';

export type KeyType = 'rsa2048' | 'p256';
export type CaKeyType = 'p256' | 'p384' | 'rsa3072';
export type Pkcs12ProfileName = 'compatible' | 'modern';

/**
 * Every setting, its default and its validation, in one place. Values come from (highest first)
 * explicit overrides (CLI flags), then KENSHIN_* environment variables, then the defaults below.
 */
export interface Config {
  /** Where the CA, the server certificate, the SQLite file and the demo files live. */
  dataDir: string;
  /** postgres://… selects PostgreSQL; otherwise the embedded SQLite file in dataDir. */
  databaseUrl: string | undefined;
  /** HOST:PORT of the HTTPS listener. */
  listen: { host: string; port: number };
  /** Validity of client certificates, in calendar years. The seed service uses 3. */
  certValidityYears: number;
  /** notBefore is set this far in the past so a PC whose clock runs slow still accepts a fresh certificate. */
  backdateMinutes: number;
  defaultKeyType: KeyType;
  caKeyType: CaKeyType;
  defaultPkcs12Profile: Pkcs12ProfileName;
  /** Put into the CRL distribution point of new certificates when set. */
  crlUrl: string | undefined;
  /** DNS names / IPs the generated server certificate covers. */
  serverNames: string[];
  /** Passphrase for the CA keys; when unset, a generated one is kept in dataDir/secrets/ca-passphrase (0600). */
  caPassphrase: string | undefined;
  /** Renewal opens this many days before expiry (the seed service: 90). */
  renewalWindowDays: number;
  /** How long a renewal package (.p12 + password) can be downloaded again, in days. */
  packageDays: number;
  /** Base64 of 32 bytes sealing renewal packages; when unset, a generated key in dataDir/secrets/package-key. */
  packageKey: string | undefined;
  /** Shown on refusal pages (expired certificate: "ask the operator"). */
  operatorContact: string;
  /** A session ends after this many minutes without a request. */
  sessionIdleMinutes: number;
  /** Worker threads that mint certificates in `serve` (0: mint on the main thread). */
  mintWorkers: number;
  /** Days before expiry at which the tenant's contact is mailed (Japanese medical PKI practice). */
  reminderDays: number[];
  /** smtp://user:pass@host:587 (STARTTLS when offered) or smtps://… (TLS); unset: no mail is sent. */
  smtpUrl: string | undefined;
  mailFrom: string;
  /** Escalation address: certificates that expired without a successor. */
  operatorEmail: string | undefined;
  /** The portal URL written into reminder mails. */
  publicUrl: string;
  /** Plain-HTTP loopback listener for Prometheus' /metrics, apart from the client-certificate port; undefined = off. */
  metricsListen: { host: string; port: number } | undefined;
  /** pino level of the JSON request log on stdout ('silent' turns it off). */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
}

export type ConfigOverrides = Partial<Config>;

type Env = Record<string, string | undefined>;

export function parseListen(value: string, field = 'listen'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) throw invalidInput(field, `expected HOST:PORT, got "${value}"`);
  const port = Number(m[3]);
  if (port > 65535) throw invalidInput(field, `port ${port} is out of range (0-65535)`);
  return { host: (m[1] ?? m[2])!, port };
}

function intSetting(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw invalidInput(name, `expected a whole number from ${min} to ${max}, got "${raw}"`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], def: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!(allowed as readonly string[]).includes(raw)) throw invalidInput(name, `expected one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

function parseDays(raw: string): number[] {
  const days = raw.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (days.length === 0 || days.some((d) => !Number.isInteger(d) || d < 1 || d > 365)) {
    throw invalidInput('KENSHIN_REMINDER_DAYS', `expected comma-separated whole days from 1 to 365, got "${raw}"`);
  }
  return [...new Set(days)].sort((a, b) => b - a);
}

export function loadConfig(overrides: ConfigOverrides = {}, env: Env = process.env): Config {
  const dataDir = path.resolve(overrides.dataDir ?? env.KENSHIN_DATA_DIR ?? './data');
  const base: Config = {
    dataDir,
    databaseUrl: env.KENSHIN_DATABASE_URL || undefined,
    listen: parseListen(env.KENSHIN_LISTEN ?? '127.0.0.1:8443', 'KENSHIN_LISTEN'),
    certValidityYears: intSetting(env, 'KENSHIN_CERT_VALIDITY_YEARS', 3, 1, 10),
    backdateMinutes: intSetting(env, 'KENSHIN_BACKDATE_MINUTES', 5, 0, 1440),
    defaultKeyType: oneOf(env, 'KENSHIN_KEY_TYPE', ['rsa2048', 'p256'] as const, 'rsa2048'),
    caKeyType: oneOf(env, 'KENSHIN_CA_KEY_TYPE', ['p256', 'p384', 'rsa3072'] as const, 'p256'),
    defaultPkcs12Profile: oneOf(env, 'KENSHIN_PKCS12_PROFILE', ['compatible', 'modern'] as const, 'compatible'),
    crlUrl: env.KENSHIN_CRL_URL || undefined,
    serverNames: (env.KENSHIN_SERVER_NAMES ?? 'localhost,127.0.0.1')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    caPassphrase: env.KENSHIN_CA_PASSPHRASE || undefined,
    renewalWindowDays: intSetting(env, 'KENSHIN_RENEWAL_WINDOW_DAYS', 90, 1, 365),
    packageDays: intSetting(env, 'KENSHIN_PACKAGE_DAYS', 7, 1, 90),
    packageKey: env.KENSHIN_PACKAGE_KEY || undefined,
    operatorContact: env.KENSHIN_OPERATOR_CONTACT ?? 'Kenshin Cloud サポート窓口 / support (configure KENSHIN_OPERATOR_CONTACT)',
    sessionIdleMinutes: intSetting(env, 'KENSHIN_SESSION_IDLE_MINUTES', 30, 1, 1440),
    mintWorkers: intSetting(env, 'KENSHIN_MINT_WORKERS', Math.min(4, os.availableParallelism()), 0, 64),
    reminderDays: parseDays(env.KENSHIN_REMINDER_DAYS ?? '90,60,30,15,7,3,1'),
    smtpUrl: env.KENSHIN_SMTP_URL || undefined,
    mailFrom: env.KENSHIN_MAIL_FROM ?? 'Kenshin Cloud <no-reply@kenshin.invalid>',
    operatorEmail: env.KENSHIN_OPERATOR_EMAIL || undefined,
    publicUrl: env.KENSHIN_PUBLIC_URL ?? `https://${env.KENSHIN_LISTEN ?? '127.0.0.1:8443'}/`,
    metricsListen: env.KENSHIN_METRICS_LISTEN === 'off' ? undefined : parseListen(env.KENSHIN_METRICS_LISTEN ?? '127.0.0.1:9464', 'KENSHIN_METRICS_LISTEN'),
    logLevel: oneOf(env, 'KENSHIN_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const, 'info'),
  };
  const merged: Config = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
  }
  merged.dataDir = dataDir;
  if (merged.crlUrl !== undefined && !/^https?:\/\//.test(merged.crlUrl)) {
    throw invalidInput('KENSHIN_CRL_URL', `expected an http(s) URL, got "${merged.crlUrl}"`);
  }
  if (merged.smtpUrl !== undefined && !/^smtps?:\/\//.test(merged.smtpUrl)) {
    throw invalidInput('KENSHIN_SMTP_URL', 'expected smtp://user:pass@host:port or smtps://…');
  }
  if (merged.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(merged.databaseUrl)) {
    throw invalidInput('KENSHIN_DATABASE_URL', 'expected a postgres:// URL (leave it unset for the embedded SQLite database)');
  }
  return merged;
}

/** Where things live inside the data directory. One place, so nobody hard-codes a path twice. */
export function dataPaths(dataDir: string) {
  const ca = path.join(dataDir, 'ca');
  return {
    dataDir,
    caDir: ca,
    rootCert: path.join(ca, 'root.crt'),
    rootKey: path.join(ca, 'root.key'),
    issuingCert: path.join(ca, 'issuing.crt'),
    issuingKey: path.join(ca, 'issuing.key'),
    secretsDir: path.join(dataDir, 'secrets'),
    caPassphraseFile: path.join(dataDir, 'secrets', 'ca-passphrase'),
    packageKeyFile: path.join(dataDir, 'secrets', 'package-key'),
    serverDir: path.join(dataDir, 'server'),
    serverCert: path.join(dataDir, 'server', 'server.crt'),
    serverKey: path.join(dataDir, 'server', 'server.key'),
    sqliteFile: path.join(dataDir, 'kenshin.sqlite'),
    demoDir: path.join(dataDir, 'demo'),
  };
}
export type DataPaths = ReturnType<typeof dataPaths>;
