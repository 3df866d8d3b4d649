import http from 'node:http';
import https from 'node:https';
import { makePortalWorld, PASSWORD, type PortalWorld } from '../helpers/portal-world.js';
import { addTenant, addUser } from '../../src/tenancy/service.js';

/**
 * A seeded HTTP fuzzer for the portal, the console, the tenant 管理者 pages and the JSON API. Each
 * case is one request built from the route catalog below and then spoiled: repeated form fields,
 * JSON numbers / arrays / objects / null where text belongs, huge values, invisible and bidi
 * characters, bad percent-encodings and invalid UTF-8, wrong content types, odd paths and methods,
 * junk cookies and proxy headers. Most cases carry a logged-in session and its valid CSRF token,
 * so the handlers behind the identity and CSRF checks are reached, not only the checks.
 *
 * The same seed gives the same sequence of cases. The one property checked: no answer is a 5xx,
 * and no request fails at the transport level (a crash, a hang, a reset).
 */

// ---------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32: small, fast, good enough to pick cases).

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Who sends a case.

/** none: no certificate; anon: a valid certificate, no session; expired: a lapsed one; the rest are logged in. */
export type IdentityName = 'none' | 'anon' | 'expired' | 'user' | 'admin' | 'operator';
const SESSION_IDENTITIES = ['user', 'admin', 'operator'] as const;

export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | undefined;
}

export interface FuzzResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends a request as an identity: over mTLS with its certificate, or through the proxy header. */
export interface Transport {
  send(identity: IdentityName, req: FuzzRequest): Promise<FuzzResponse>;
  close(): void;
}

function exchange(mod: typeof http | typeof https, base: string, path: string, options: http.RequestOptions, body: Buffer | undefined): Promise<FuzzResponse> {
  // host and port from the base, the path as it is: new URL('//logout', base) would make "logout" the host.
  const { hostname, port } = new URL(base);
  const headers = { ...(options.headers as Record<string, string>), ...(body ? { 'content-length': String(body.length) } : {}) };
  return new Promise((resolve, reject) => {
    const req = mod.request({ ...options, host: hostname, port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // A safety net against a hung server, not a timing assertion: minutes, far beyond any answer.
    req.setTimeout(120_000, () => req.destroy(new Error('no answer within 120 s')));
    req.on('error', reject);
    req.end(body);
  });
}

export interface Certificates {
  /** PKCS#12 and PEM of each identity that presents a certificate. */
  [name: string]: { file: Uint8Array; password: string; pem: string };
}

/**
 * Once more on a fresh connection when a kept-alive one fails: the server may close a connection
 * after an answer (a 413 whose body it did not read) just as the next request is written to it.
 * A request that fails on a fresh connection too is a real failure.
 */
async function withRetry(first: () => Promise<FuzzResponse>, fresh: () => Promise<FuzzResponse>): Promise<FuzzResponse> {
  try {
    return await first();
  } catch {
    return fresh();
  }
}

/** Direct mode: Kenshin terminates TLS; each identity has its own keep-alive agent (the certificate is per connection). */
export function directTransport(url: string, ca: string, certs: Certificates): Transport {
  const agents = new Map<IdentityName, https.Agent>();
  const tlsOptions = (id: IdentityName) => {
    const c = certs[id];
    return { ca, ...(c ? { pfx: Buffer.from(c.file), passphrase: c.password } : {}) };
  };
  const agentFor = (id: IdentityName) => {
    let a = agents.get(id);
    if (!a) {
      a = new https.Agent({ keepAlive: true, maxSockets: 8, ...tlsOptions(id) });
      agents.set(id, a);
    }
    return a;
  };
  return {
    send: (id, r) =>
      withRetry(
        () => exchange(https, url, r.path, { method: r.method, headers: r.headers, agent: agentFor(id) }, r.body),
        () => exchange(https, url, r.path, { method: r.method, headers: r.headers, agent: false, ...tlsOptions(id) }, r.body),
      ),
    close: () => agents.forEach((a) => a.destroy()),
  };
}

/** Proxy mode: plain HTTP from a trusted address, the certificate in the header nginx would set. */
export function proxyTransport(url: string, certs: Certificates, header = 'x-ssl-client-cert'): Transport {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  return {
    send: (id, r) => {
      const c = certs[id];
      const headers = { ...r.headers };
      if (c && headers[header] === undefined) headers[header] = encodeURIComponent(c.pem);
      return withRetry(
        () => exchange(http, url, r.path, { method: r.method, headers, agent }, r.body),
        () => exchange(http, url, r.path, { method: r.method, headers, agent: false }, r.body),
      );
    },
    close: () => agent.destroy(),
  };
}

// ---------------------------------------------------------------------------------------------
// Sessions: a cookie jar and the CSRF token of each logged-in identity (and anon's pre-login token).

interface Session {
  cookies: Map<string, string>;
  csrf: string;
}

const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
function keepCookies(jar: Map<string, string>, res: FuzzResponse) {
  for (const c of ([] as string[]).concat(res.headers['set-cookie'] ?? [])) {
    const [pair, ...attrs] = c.split(';');
    const eq = pair!.indexOf('=');
    const k = pair!.slice(0, eq).trim();
    const v = pair!.slice(eq + 1);
    if (v === '' || attrs.some((a) => /expires=Thu, 01 Jan 1970/i.test(a))) jar.delete(k);
    else jar.set(k, v);
  }
}
const csrfIn = (text: string) => /name="_csrf" value="([^"]*)"/.exec(text)?.[1] ?? '';
const formBody = (fields: Record<string, string>) => Buffer.from(new URLSearchParams(fields).toString());

async function browse(t: Transport, id: IdentityName, jar: Map<string, string>, method: string, path: string, fields?: Record<string, string>) {
  const headers: Record<string, string> = { cookie: cookieHeader(jar) };
  if (fields) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await t.send(id, { method, path, headers, body: fields ? formBody(fields) : undefined });
  keepCookies(jar, res);
  return res;
}

const LOGINS: Record<(typeof SESSION_IDENTITIES)[number], string> = { user: 'solo', admin: 'yamada', operator: 'ops' };

async function logIn(t: Transport, id: (typeof SESSION_IDENTITIES)[number]): Promise<Session> {
  const jar = new Map<string, string>();
  const page = await browse(t, id, jar, 'GET', '/');
  const res = await browse(t, id, jar, 'POST', '/login', { _csrf: csrfIn(page.text), loginId: LOGINS[id], password: PASSWORD });
  if (res.status !== 303 || !jar.has('kenshin_session')) throw new Error(`fuzz setup: ${LOGINS[id]} could not log in (${res.status})`);
  const inst = await browse(t, id, jar, 'GET', '/institutions');
  const csrf = csrfIn(inst.text);
  const first = /name="institutionId" value="(\d+)"/.exec(inst.text)?.[1];
  if (first) await browse(t, id, jar, 'POST', '/institutions', { _csrf: csrf, institutionId: first });
  return { cookies: jar, csrf };
}

async function preLogin(t: Transport): Promise<Session> {
  const jar = new Map<string, string>();
  const page = await browse(t, 'anon', jar, 'GET', '/');
  return { cookies: jar, csrf: csrfIn(page.text) };
}

async function alive(t: Transport, id: IdentityName, s: Session): Promise<boolean> {
  const r = await t.send(id, { method: 'GET', path: '/institutions', headers: { cookie: cookieHeader(s.cookies) } });
  return r.status === 200;
}

// ---------------------------------------------------------------------------------------------
// The route catalog: every route of src/web and src/admin, its fields and who usually calls it.

type Field = string;
interface RouteSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: Field[];
  query?: Field[];
  api?: boolean;
  who: readonly IdentityName[];
}

const ANY: IdentityName[] = ['none', 'anon', 'expired', 'user', 'admin', 'operator'];
const PORTAL: IdentityName[] = ['user', 'user', 'admin', 'anon', 'none', 'expired'];
const OPS: IdentityName[] = ['operator', 'operator', 'operator', 'operator', 'admin', 'user', 'none'];
const TENANT: IdentityName[] = ['admin', 'admin', 'admin', 'user', 'operator', 'anon'];
// Logins are fuzzed only with the certificates no session uses: failures lock the certificate too.
const LOGIN: IdentityName[] = ['anon', 'anon', 'anon', 'none', 'expired'];
const API: IdentityName[] = ['user', 'anon', 'none', 'expired', 'admin'];

export const ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/', query: ['session'], who: ANY },
  { method: 'GET', path: '/login', query: ['session'], who: ANY },
  { method: 'POST', path: '/login', body: ['loginId', 'password'], who: LOGIN },
  { method: 'GET', path: '/institutions', who: PORTAL },
  { method: 'POST', path: '/institutions', body: ['institutionId'], who: PORTAL },
  { method: 'GET', path: '/home', who: PORTAL },
  { method: 'POST', path: '/logout', body: [], who: PORTAL },
  { method: 'GET', path: '/renewal/check', who: PORTAL },
  { method: 'POST', path: '/renewal/later', body: [], who: PORTAL },
  { method: 'GET', path: '/renewal/confirm', who: PORTAL },
  { method: 'POST', path: '/renewal', body: [], who: PORTAL },
  { method: 'GET', path: '/renewal/package', who: PORTAL },
  { method: 'POST', path: '/renewal/package/password', body: [], who: PORTAL },
  { method: 'GET', path: '/renewal/package/download', query: ['format'], who: PORTAL },
  { method: 'GET', path: '/tenant', who: TENANT },
  { method: 'POST', path: '/tenant/users', body: ['login', 'role', 'institutions'], who: TENANT },
  ...['lock', 'unlock', 'reset-password', 'institutions'].map((a): RouteSpec => ({ method: 'POST', path: `/tenant/users/:login/${a}`, body: ['institutions'], who: TENANT })),
  { method: 'GET', path: '/admin', who: OPS },
  { method: 'GET', path: '/admin/certificates', query: ['tenant', 'within', 'status', 'q', 'after'], who: OPS },
  { method: 'GET', path: '/admin/certificates/new', query: ['tenant', 'reissue'], who: OPS },
  { method: 'GET', path: '/admin/certificates/:serial', who: OPS },
  { method: 'POST', path: '/admin/certificates', body: ['tenant', 'label', 'reissue', 'key', 'profile'], who: OPS },
  { method: 'POST', path: '/admin/certificates/:serial/revoke', body: ['reason', 'withSuccessors'], who: OPS },
  { method: 'GET', path: '/admin/deliveries/:id', who: OPS },
  { method: 'GET', path: '/admin/tenants', who: OPS },
  { method: 'POST', path: '/admin/tenants', body: ['code', 'name', 'email'], who: OPS },
  { method: 'GET', path: '/admin/tenants/:code', who: OPS },
  { method: 'POST', path: '/admin/tenants/:code', body: ['name', 'email'], who: OPS },
  { method: 'POST', path: '/admin/tenants/:code/institutions', body: ['number', 'name'], who: OPS },
  { method: 'POST', path: '/admin/tenants/:code/users', body: ['login', 'role', 'institutions'], who: OPS },
  ...['lock', 'unlock', 'reset-password', 'institutions'].map((a): RouteSpec => ({ method: 'POST', path: `/admin/tenants/:code/users/:login/${a}`, body: ['institutions'], who: OPS })),
  { method: 'GET', path: '/admin/audit', query: ['tenant', 'actor', 'action', 'from', 'to', 'format', 'before'], who: OPS },
  { method: 'GET', path: '/api/v1/certificate', api: true, who: API },
  { method: 'POST', path: '/api/v1/certificate/renewal', body: [], api: true, who: API },
  { method: 'POST', path: '/api/cert', body: [], api: true, who: API },
  { method: 'GET', path: '/api/v1/renewals/:id/pkcs12', query: ['format'], api: true, who: API },
  { method: 'GET', path: '/help/import', query: ['back'], who: ANY },
  { method: 'GET', path: '/help/delete-old', query: ['back'], who: ANY },
  { method: 'GET', path: '/assets/app.css', who: ANY },
  { method: 'GET', path: '/crl/:file', who: ANY },
  { method: 'GET', path: '/crl/bundle.pem', who: ANY },
  { method: 'GET', path: '/healthz', who: ANY },
  { method: 'GET', path: '/readyz', who: ANY },
];

/** Plausible values per field, so that a good share of cases passes the edge and reaches the domain. */
function plausible(rng: Rng, field: string, ctx: { victimSerial: string }): string {
  const n = () => String(rng.int(1_000_000));
  switch (field) {
    case 'code':
      return rng.pick(['T0001', 't0001', 'T0002', 'OPERATORS', 'operators', `FZ${n()}`, 'bad code', '-x', 'T0001\r\n', '\u212A0001']);
    case 'tenant':
      // Issuing a certificate is real work (an RSA key): a valid tenant only now and then.
      return rng.chance(0.15) ? rng.pick(['T0001', 't0002']) : rng.pick(['', 'T0404', 'nope!', 'T0001 ']);
    case 'name':
      return rng.pick(['山田クリニック', `ファズ医院${n()}`, 'ｸﾘﾆｯｸ', '']);
    case 'email':
      return rng.pick(['office@example.jp', '', 'not-an-address', 'a@b']);
    case 'number':
      return rng.pick(['1312345678', `27${String(rng.int(1e8)).padStart(8, '0')}`, '１３１２３４５６７８', '123']);
    case 'login':
      // Never the fuzzer's own users (solo, yamada, ops): locking or resetting them would end its sessions.
      return rng.pick(['victim', 'nobody', 'other', `fz${n()}`, 'bad login!']);
    case 'loginId':
      return rng.pick(['victim', 'nobody', 'other', `fz${n()}`, '']);
    case 'password':
      return rng.pick(['wrong password', '', 'x'.repeat(12)]);
    case 'role':
      return rng.pick(['admin', 'user', 'operator', '管理者', '一般ユーザ', 'root']);
    case 'institutions':
      return rng.pick(['1312345678', '1312345678,1312345679', '2712345678', '', ' , ,', '1312345678,1312345678']);
    case 'institutionId':
      return rng.pick(['1', '2', '3', '999999', '-1', '1.5']);
    case 'label':
      return rng.pick(['受付PC', '', '診察室 2']);
    case 'reissue':
      return rng.chance(0.05) ? ctx.victimSerial : rng.pick(['', '00', 'zz', 'ab:cd']);
    case 'key':
      return rng.pick(['p256', 'p256', 'rsa2048', 'dsa']);
    case 'profile':
      return rng.pick(['compatible', 'modern', 'legacy']);
    case 'serial':
      if (rng.chance(0.2)) {
        // The victim's serial as people type it: upper case, colons, a stray line break or space.
        const v = ctx.victimSerial;
        return rng.pick([v, v.toUpperCase(), v.replace(/(..)(?!$)/g, '$1:'), v.slice(0, 4) + '\n' + v.slice(4), ` ${v}\t`]);
      }
      return rng.pick(['00', 'zzzz', 'AB:CD:EF', (rng.next() * 1e16).toString(16)]);
    case 'reason':
      return rng.pick(['keyCompromise', 'unspecified', 'superseded', 'because']);
    case 'withSuccessors':
      return rng.pick(['1', '0', 'yes']);
    case 'id':
      return rng.pick(['AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'nope', '..']);
    case 'file':
      return rng.pick(['issuing.crl', 'root.crl.pem', 'issuing-2.crl', 'issuing-0.crl', 'x.crl']);
    case 'format':
      return rng.pick(['csv', 'modern', 'compatible', 'xml']);
    case 'within':
      return rng.pick(['30', '0', '-1', '99999999999', 'abc']);
    case 'status':
      return rng.pick(['active', 'expired', 'revoked', 'not_yet_valid', 'bogus']);
    case 'session':
      return rng.pick(['ended', 'x']);
    case 'from':
    case 'to':
      return rng.pick(['2026-01-01', '2026-13-45', 'yesterday', '9999-99-99T']);
    case 'actor':
      return rng.pick(['operator:', 'user:yamada', '%', '_']);
    case 'action':
      return rng.pick(['tenant.created', 'certificate.revoked', 'x']);
    case 'lang':
      return rng.pick(['ja', 'en', 'fr']);
    default:
      return 'x';
  }
}

const NASTY = [
  '\u202E', '\u200B', '\u0000', '\u0085', '\u2028', '\u2029', '\uFEFF', '\uD800', '\uDFFF', '😀', '１２３', 'ｱｲｳ', '\r\n', '\t',
  "'; drop table tenants; --", '" or 1=1 --', '<script>alert(1)</script>', '../../etc/passwd', '%00', '%', '${jndi:ldap://x}',
  '__proto__', 'constructor', 'prototype', 'null', 'undefined', 'NaN', '1e309', '-0', '0x10', '🏥'.repeat(40),
];

/** A string that should be refused: empty, huge, invisible characters, injection attempts, or a mix. */
function junk(rng: Rng, base: string): string {
  switch (rng.int(7)) {
    case 0:
      return '';
    case 1:
      return base + rng.pick(NASTY) + base;
    case 2:
      return rng.pick(NASTY);
    case 3: {
      const len = rng.pick([65, 129, 257, 1100, 4000, 15_000]);
      return rng.pick(['a', '名', 'ｱ', '1', '%', '😀']).repeat(len);
    }
    case 4:
      return Array.from({ length: 1 + rng.int(40) }, () => String.fromCharCode(rng.int(0x3000))).join('');
    case 5:
      return base.toUpperCase() + '\u0301';
    default:
      return base.repeat(2 + rng.int(30));
  }
}

/** A JSON value that is not text: where the schema says string. */
function notText(rng: Rng, s: string): unknown {
  switch (rng.int(8)) {
    case 0:
      return 12345;
    case 1:
      return [s, s];
    case 2:
      return { $ne: s, toString: 'x' };
    case 3:
      return null;
    case 4:
      return true;
    case 5:
      return [[[[[[[[[[s]]]]]]]]]];
    case 6:
      return -1.5e300;
    default:
      return [];
  }
}

const BAD_ESCAPES = ['%', '%E0%A4%A', '%zz', '%C0%AF', '%ED%A0%80', '%FF%FE', '%u202E', '+%2B+', '%%%'];
const encodeValue = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '\uFFFD'));

export interface FuzzCase {
  n: number;
  identity: IdentityName;
  request: FuzzRequest;
  /** One line saying what the case is, to reproduce a failure. */
  summary: string;
  /** A POST /logout with the real token ends the session: log back in before the next batch. */
  endsSession: boolean;
}

/** Only ASCII without spaces may stand in a request line: everything else is percent-encoded. */
const safePath = (p: string) => p.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c.replace(/[\uD800-\uDFFF]/g, '\uFFFD')));

export function makeCase(rng: Rng, n: number, ctx: { victimSerial: string; csrf: (id: IdentityName) => string | undefined; cookies: (id: IdentityName) => string; proxyHeader?: string }): FuzzCase {
  const route = rng.pick(ROUTES);
  const identity = rng.pick(route.who);
  const notes: string[] = [];

  // Path: parameters filled, sometimes spoiled.
  let path = route.path.replace(/:(\w+)/g, (_m, name: string) => {
    const v = plausible(rng, name, ctx);
    if (rng.chance(0.2)) {
      notes.push(`param ${name} spoiled`);
      return rng.chance(0.3) ? rng.pick(BAD_ESCAPES) : encodeValue(junk(rng, v));
    }
    return encodeValue(v);
  });
  if (rng.chance(0.08)) {
    // Every request line starts with "/": a parse error is answered by Node before Fastify, without
    // knowing the method, and a client that sent HEAD then misreads the body as the next answer.
    path = rng.chance(0.5)
      ? path + rng.pick(['/', '//', '/..', '.json', '/../../admin', '?', '#x', ';jsessionid=1', '/' + 'x'.repeat(3000)])
      : rng.pick(['/', '//', '/..', '/%2e%2e/admin', '/%00', '/.']) + path;
    notes.push('odd path');
  }
  if (rng.chance(0.03)) {
    path = rng.pick(['/ADMIN', '/Admin/Tenants', '/api', '/api/v2/x', '/.env', '/admin/tenants/T0001/users/x/delete', '/%', '/' + '%41'.repeat(500), '/assets/../server.ts', '/*']);
    notes.push('unknown path');
  }

  // Query string.
  const query: string[] = [];
  for (const f of ['lang', ...(route.query ?? [])]) {
    if (f === 'lang' && !rng.chance(0.2)) continue;
    if (!rng.chance(0.6)) continue;
    const v = rng.chance(0.3) ? junk(rng, plausible(rng, f, ctx)) : plausible(rng, f, ctx);
    const times = rng.chance(0.15) ? 2 + rng.int(3) : 1;
    for (let i = 0; i < times; i++) query.push(`${f}=${rng.chance(0.05) ? rng.pick(BAD_ESCAPES) : encodeValue(v)}`);
  }
  if (rng.chance(0.05)) query.push(rng.pick(['a[b]=1', '__proto__[x]=1', 'constructor[prototype][x]=1', '=', '&&&', 'x'.repeat(5000) + '=1']));
  if (query.length) path += (path.includes('?') ? '&' : '?') + query.join('&');

  // Method.
  let method: string = route.method;
  if (rng.chance(0.08)) {
    method = rng.pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', route.method === 'GET' ? 'POST' : 'GET', 'PROPFIND', 'TRACE']);
    notes.push(`method ${method}`);
  }

  // Headers: the identity's cookies, sometimes spoiled; API-ish and proxy-ish extras.
  const headers: Record<string, string> = {};
  let cookie = ctx.cookies(identity);
  if (rng.chance(0.05)) {
    cookie = rng.pick(['kenshin_session=garbage', 'kenshin_session=', 'kenshin_lang=xx', 'kenshin_pre=' + 'p'.repeat(3000), 'a=b; a=c; kenshin_session=x', '=;=;', '%zz=%zz']) + (cookie ? '; ' + cookie : '');
    notes.push('junk cookie');
  }
  if (cookie) headers.cookie = cookie;
  if (rng.chance(0.05)) headers['accept-language'] = rng.pick(['en', 'ja', '*', 'x'.repeat(2000)]);
  if (route.api && rng.chance(0.2)) Object.assign(headers, rng.pick([{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { accept: 'text/html' }, { origin: 'null' }]));
  if (rng.chance(0.05)) headers['x-forwarded-for'] = rng.pick(['1.2.3.4', 'not an address', '::1, 10.0.0.1', '999.999.999.999']);
  if (ctx.proxyHeader && rng.chance(0.05)) {
    headers[ctx.proxyHeader] = rng.pick(['', '-', 'not a certificate', '%E0%A4%A', '-----BEGIN CERTIFICATE----- MIIB -----END CERTIFICATE-----', 'A'.repeat(8000), 'MA==']);
    notes.push('junk proxy header');
  }

  // Body.
  let body: Buffer | undefined;
  const csrf = ctx.csrf(identity);
  const realCsrf = csrf !== undefined && rng.chance(0.85);
  if (route.body !== undefined || rng.chance(0.05)) {
    const fields: Record<string, unknown> = {};
    const names = ['_csrf', ...(route.body ?? ['x'])];
    for (const f of names) {
      if (f !== '_csrf' && rng.chance(0.1)) continue; // a field left out
      let v: unknown = f === '_csrf' ? (realCsrf ? csrf : junk(rng, 'token')) : plausible(rng, f, ctx);
      if (f !== '_csrf' && rng.chance(0.25)) v = junk(rng, v as string);
      fields[f] = v;
    }
    if (rng.chance(0.05)) fields[rng.pick(['__proto__', 'constructor', 'extra', 'x'.repeat(300)])] = 'x';
    const kind = rng.int(10);
    if (kind < 5) {
      // A form: fields repeated now and then, encodings sometimes broken.
      const parts: string[] = [];
      for (const [k, v] of Object.entries(fields)) {
        const times = rng.chance(0.12) ? 2 + rng.int(2) : 1;
        if (times > 1) notes.push(`repeated ${k}`);
        for (let i = 0; i < times; i++) parts.push(`${encodeValue(k)}=${rng.chance(0.05) ? rng.pick(BAD_ESCAPES) : encodeValue(String(v))}`);
      }
      body = Buffer.from(parts.join('&'));
      if (rng.chance(0.05)) body = Buffer.concat([body, Buffer.from('&name='), Buffer.from([0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80])]);
      headers['content-type'] = rng.chance(0.9) ? 'application/x-www-form-urlencoded' : rng.pick(['application/x-www-form-urlencoded; charset=shift_jis', 'APPLICATION/X-WWW-FORM-URLENCODED', 'application/x-www-form-urlencoded;;']);
      notes.push('form');
    } else if (kind < 8) {
      // JSON: values that are not text, or a body that is not an object.
      for (const k of Object.keys(fields)) if (rng.chance(0.3)) fields[k] = notText(rng, String(fields[k]));
      let text = JSON.stringify(fields);
      if (rng.chance(0.15)) text = rng.pick(['[1,2]', '"text"', '42', 'null', 'true', '{', '{"a":', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '[' .repeat(5000) + ']'.repeat(5000), '\ufeff{}', '{"_csrf":"\\ud800"}']);
      body = Buffer.from(text);
      headers['content-type'] = rng.chance(0.9) ? 'application/json' : rng.pick(['application/json; charset=utf-16', 'application/JSON', 'application/json; charset=latin1']);
      notes.push('json');
    } else {
      // The wrong content type, or none, or more than the body limit.
      body = rng.chance(0.3) ? Buffer.alloc(20_000 + rng.int(20_000), 'a') : Buffer.from(new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)])).toString());
      const type = rng.pick(['text/plain', 'multipart/form-data; boundary=x', 'application/xml', '', 'application/octet-stream', 'application/x-www-form-urlencoded', 'application/json']);
      if (type) headers['content-type'] = type;
      notes.push(`body ${body.length} B as ${type || 'no type'}`);
    }
  }

  // A request head beyond Node's 16 KiB limit is answered (431) before the method is parsed, with a
  // body; a HEAD client then misreads that body as the next answer. Such requests go as GET.
  if (method === 'HEAD' && safePath(path).length + JSON.stringify(headers).length > 12_000) method = 'GET';

  return {
    n,
    identity,
    request: { method, path: safePath(path), headers, body },
    summary: `#${n} ${identity} ${method} ${safePath(path).slice(0, 160)}${realCsrf ? ' +csrf' : ''} [${notes.join(', ')}] ${body ? body.subarray(0, 160).toString('utf8') : ''}`,
    endsSession: path.startsWith('/logout') && realCsrf,
  };
}

// ---------------------------------------------------------------------------------------------
// The world under test and the run.

export interface FuzzTarget {
  world: PortalWorld;
  transport: Transport;
  mode: FuzzMode;
  victimSerial: string;
  proxyHeader?: string;
}

/**
 * A portal world (makePortalWorld: tenants T0001/T0002, users yamada, solo, nobody, other) plus an
 * operator, a user "victim" for the console to lock and reset, and certificates for each identity.
 * Direct mode: Kenshin's own mTLS listener. Proxy mode: Kenshin on plain HTTP trusting 127.0.0.1,
 * the certificate in X-SSL-Client-Cert, reached directly (nothing in front filters the requests).
 * nginx mode: the shipped deploy/nginx.conf in front of Kenshin's unix socket (test/helpers/front.ts).
 */
export type FuzzMode = 'direct' | 'proxy' | 'nginx';

export async function makeFuzzTarget(mode: FuzzMode): Promise<FuzzTarget> {
  const env: Record<string, string> = mode === 'proxy' ? { KENSHIN_MODE: 'proxy', KENSHIN_TRUSTED_PROXIES: '127.0.0.1' } : {};
  const w = await makePortalWorld('sqlite', env, { via: mode === 'nginx' ? 'nginx' : 'direct' });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  await addTenant(deps, { code: 'OPERATORS', name: '運用者' }, 'test');
  await addUser(deps, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'victim', password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
  const issued = {
    // In the renewal window, so the renewal handlers do real work once.
    user: await w.cert(60),
    admin: await w.cert(700),
    operator: await w.cert(700, { tenant: 'OPERATORS' }),
    anon: await w.cert(700),
    expired: await w.cert(-5),
    victim: await w.cert(500),
  };
  const certs: Certificates = Object.fromEntries(Object.entries(issued).map(([k, c]) => [k, { file: c.file, password: c.password, pem: c.row.pem }]));
  // nginx terminates mTLS like Kenshin's own listener does, so the same transport talks to it.
  const transport = mode === 'proxy' ? proxyTransport(w.url, certs) : directTransport(w.url, w.ca, certs);
  w.onClose(async () => transport.close());
  return { world: w, transport, mode, victimSerial: issued.victim.row.serial, ...(mode === 'direct' ? {} : { proxyHeader: 'x-ssl-client-cert' }) };
}

export interface FuzzReport {
  mode: string;
  seed: number;
  cases: number;
  durationMs: number;
  statuses: Record<string, number>;
  /** The first 50 of each, to reproduce; the counts are complete. */
  serverErrors: { summary: string; status: number; body: string }[];
  transportErrors: { summary: string; error: string }[];
  serverErrorCount: number;
  transportErrorCount: number;
  /** Cases answered by a handler behind the identity and CSRF checks (a 2xx/3xx or a domain 400/409/410). */
  reachedHandlers: number;
}

export async function runFuzz(target: FuzzTarget, opts: { seed: number; cases: number; concurrency?: number; onProgress?: (done: number) => void }): Promise<FuzzReport> {
  const { transport } = target;
  const rng = new Rng(opts.seed);
  const sessions = new Map<IdentityName, Session>();
  const refresh = async () => {
    for (const id of SESSION_IDENTITIES) {
      const s = sessions.get(id);
      if (!s || !(await alive(transport, id, s))) sessions.set(id, await logIn(transport, id));
    }
    // anon's pre-login cookie and token, so fuzzed logins get past the CSRF check into login().
    if (!sessions.has('anon')) sessions.set('anon', await preLogin(transport));
  };
  const ctx = {
    victimSerial: target.victimSerial,
    csrf: (id: IdentityName) => sessions.get(id)?.csrf,
    cookies: (id: IdentityName) => {
      const s = sessions.get(id);
      return s ? cookieHeader(s.cookies) : '';
    },
    ...(target.proxyHeader ? { proxyHeader: target.proxyHeader } : {}),
  };

  const report: FuzzReport = { mode: target.mode, seed: opts.seed, cases: 0, durationMs: 0, statuses: {}, serverErrors: [], transportErrors: [], serverErrorCount: 0, transportErrorCount: 0, reachedHandlers: 0 };
  const started = process.hrtime.bigint();
  const batch = 100;
  const concurrency = opts.concurrency ?? 4;
  for (let from = 0; from < opts.cases; from += batch) {
    await refresh();
    // Cases are drawn in order from the seed before any is sent, so a run is reproducible.
    const cases = Array.from({ length: Math.min(batch, opts.cases - from) }, (_, i) => makeCase(rng, from + i, ctx));
    let next = 0;
    let ended = false;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        let res: FuzzResponse | undefined;
        try {
          res = await transport.send(c.identity, c.request);
        } catch (e) {
          if (report.transportErrorCount++ < 50) report.transportErrors.push({ summary: c.summary, error: String((e as Error).message ?? e) });
        }
        report.cases++;
        if (c.endsSession) ended = true;
        if (!res) continue;
        report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
        if (res.status >= 500 && report.serverErrorCount++ < 50) report.serverErrors.push({ summary: c.summary, status: res.status, body: res.text.slice(0, 300) });
        if (c.identity !== 'none' && c.identity !== 'expired' && (res.status < 400 || [409, 410].includes(res.status) || (res.status === 400 && !/invalid_input|<p id="error">「/.test(res.text)))) report.reachedHandlers++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (ended) for (const id of SESSION_IDENTITIES) sessions.delete(id);
    opts.onProgress?.(report.cases);
  }
  report.durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  return report;
}

/** After the run: the server still answers a normal visit — health, a fresh login, the home page. */
export async function normalVisit(target: FuzzTarget): Promise<{ health: number; home: number; api: number }> {
  const t = target.transport;
  const health = (await t.send('none', { method: 'GET', path: '/healthz', headers: {} })).status;
  const s = await logIn(t, 'admin');
  const home = (await t.send('admin', { method: 'GET', path: '/home', headers: { cookie: cookieHeader(s.cookies) } })).status;
  const api = (await t.send('anon', { method: 'GET', path: '/api/v1/certificate', headers: {} })).status;
  return { health, home, api };
}
