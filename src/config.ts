import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { invalidInput } from './errors.js';
import { readConfigFile } from './config-file.js';

export type KeyType = 'rsa2048' | 'p256';
export type CaKeyType = 'p256' | 'p384' | 'rsa3072';
export type Pkcs12ProfileName = 'compatible' | 'modern';
/** Timeouts and caps of the listener, so a slow client costs bounded resources (web/limits.ts). */
export interface ConnectionLimits {
  /** The whole request, headers and body, must arrive within this (KENSHIN_REQUEST_TIMEOUT_SECONDS). */
  requestTimeoutSeconds: number;
  /** The headers must arrive within this (KENSHIN_HEADERS_TIMEOUT_SECONDS). */
  headersTimeoutSeconds: number;
  /** An idle keep-alive connection between requests is closed after this (KENSHIN_KEEPALIVE_TIMEOUT_SECONDS). */
  keepAliveTimeoutSeconds: number;
  /** A connection with no traffic either way is closed after this, TLS handshake included (KENSHIN_IDLE_TIMEOUT_SECONDS). */
  idleTimeoutSeconds: number;
  /** Open connections at most (KENSHIN_MAX_CONNECTIONS). */
  maxConnections: number;
  /** Direct mode: open connections from one address at most, 0 = no cap (KENSHIN_MAX_CONNECTIONS_PER_ADDRESS). */
  maxConnectionsPerAddress: number;
}

/** A TCP address, or a unix socket (proxy mode: nginx on the same machine). */
export type ListenAddress = { host: string; port: number } | { socket: string };
/**
 * direct: Kenshin terminates TLS and reads the client certificate from the handshake.
 * proxy: a reverse proxy terminates TLS; Kenshin speaks plain HTTP and reads the certificate from a
 * header, believed only from the configured proxy addresses.
 */
export type ServeMode = 'direct' | 'proxy';

/**
 * Every setting, its default and its validation, in one place. Values come from (highest first)
 * explicit overrides (CLI flags), then KENSHIN_* environment variables, then the defaults below.
 */
export interface Config {
  /** Where the CA, the server certificate, the SQLite file and the demo files live. */
  dataDir: string;
  /** postgres://… selects PostgreSQL; otherwise the embedded SQLite file in dataDir. */
  databaseUrl: string | undefined;
  /** The config file the settings were read from (KENSHIN_CONFIG / --config), if any. */
  configFile: string | undefined;
  /** HOST:PORT (or unix:/path in proxy mode) of the listener. */
  listen: ListenAddress;
  mode: ServeMode;
  /** Proxy mode: addresses / CIDRs whose certificate header is believed. Anyone else's is ignored. */
  trustedProxies: string[];
  /** Proxy mode: the request header carrying the URL-escaped PEM (nginx $ssl_client_escaped_cert). */
  proxyCertHeader: string;
  /** Direct mode: the server certificate chain + key (PEM files, e.g. from a public CA); unset = generated from our CA. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** PEM bundle of the CAs named in the client-certificate request; unset = our root + issuing CAs. */
  clientCaFile: string | undefined;
  /** On SIGTERM, requests in flight get this long to finish before connections are cut. */
  shutdownGraceSeconds: number;
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
  /** A session ends this many hours after login, however active (KENSHIN_SESSION_MAX_HOURS). */
  sessionMaxHours: number;
  /** `kenshin serve` processes sharing the listener (node:cluster); 1 = no cluster (web/processes.ts). */
  processes: number;
  /**
   * PostgreSQL connections each `serve` process may open (KENSHIN_DB_POOL). The default keeps the
   * whole service at the 10 one process had before (at least 2 each): processes × pool
   * must fit in the server's max_connections beside other instances (`kenshin config check`).
   */
  dbPool: number;
  /** Worker threads that mint certificates in each `serve` process (0: mint on the main thread). */
  mintWorkers: number;
  /** RSA-2048 key pairs each mint worker makes ahead while idle, for renewal storms (ca/key-pool.ts). */
  keyPoolSize: number;
  /** What a slow or idle client may hold (web/limits.ts). */
  limits: ConnectionLimits;
  /** Days before expiry at which the tenant's contact is mailed (Japanese medical PKI practice). */
  reminderDays: number[];
  /** smtp://user:pass@host:587 (STARTTLS when offered) or smtps://… (TLS); unset: no mail is sent. */
  smtpUrl: string | undefined;
  mailFrom: string;
  /** Escalation address: certificates that expired without a successor. */
  operatorEmail: string | undefined;
  /** The portal URL written into reminder mails. */
  publicUrl: string;
  /** `aud` of X-Kenshin-Assertion: what the application behind the gateway checks it was meant for. */
  gatewayAudience: string;
  /**
   * Direct mode: the application Kenshin fronts itself (gateway/built-in-proxy.ts), e.g.
   * http://127.0.0.1:3000; every path that is not Kenshin's goes there once the session allows it.
   */
  upstreamUrl: string | undefined;
  /** Whether KENSHIN_PUBLIC_URL was set (else publicUrl is a guess from the listener). */
  publicUrlConfigured: boolean;
  /** Plain-HTTP loopback listener for Prometheus' /metrics, apart from the client-certificate port; undefined = off. */
  metricsListen: { host: string; port: number } | undefined;
  /** pino level of the JSON request log on stdout ('silent' turns it off). */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
  /** `auto`: readable lines on a terminal, JSON otherwise (a journal, a file, a log shipper). */
  logFormat: 'auto' | 'json' | 'pretty';
}

export type ConfigOverrides = Partial<Config>;

type Env = Record<string, string | undefined>;

/** Every setting a config file or the environment may carry; anything else in a file is a typo. */
export const SETTINGS = [
  'KENSHIN_DATA_DIR',
  'KENSHIN_DATABASE_URL',
  'KENSHIN_LISTEN',
  'KENSHIN_MODE',
  'KENSHIN_TRUSTED_PROXIES',
  'KENSHIN_PROXY_CERT_HEADER',
  'KENSHIN_TLS_CERT',
  'KENSHIN_TLS_KEY',
  'KENSHIN_CLIENT_CA_FILE',
  'KENSHIN_SHUTDOWN_GRACE_SECONDS',
  'KENSHIN_CERT_VALIDITY_YEARS',
  'KENSHIN_BACKDATE_MINUTES',
  'KENSHIN_KEY_TYPE',
  'KENSHIN_CA_KEY_TYPE',
  'KENSHIN_PKCS12_PROFILE',
  'KENSHIN_CRL_URL',
  'KENSHIN_SERVER_NAMES',
  'KENSHIN_CA_PASSPHRASE',
  'KENSHIN_RENEWAL_WINDOW_DAYS',
  'KENSHIN_PACKAGE_DAYS',
  'KENSHIN_PACKAGE_KEY',
  'KENSHIN_OPERATOR_CONTACT',
  'KENSHIN_SESSION_IDLE_MINUTES',
  'KENSHIN_SESSION_MAX_HOURS',
  'KENSHIN_PROCESSES',
  'KENSHIN_DB_POOL',
  'KENSHIN_MINT_WORKERS',
  'KENSHIN_KEY_POOL_SIZE',
  'KENSHIN_REQUEST_TIMEOUT_SECONDS',
  'KENSHIN_HEADERS_TIMEOUT_SECONDS',
  'KENSHIN_KEEPALIVE_TIMEOUT_SECONDS',
  'KENSHIN_IDLE_TIMEOUT_SECONDS',
  'KENSHIN_MAX_CONNECTIONS',
  'KENSHIN_MAX_CONNECTIONS_PER_ADDRESS',
  'KENSHIN_REMINDER_DAYS',
  'KENSHIN_SMTP_URL',
  'KENSHIN_MAIL_FROM',
  'KENSHIN_OPERATOR_EMAIL',
  'KENSHIN_PUBLIC_URL',
  'KENSHIN_GATEWAY_AUDIENCE',
  'KENSHIN_UPSTREAM_URL',
  'KENSHIN_METRICS_LISTEN',
  'KENSHIN_LOG_LEVEL',
  'KENSHIN_LOG_FORMAT',
] as const;
/** Settings whose values are secrets: never printed by `config check`. */
export const SECRET_SETTINGS = new Set(['KENSHIN_CA_PASSPHRASE', 'KENSHIN_PACKAGE_KEY', 'KENSHIN_DATABASE_URL', 'KENSHIN_SMTP_URL']);

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

export function parseListenAddress(value: string, field: string): ListenAddress {
  if (value.startsWith('unix:')) {
    const socket = value.slice('unix:'.length);
    if (!path.isAbsolute(socket)) throw invalidInput(field, `expected unix:/absolute/path, got "${value}"`);
    // sockaddr_un holds 108 bytes: a longer path fails at listen with a less helpful error.
    if (Buffer.byteLength(socket) > 100) throw invalidInput(field, `the unix socket path is ${Buffer.byteLength(socket)} bytes, at most 100 work (set KENSHIN_LISTEN=unix:/run/kenshin/kenshin.sock)`);
    return { socket };
  }
  return parseListen(value, field);
}

/** IPs and CIDRs (127.0.0.1, ::1, 10.0.0.0/8); checked here so a typo cannot silently trust nobody (or everybody). */
function parseProxies(raw: string): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const entry of list) {
    const [addr, bits, extra] = entry.split('/');
    const family = net.isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    const okBits = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max);
    if (family === 0 || !okBits || extra !== undefined) throw invalidInput('KENSHIN_TRUSTED_PROXIES', `"${entry}" is not an IP address or CIDR (e.g. 127.0.0.1, ::1, 10.0.0.0/8)`);
  }
  return list;
}

/**
 * Reads the config file named by KENSHIN_CONFIG (if any) under the environment: the file holds the
 * deployment's settings, the environment overrides single ones (systemd Environment=, a shell).
 */
export function settingsEnv(env: Env = process.env): Env {
  if (!env.KENSHIN_CONFIG) return env;
  const fromFile = readConfigFile(env.KENSHIN_CONFIG, SETTINGS);
  const merged: Env = { ...fromFile.values };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) merged[k] = v;
  return merged;
}

export function loadConfig(overrides: ConfigOverrides = {}, processEnv: Env = process.env): Config {
  const env = settingsEnv(processEnv);
  const dataDir = path.resolve(overrides.dataDir ?? env.KENSHIN_DATA_DIR ?? './data');
  const mode = oneOf(env, 'KENSHIN_MODE', ['direct', 'proxy'] as const, 'direct');
  const processes = intSetting(env, 'KENSHIN_PROCESSES', os.availableParallelism(), 1, 256);
  const base: Config = {
    dataDir,
    configFile: env.KENSHIN_CONFIG ? path.resolve(env.KENSHIN_CONFIG) : undefined,
    databaseUrl: env.KENSHIN_DATABASE_URL || undefined,
    // Proxy mode defaults to a unix socket: on TCP loopback every local process could pose as the proxy.
    listen: parseListenAddress(env.KENSHIN_LISTEN ?? (mode === 'proxy' ? `unix:${path.join(dataDir, 'kenshin.sock')}` : '127.0.0.1:8443'), 'KENSHIN_LISTEN'),
    mode,
    trustedProxies: parseProxies(env.KENSHIN_TRUSTED_PROXIES ?? '127.0.0.1,::1'),
    proxyCertHeader: (env.KENSHIN_PROXY_CERT_HEADER || 'x-ssl-client-cert').toLowerCase(),
    tlsCertFile: env.KENSHIN_TLS_CERT ? path.resolve(env.KENSHIN_TLS_CERT) : undefined,
    tlsKeyFile: env.KENSHIN_TLS_KEY ? path.resolve(env.KENSHIN_TLS_KEY) : undefined,
    clientCaFile: env.KENSHIN_CLIENT_CA_FILE ? path.resolve(env.KENSHIN_CLIENT_CA_FILE) : undefined,
    shutdownGraceSeconds: intSetting(env, 'KENSHIN_SHUTDOWN_GRACE_SECONDS', 30, 0, 3600),
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
    sessionMaxHours: intSetting(env, 'KENSHIN_SESSION_MAX_HOURS', 12, 1, 168),
    processes,
    dbPool: intSetting(env, 'KENSHIN_DB_POOL', Math.max(2, Math.floor(10 / processes)), 1, 1000),
    // Per process, not shared out: an onboarding job or a storm that lands on one process may use every core.
    mintWorkers: intSetting(env, 'KENSHIN_MINT_WORKERS', Math.min(4, os.availableParallelism()), 0, 64),
    keyPoolSize: intSetting(env, 'KENSHIN_KEY_POOL_SIZE', 8, 0, 1000),
    limits: {
      requestTimeoutSeconds: intSetting(env, 'KENSHIN_REQUEST_TIMEOUT_SECONDS', 30, 1, 3600),
      headersTimeoutSeconds: intSetting(env, 'KENSHIN_HEADERS_TIMEOUT_SECONDS', 10, 1, 3600),
      keepAliveTimeoutSeconds: intSetting(env, 'KENSHIN_KEEPALIVE_TIMEOUT_SECONDS', 5, 1, 3600),
      idleTimeoutSeconds: intSetting(env, 'KENSHIN_IDLE_TIMEOUT_SECONDS', 60, 1, 3600),
      maxConnections: intSetting(env, 'KENSHIN_MAX_CONNECTIONS', 2000, 1, 1_000_000),
      maxConnectionsPerAddress: intSetting(env, 'KENSHIN_MAX_CONNECTIONS_PER_ADDRESS', 100, 0, 1_000_000),
    },
    reminderDays: parseDays(env.KENSHIN_REMINDER_DAYS ?? '90,60,30,15,7,3,1'),
    smtpUrl: env.KENSHIN_SMTP_URL || undefined,
    mailFrom: env.KENSHIN_MAIL_FROM ?? 'Kenshin Cloud <no-reply@kenshin.invalid>',
    operatorEmail: env.KENSHIN_OPERATOR_EMAIL || undefined,
    // Behind a proxy only the operator knows the public name; `config check` says so when it is unset.
    publicUrl: env.KENSHIN_PUBLIC_URL ?? (mode === 'proxy' ? 'https://localhost/' : `https://${env.KENSHIN_LISTEN ?? '127.0.0.1:8443'}/`),
    publicUrlConfigured: Boolean(env.KENSHIN_PUBLIC_URL),
    gatewayAudience: gatewayAudience(env.KENSHIN_GATEWAY_AUDIENCE),
    upstreamUrl: upstreamUrl(env.KENSHIN_UPSTREAM_URL, mode),
    metricsListen: env.KENSHIN_METRICS_LISTEN === 'off' ? undefined : parseListen(env.KENSHIN_METRICS_LISTEN ?? '127.0.0.1:9464', 'KENSHIN_METRICS_LISTEN'),
    logLevel: oneOf(env, 'KENSHIN_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const, 'info'),
    logFormat: oneOf(env, 'KENSHIN_LOG_FORMAT', ['auto', 'json', 'pretty'] as const, 'auto'),
  };
  const merged: Config = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
  }
  merged.dataDir = dataDir;
  // `serve --listen` overrides the listener: the guessed URL follows it (it printed :8443 before).
  if (!merged.publicUrlConfigured && merged.mode === 'direct' && 'host' in merged.listen) {
    const host = merged.listen.host.includes(':') ? `[${merged.listen.host}]` : merged.listen.host;
    merged.publicUrl = `https://${host}:${merged.listen.port}/`;
  }
  if (merged.publicUrlConfigured) {
    let u: URL | undefined;
    try {
      u = new URL(merged.publicUrl);
    } catch {
      u = undefined;
    }
    if (!u || u.protocol !== 'https:' || u.search || u.hash) throw invalidInput('KENSHIN_PUBLIC_URL', `expected the portal's https:// URL (e.g. https://kenshin.example.jp/), got "${merged.publicUrl}"`);
    merged.publicUrl = u.origin + (u.pathname.endsWith('/') ? u.pathname : u.pathname + '/');
  }
  if (merged.crlUrl !== undefined && !/^https?:\/\//.test(merged.crlUrl)) {
    throw invalidInput('KENSHIN_CRL_URL', `expected an http(s) URL, got "${merged.crlUrl}"`);
  }
  if (merged.smtpUrl !== undefined && !/^smtps?:\/\//.test(merged.smtpUrl)) {
    throw invalidInput('KENSHIN_SMTP_URL', 'expected smtp://user:pass@host:port or smtps://…');
  }
  if ((merged.tlsCertFile === undefined) !== (merged.tlsKeyFile === undefined)) {
    throw invalidInput(merged.tlsCertFile ? 'KENSHIN_TLS_KEY' : 'KENSHIN_TLS_CERT', 'KENSHIN_TLS_CERT and KENSHIN_TLS_KEY are set together (the certificate chain and its key)');
  }
  if ('socket' in merged.listen && merged.mode !== 'proxy') {
    throw invalidInput('KENSHIN_LISTEN', 'a unix socket is for proxy mode (KENSHIN_MODE=proxy); direct mode listens on HOST:PORT');
  }
  if (merged.limits.headersTimeoutSeconds > merged.limits.requestTimeoutSeconds) {
    throw invalidInput('KENSHIN_HEADERS_TIMEOUT_SECONDS', `must not be longer than KENSHIN_REQUEST_TIMEOUT_SECONDS (${merged.limits.requestTimeoutSeconds})`);
  }
  if (!/^[a-z0-9-]+$/.test(merged.proxyCertHeader)) throw invalidInput('KENSHIN_PROXY_CERT_HEADER', `"${merged.proxyCertHeader}" is not a header name`);
  if (merged.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(merged.databaseUrl)) {
    throw invalidInput('KENSHIN_DATABASE_URL', 'expected a postgres:// URL (leave it unset for the embedded SQLite database)');
  }
  return merged;
}

/** Where things live inside the data directory. One place, so nobody hard-codes a path twice. */
/** A JWT `aud`: printable ASCII without spaces, so it is the same string in the header, the file and the application. */
function gatewayAudience(v: string | undefined): string {
  const s = (v ?? 'kenshin-gateway').trim();
  if (!/^[\x21-\x7e]{1,200}$/.test(s)) throw invalidInput('KENSHIN_GATEWAY_AUDIENCE', `expected 1-200 printable ASCII characters without spaces (e.g. https://app.example.jp/), got "${s}"`);
  return s;
}

/** An http(s) origin (and optional base path) without query or fragment; direct mode only. */
function upstreamUrl(v: string | undefined, mode: 'direct' | 'proxy'): string | undefined {
  if (!v) return undefined;
  if (mode === 'proxy') throw invalidInput('KENSHIN_UPSTREAM_URL', 'is for direct mode; behind nginx, use deploy/nginx-gateway.conf (nginx fronts the application)');
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || u.password) {
    throw invalidInput('KENSHIN_UPSTREAM_URL', `expected the application's http:// or https:// URL without query or credentials (e.g. http://127.0.0.1:3000), got "${v}"`);
  }
  return u.href.replace(/\/$/, '');
}

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
    gatewayKeyFile: path.join(dataDir, 'secrets', 'gateway-signing-key'),
    serverDir: path.join(dataDir, 'server'),
    serverCert: path.join(dataDir, 'server', 'server.crt'),
    serverKey: path.join(dataDir, 'server', 'server.key'),
    sqliteFile: path.join(dataDir, 'kenshin.sqlite'),
    demoDir: path.join(dataDir, 'demo'),
  };
}
export type DataPaths = ReturnType<typeof dataPaths>;
