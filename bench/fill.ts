/**
 * Fills a Kenshin database with a realistic installation, fast: direct bulk inserts inside
 * transactions (better-sqlite3 prepared statements, or PostgreSQL INSERT … SELECT FROM unnest()),
 * not the services, which would take hours for a million certificates.
 *
 * The shape, for N certificates and T tenants:
 * - N/2 "lineages" (one PC of one tenant each). Generation 1 was issued by an operator at a time
 *   uniform over 6 to 3 years ago (3-year validity, so it has expired or is about to); generation 2
 *   is its self-renewal, started 0–90 days before generation 1 expired (a `renewals` row; taken up
 *   unless issued in the last week; its sealed package kept for 7 days, then wiped). So about half of
 *   the certificates are valid and ~1/12 of the valid ones expire within 90 days, as in steady state.
 * - R certificates, chosen at random, revoked at a random moment of their validity with a real
 *   RFC 5280 reason.
 * - Ids follow issue time, as they would. 80 % RSA-2048, 20 % P-256.
 * - Each certificate row is a real certificate's bytes (signed by the installation's issuing CA)
 *   with its own random 128-bit serial written in, so DER, PEM, fingerprint and serial have their
 *   real sizes and the fingerprint is the SHA-256 of the DER the row stores (lookups by a presented
 *   certificate work; the substituted bytes make the signature stale, which nothing here checks).
 * - T tenants, each with one 健診機関 and one user; one audit event (hash-chained, in time order)
 *   per issuance and per revocation. Not filled: sessions, login throttling and the reminder ledger.
 */
import { createHash, randomBytes } from 'node:crypto';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import type { IssuingAuthority } from '../src/ca/authority.js';
import { generateKeyPair, type AnyKeyType } from '../src/ca/keys.js';
import { buildSubject } from '../src/ca/subject.js';
import { pemEncode } from '../src/ca/pem.js';
import { eventHash } from '../src/audit/log.js';
import { GENESIS_HASH } from '../src/db/migrations/001_initial.js';
import { DAY_MS } from '../src/clock.js';
import type { Dialect } from '../src/db/database.js';

export interface FillPlan {
  certificates: number;
  revoked: number;
  tenants: number;
  now: Date;
}

export interface FillSummary {
  certificates: number;
  revoked: number;
  tenants: number;
  renewals: number;
  auditEvents: number;
  seconds: number;
}

const YEAR_MS = 365 * DAY_MS;
const VALIDITY_MS = 3 * YEAR_MS;
const REASONS = ['keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged', 'unspecified', 'privilegeWithdrawn'];
const BATCH = 5000;

/** A real certificate signed by `authority`, and where its 16 serial bytes sit in the DER. */
interface Template {
  der: Buffer;
  serialOffset: number;
  keyType: AnyKeyType;
}

async function templates(authority: IssuingAuthority, now: Date): Promise<Map<string, Template>> {
  const out = new Map<string, Template>();
  const subject = new Uint8Array(buildSubject({ tenantCode: 'T000000', tenantName: 'ベンチマーク医院' }).toArrayBuffer());
  for (const keyType of ['rsa2048', 'p256'] as const) {
    const pair = await generateKeyPair(keyType);
    // A serial with the top bit set is encoded in 17 octets (a 0x00 pad), one without in 16:
    // one template for each, so a substituted serial never changes the DER's length.
    for (const high of [false, true]) {
      const serial = randomBytes(16);
      serial[0] = high ? serial[0]! | 0x80 : (serial[0]! & 0x7f) || 1;
      const signed = authority.signClient({ subjectDer: subject, publicKey: pair.publicKey, keyType, notBefore: now, notAfter: new Date(now.getTime() + VALIDITY_MS), serial: serial.toString('hex') });
      const der = Buffer.from(signed.der);
      const serialOffset = der.indexOf(serial);
      if (serialOffset < 0) throw new Error('serial not found in the template certificate');
      out.set(`${keyType}:${high}`, { der, serialOffset, keyType });
    }
  }
  return out;
}

/** The plan of every certificate, in issue order (id = index + 1), in compact typed arrays. */
interface Population {
  n: number;
  notBefore: Float64Array;
  tenant: Int32Array;
  /** 0: none; otherwise the id of the certificate this one renews. */
  predecessor: Int32Array;
  /** NaN when not revoked. */
  revokedAt: Float64Array;
  reason: Uint8Array;
  rsa: Uint8Array;
  serials: Buffer;
}

function plan(p: FillPlan): Population {
  const lineages = Math.ceil(p.certificates / 2);
  const now = p.now.getTime();
  // Issue times of both generations, then sorted so ids follow time.
  const times = new Float64Array(p.certificates);
  const lineageOf = new Int32Array(p.certificates);
  const gen = new Uint8Array(p.certificates);
  for (let l = 0, i = 0; l < lineages && i < p.certificates; l++) {
    const t1 = now - 6 * YEAR_MS + Math.random() * 3 * YEAR_MS;
    times[i] = t1;
    lineageOf[i] = l;
    gen[i++] = 1;
    if (i < p.certificates) {
      times[i] = t1 + VALIDITY_MS - Math.random() * 90 * DAY_MS;
      lineageOf[i] = l;
      gen[i++] = 2;
    }
  }
  const order = Array.from({ length: p.certificates }, (_, i) => i).sort((a, b) => times[a]! - times[b]!);
  const pop: Population = {
    n: p.certificates,
    notBefore: new Float64Array(p.certificates),
    tenant: new Int32Array(p.certificates),
    predecessor: new Int32Array(p.certificates),
    revokedAt: new Float64Array(p.certificates).fill(NaN),
    reason: new Uint8Array(p.certificates),
    rsa: new Uint8Array(p.certificates),
    serials: randomBytes(16 * p.certificates),
  };
  const gen1Id = new Int32Array(lineages);
  const lineageRsa = Uint8Array.from({ length: lineages }, () => (Math.random() < 0.8 ? 1 : 0));
  order.forEach((src, idx) => {
    const l = lineageOf[src]!;
    pop.notBefore[idx] = times[src]!;
    pop.tenant[idx] = (l % p.tenants) + 1;
    pop.rsa[idx] = lineageRsa[l]!;
    if (gen[src] === 1) gen1Id[l] = idx + 1;
    else pop.predecessor[idx] = gen1Id[l]!;
    // Serials never start with a zero byte (see ca/serial.ts).
    if (pop.serials[idx * 16] === 0) pop.serials[idx * 16] = 1;
  });
  // R distinct certificates revoked, each at a random moment of its validity up to now.
  const chosen = new Set<number>();
  while (chosen.size < Math.min(p.revoked, p.certificates)) chosen.add(Math.floor(Math.random() * p.certificates));
  for (const idx of chosen) {
    const from = pop.notBefore[idx]!;
    const until = Math.min(now, from + VALIDITY_MS);
    pop.revokedAt[idx] = from + Math.random() * (until - from);
    pop.reason[idx] = Math.floor(Math.random() * REASONS.length);
  }
  return pop;
}

/** Where rows go: the same generator feeds SQLite and PostgreSQL. */
interface Sink {
  insert(table: string, columns: string[], rows: unknown[][]): Promise<void>;
  finish(): Promise<void>;
}

function sqliteSink(file: string): Sink {
  const db = new Sqlite(file);
  // Loading only: no journal and one exclusive lock (a crash mid-fill just means a new fill);
  // finish() puts the file back in WAL mode, as Kenshin opens it.
  db.pragma('journal_mode = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1000000'); // 1 GB while filling: random unique-index inserts stay in memory
  const statements = new Map<string, Sqlite.Statement>();
  return {
    async insert(table, columns, rows) {
      const key = `${table}(${columns.join(',')})`;
      let stmt = statements.get(key);
      if (!stmt) statements.set(key, (stmt = db.prepare(`insert into ${table} (${columns.join(', ')}) values (${columns.map(() => '?').join(', ')})`)));
      const s = stmt;
      db.transaction(() => {
        for (const r of rows) s.run(r);
      })();
    },
    async finish() {
      db.pragma('locking_mode = NORMAL');
      db.pragma('journal_mode = WAL');
      db.close();
    },
  };
}

async function postgresSink(url: string, types: Record<string, Record<string, string>>): Promise<Sink> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('set synchronous_commit = off');
  return {
    async insert(table, columns, rows) {
      // One statement per batch, one array parameter per column: far fewer parameters to parse
      // than a multi-row VALUES list.
      const t = types[table]!;
      const arrays = columns.map((_, c) => rows.map((r) => r[c]));
      const sql = `insert into ${table} (${columns.join(', ')}) select * from unnest(${columns.map((c, i) => `$${i + 1}::${t[c] ?? 'text'}[]`).join(', ')})`;
      await client.query(sql, arrays);
    },
    async finish() {
      // Identity columns were given explicit ids: move their sequences past them.
      for (const table of ['tenants', 'institutions', 'users', 'certificates', 'renewals', 'audit_events']) {
        await client.query(`select setval(pg_get_serial_sequence('${table}', 'id'), coalesce((select max(id) from ${table}), 1))`);
      }
      // What autovacuum would do shortly after a bulk load; the planner needs the statistics.
      await client.query('analyze');
      await client.end();
    },
  };
}

const PG_TYPES: Record<string, Record<string, string>> = {
  tenants: { id: 'int' },
  institutions: { id: 'int', tenant_id: 'int' },
  users: { id: 'int', tenant_id: 'int' },
  user_institutions: { user_id: 'int', institution_id: 'int' },
  certificates: { id: 'int', tenant_id: 'int', predecessor_id: 'int' },
  renewals: { id: 'int', predecessor_id: 'int', successor_id: 'int' },
  audit_events: { id: 'int', tenant_id: 'int' },
};

export interface FillTarget {
  dialect: Dialect;
  /** The SQLite file or the PostgreSQL URL; the schema must already be migrated. */
  location: string;
}

export async function fillDatabase(target: FillTarget, authority: IssuingAuthority, p: FillPlan, log: (line: string) => void = () => {}): Promise<FillSummary> {
  const started = performance.now();
  const issuer = await authority.issuingFingerprint();
  const tpl = await templates(authority, p.now);
  const pop = plan(p);
  const sink = target.dialect === 'sqlite' ? sqliteSink(target.location) : await postgresSink(target.location, PG_TYPES);
  const iso = (ms: number) => new Date(ms).toISOString();
  const created = iso(p.now.getTime() - 7 * YEAR_MS);
  const nowMs = p.now.getTime();

  // Tenants, each with one 健診機関 and one administrator (one shared, real scrypt hash).
  const passwordHash = 'scrypt$16384$8$1$' + randomBytes(16).toString('base64') + '$' + randomBytes(32).toString('base64');
  const subjects: { text: string; der: string }[] = [];
  for (let start = 1; start <= p.tenants; start += BATCH) {
    const ids = Array.from({ length: Math.min(BATCH, p.tenants - start + 1) }, (_, k) => start + k);
    const tenantRows = ids.map((i) => [i, `T${String(i).padStart(6, '0')}`, `ベンチマーク医院${i}`, `office${i}@clinic${i}.example.jp`, created]);
    await sink.insert('tenants', ['id', 'code', 'name', 'contact_email', 'created_at'], tenantRows);
    await sink.insert('institutions', ['id', 'tenant_id', 'number', 'name', 'created_at'], ids.map((i) => [i, i, String(1000000000 + i), `ベンチマーク医院${i}本院`, created]));
    await sink.insert('users', ['id', 'tenant_id', 'login_id', 'password_hash', 'role', 'locked_at', 'created_at'], ids.map((i) => [i, i, 'admin', passwordHash, 'admin', null, created]));
    await sink.insert('user_institutions', ['user_id', 'institution_id'], ids.map((i) => [i, i]));
    for (const r of tenantRows) {
      const name = buildSubject({ tenantCode: r[1] as string, tenantName: r[2] as string });
      subjects.push({ text: name.toString(), der: Buffer.from(name.toArrayBuffer()).toString('base64') });
    }
  }
  log(`tenants: ${p.tenants}`);

  // Certificates, in id (= issue time) order.
  const certColumns = ['id', 'serial', 'tenant_id', 'subject', 'subject_der', 'label', 'key_type', 'fingerprint_sha256', 'not_before', 'not_after', 'status', 'revoked_at', 'revocation_reason', 'predecessor_id', 'issued_via', 'issuer_fingerprint', 'pem', 'created_at'];
  const serialHex = (idx: number) => pop.serials.subarray(idx * 16, idx * 16 + 16).toString('hex').replace(/^0+/, '');
  for (let start = 0; start < pop.n; start += BATCH) {
    const rows: unknown[][] = [];
    for (let idx = start; idx < Math.min(pop.n, start + BATCH); idx++) {
      const serial = pop.serials.subarray(idx * 16, idx * 16 + 16);
      const t = tpl.get(`${pop.rsa[idx] ? 'rsa2048' : 'p256'}:${(serial[0]! & 0x80) !== 0}`)!;
      const der = Buffer.from(t.der);
      serial.copy(der, t.serialOffset);
      const fp = createHash('sha256').update(der).digest('hex');
      const nb = pop.notBefore[idx]!;
      const revoked = !Number.isNaN(pop.revokedAt[idx]!);
      const s = subjects[pop.tenant[idx]! - 1]!;
      rows.push([
        idx + 1,
        serialHex(idx),
        pop.tenant[idx],
        s.text,
        s.der,
        null,
        t.keyType,
        fp,
        iso(nb - 5 * 60_000),
        iso(nb - 5 * 60_000 + VALIDITY_MS),
        revoked ? 'revoked' : 'active',
        revoked ? iso(pop.revokedAt[idx]!) : null,
        revoked ? REASONS[pop.reason[idx]!] : null,
        pop.predecessor[idx] || null,
        pop.predecessor[idx] ? 'renewal' : 'operator',
        issuer,
        pemEncode(der, 'CERTIFICATE'),
        iso(nb),
      ]);
    }
    await sink.insert('certificates', certColumns, rows);
    if ((start / BATCH) % 40 === 0) log(`certificates: ${Math.min(pop.n, start + BATCH)} / ${pop.n}`);
  }

  // Renewals: one per generation-2 certificate.
  let renewals = 0;
  const sealedSize = 7500; // two RSA .p12 profiles and the password, sealed (see renewal/package-vault.ts)
  for (let start = 0; start < pop.n; start += BATCH) {
    const rows: unknown[][] = [];
    for (let idx = start; idx < Math.min(pop.n, start + BATCH); idx++) {
      if (!pop.predecessor[idx]) continue;
      const at = pop.notBefore[idx]!;
      const expires = at + 7 * DAY_MS;
      const kept = expires > nowMs;
      rows.push([
        ++renewals,
        pop.predecessor[idx],
        idx + 1,
        randomBytes(24).toString('base64url'),
        kept ? ['v1', randomBytes(12).toString('base64'), randomBytes(16).toString('base64'), randomBytes(sealedSize).toString('base64')].join('.') : null,
        iso(expires),
        iso(at),
        kept && Math.random() < 0.5 ? null : iso(at + Math.random() * 7 * DAY_MS),
        kept ? null : iso(expires),
      ]);
    }
    if (rows.length) await sink.insert('renewals', ['id', 'predecessor_id', 'successor_id', 'download_id', 'package_sealed', 'package_expires_at', 'created_at', 'taken_up_at', 'wiped_at'], rows);
  }
  log(`renewals: ${renewals}`);

  // The audit chain: every issuance and every revocation, in time order.
  const revocations = Array.from({ length: pop.n }, (_, i) => i).filter((i) => !Number.isNaN(pop.revokedAt[i]!)).sort((a, b) => pop.revokedAt[a]! - pop.revokedAt[b]!);
  let prev = GENESIS_HASH;
  let events = 0;
  let ri = 0;
  let ii = 0;
  let batch: unknown[][] = [];
  const push = async (e: { at: string; actor: string; action: string; tenant_id: number; target: string; details: string }) => {
    const hash = eventHash(prev, e);
    batch.push([++events, e.at, e.actor, e.action, e.tenant_id, e.target, e.details, prev, hash]);
    prev = hash;
    if (batch.length >= BATCH) {
      await sink.insert('audit_events', ['id', 'at', 'actor', 'action', 'tenant_id', 'target', 'details', 'prev_hash', 'hash'], batch);
      batch = [];
    }
  };
  while (ii < pop.n || ri < revocations.length) {
    const issueAt = ii < pop.n ? pop.notBefore[ii]! : Infinity;
    const revokeAt = ri < revocations.length ? pop.revokedAt[revocations[ri]!]! : Infinity;
    if (issueAt <= revokeAt) {
      const idx = ii++;
      const serial = serialHex(idx);
      const pred = pop.predecessor[idx]!;
      await push({
        at: iso(issueAt),
        actor: pred ? `cert:${serialHex(pred - 1)}` : 'operator:ops',
        action: 'certificate.issued',
        tenant_id: pop.tenant[idx]!,
        target: `certificate:${serial}`,
        details: JSON.stringify({ serial, notAfter: iso(issueAt - 5 * 60_000 + VALIDITY_MS), keyType: pop.rsa[idx] ? 'rsa2048' : 'p256', via: pred ? 'renewal' : 'operator', predecessor: pred || null }),
      });
    } else {
      const idx = revocations[ri++]!;
      const serial = serialHex(idx);
      await push({ at: iso(revokeAt), actor: 'operator:ops', action: 'certificate.revoked', tenant_id: pop.tenant[idx]!, target: `certificate:${serial}`, details: JSON.stringify({ serial, reason: REASONS[pop.reason[idx]!] }) });
    }
  }
  if (batch.length) await sink.insert('audit_events', ['id', 'at', 'actor', 'action', 'tenant_id', 'target', 'details', 'prev_hash', 'hash'], batch);
  log(`audit events: ${events}`);
  await sink.finish();
  // The chain head: written through the same path the application reads.
  await setAuditHead(target, prev, events);
  return { certificates: pop.n, revoked: revocations.length, tenants: p.tenants, renewals, auditEvents: events, seconds: (performance.now() - started) / 1000 };
}

async function setAuditHead(target: FillTarget, hash: string, count: number): Promise<void> {
  if (target.dialect === 'sqlite') {
    const db = new Sqlite(target.location);
    db.prepare('update audit_head set hash = ?, count = ? where id = 1').run(hash, count);
    db.close();
    return;
  }
  const client = new pg.Client({ connectionString: target.location });
  await client.connect();
  await client.query('update audit_head set hash = $1, count = $2 where id = 1', [hash, count]);
  await client.end();
}

/** Fingerprint → DER of a filled certificate, read back from its PEM (what a client would present). */
export function derOfPem(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
}
