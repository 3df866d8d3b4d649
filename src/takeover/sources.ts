import fs from 'node:fs';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { normaliseSerial } from '../ca/serial.js';
import { invalidInput } from '../errors.js';

/**
 * Where `kenshin cert import` finds the certificates already in the field, read into one shape:
 * one candidate per certificate, with the place it came from (file and line) so every refusal can
 * name it. Nothing here decides whether a candidate is acceptable; import-certificates.ts does.
 */
export interface Candidate {
  /** "index.txt:3", "certs/c1.pem", "certs/all.pem#2": where the operator looks it up. */
  source: string;
  der: Uint8Array | undefined;
  /** Why there is no DER (file missing, unparsable PEM), else undefined. */
  unreadable?: string;
  /** From an OpenSSL CA database: what the old system recorded. */
  index?: { status: 'V' | 'R' | 'E'; serial: string; revokedAt?: Date; reason?: string };
}

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function derOfPem(block: string): Uint8Array {
  return new Uint8Array(Buffer.from(block.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
}

/** PEM (one or more certificates) or DER files, and directories of them (*.pem, *.crt, *.cer, *.der). */
export function candidatesFromFiles(inputs: string[]): Candidate[] {
  const out: Candidate[] = [];
  const files: string[] = [];
  for (const input of inputs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(input);
    } catch {
      throw invalidInput('files', `${input} does not exist`);
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(input).sort()) if (/\.(pem|crt|cer|der)$/i.test(name)) files.push(path.join(input, name));
    } else files.push(input);
  }
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    const text = bytes.toString('latin1');
    if (text.includes('-----BEGIN')) {
      const blocks = pemBlocks(text);
      if (blocks.length === 0) out.push({ source: file, der: undefined, unreadable: 'no PEM certificate in the file' });
      blocks.forEach((b, i) => out.push({ source: blocks.length > 1 ? `${file}#${i + 1}` : file, der: derOfPem(b) }));
    } else out.push({ source: file, der: new Uint8Array(bytes) });
  }
  return out;
}

/** index.txt dates: YYMMDDHHMMSSZ (UTCTime, years 1950–2049) or YYYYMMDDHHMMSSZ. */
function indexDate(s: string): Date | undefined {
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  let year = Number(m[1]);
  if (m[1]!.length === 2) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/**
 * An OpenSSL CA database (`openssl ca`): index.txt, one line per certificate —
 *   status  expiry  revocation[,reason]  serial  filename  subject      (tab-separated)
 * — with the certificates in newcerts/<SERIAL>.pem. A revoked line (R) keeps its date and reason.
 */
export function candidatesFromOpensslIndex(indexFile: string, newcertsDir?: string): Candidate[] {
  let text: string;
  try {
    text = fs.readFileSync(indexFile, 'utf8');
  } catch (e) {
    throw invalidInput('from-openssl-index', `cannot read ${indexFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const dir = newcertsDir ?? path.join(path.dirname(indexFile), 'newcerts');
  if (!fs.existsSync(dir)) throw invalidInput('newcerts', `${dir} does not exist: give the directory of the CA's certificates with --newcerts`);
  const out: Candidate[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const source = `${indexFile}:${i + 1}`;
    const f = line.split('\t');
    const status = f[0];
    const serialHex = f[3];
    if (f.length < 6 || (status !== 'V' && status !== 'R' && status !== 'E') || !serialHex || !/^[0-9A-Fa-f]+$/.test(serialHex)) {
      out.push({ source, der: undefined, unreadable: 'not an index.txt line (status, expiry, revocation, serial, file, subject)' });
      return;
    }
    let revokedAt: Date | undefined;
    let reason: string | undefined;
    if (status === 'R') {
      const [date, r] = f[2]!.split(',');
      revokedAt = indexDate(date ?? '');
      if (!revokedAt) {
        out.push({ source, der: undefined, unreadable: `revocation date "${f[2]}" is not YYMMDDHHMMSSZ` });
        return;
      }
      reason = r;
    }
    const index = { status, serial: normaliseSerial(serialHex)!, ...(revokedAt ? { revokedAt } : {}), ...(reason ? { reason } : {}) } as Candidate['index'];
    const named = f[4] && f[4] !== 'unknown' ? path.resolve(dir, f[4]) : undefined;
    const file = [named, path.join(dir, `${serialHex.toUpperCase()}.pem`), path.join(dir, `${serialHex.toLowerCase()}.pem`)].find((p) => p && fs.existsSync(p));
    if (!file) {
      out.push({ source, der: undefined, unreadable: `no certificate file for serial ${serialHex} in ${dir}`, index });
      return;
    }
    const blocks = pemBlocks(fs.readFileSync(file, 'latin1'));
    out.push(blocks.length ? { source, der: derOfPem(blocks[0]!), index } : { source, der: undefined, unreadable: `${file} holds no PEM certificate`, index });
  });
  return out;
}

/** Which tenant (and label) each certificate belongs to, keyed by serial or by SHA-256 fingerprint. */
export interface TenantMap {
  bySerial: Map<string, { tenant: string; label?: string; line: number }>;
  byFingerprint: Map<string, { tenant: string; label?: string; line: number }>;
  file: string;
}

/** A CSV with a header: `serial` or `fingerprint`, `tenant`, optional `label`. */
export function readTenantMap(file: string): TenantMap {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (e) {
    throw invalidInput('tenants', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let rows: string[][];
  try {
    rows = parseCsv(text, { skip_empty_lines: true, trim: true, relax_column_count: true }) as string[][];
  } catch (e) {
    throw invalidInput('tenants', `${file}: ${(e as Error).message}`);
  }
  const header = (rows.shift() ?? []).map((h) => h.toLowerCase());
  const keyCol = header.indexOf('serial') >= 0 ? header.indexOf('serial') : header.indexOf('fingerprint');
  const tenantCol = header.indexOf('tenant');
  const labelCol = header.indexOf('label');
  if (keyCol < 0 || tenantCol < 0) throw invalidInput('tenants', `${file}:1: the header must name "serial" (or "fingerprint") and "tenant" columns, e.g. serial,tenant,label`);
  const bySerial = new Map<string, { tenant: string; label?: string; line: number }>();
  const byFingerprint = new Map<string, { tenant: string; label?: string; line: number }>();
  const isSerial = header[keyCol] === 'serial';
  rows.forEach((r, i) => {
    const line = i + 2;
    const rawKey = r[keyCol] ?? '';
    const tenant = r[tenantCol] ?? '';
    if (!tenant) throw invalidInput('tenants', `${file}:${line}: the tenant column is empty`);
    const label = labelCol >= 0 && r[labelCol] ? r[labelCol] : undefined;
    const entry = { tenant, line, ...(label ? { label } : {}) };
    if (isSerial) {
      const serial = normaliseSerial(rawKey);
      if (!serial) throw invalidInput('tenants', `${file}:${line}: "${rawKey.slice(0, 64)}" is not a hexadecimal serial`);
      if (bySerial.has(serial)) throw invalidInput('tenants', `${file}:${line}: serial ${serial} is already mapped on line ${bySerial.get(serial)!.line}`);
      bySerial.set(serial, entry);
    } else {
      const fp = rawKey.replace(/[:\s]/g, '').toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(fp)) throw invalidInput('tenants', `${file}:${line}: "${rawKey.slice(0, 100)}" is not a SHA-256 fingerprint (64 hex digits)`);
      if (byFingerprint.has(fp)) throw invalidInput('tenants', `${file}:${line}: this fingerprint is already mapped on line ${byFingerprint.get(fp)!.line}`);
      byFingerprint.set(fp, entry);
    }
  });
  return { bySerial, byFingerprint, file };
}
