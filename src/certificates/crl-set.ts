import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import type { CaSet } from '../ca/hierarchy.js';
import { crlName } from '../ca/generations.js';
import { externalCrlName } from '../ca/external.js';
import { currentCrl, currentCrlNumber, publishCrl, type CrlDeps, type PublishedCrl } from './crl.js';

/**
 * Every CRL Kenshin publishes: one per issuing CA generation (a retired CA's certificates are
 * valid until they expire, so its CRL must stay fresh and signed by its own key) and the root's,
 * which lists revoked issuing CAs (normally none) and exists because nginx's `ssl_crl` checks
 * every CA in the chain. All are refreshed by the same housekeeping (currentCrls).
 */

/**
 * The root CRL changes only if an issuing CA is ever revoked, so it may live longer than the
 * issuing CRLs (2 days): a proxy whose bundle refresh stopped keeps accepting clients for a
 * month rather than two days. It is still re-signed daily, like the others.
 */
export const ROOT_CRL_VALIDITY_MS = 30 * DAY_MS;

export interface CrlSource {
  /** The file name under /crl/ without extension: "root", "issuing" (generation 1), "issuing-N", "external-<id>". */
  name: string;
  /** The root's (revoked issuing CAs), an issuing generation's, or an adopted CA's (its certificates from the old system). */
  kind: 'root' | 'issuing' | 'adopted';
  /** The issuing CA generation; null for the root and adopted CAs. */
  generation: number | null;
  current: boolean;
  authority: CrlDeps['authority'];
  validityMs?: number;
}

export interface NamedCrl {
  name: string;
  generation: number | null;
  crl: PublishedCrl;
}

/** Root first, then the issuing generations oldest first: the order of the bundle. */
export function crlSources(cas: CaSet): CrlSource[] {
  return [
    ...(cas.root ? [{ name: 'root', kind: 'root' as const, generation: null, current: false, authority: cas.root, validityMs: ROOT_CRL_VALIDITY_MS }] : []),
    ...cas.generations.map((g) => ({ name: crlName(g.generation), kind: 'issuing' as const, generation: g.generation, current: g.current, authority: g.authority })),
    // An adopted CA's certificates are still in the field: its CRL, signed with its own key, lists
    // the ones revoked here (and those revoked by the old system, imported with their dates).
    ...cas.external.flatMap((e) => (e.authority ? [{ name: externalCrlName(e.id), kind: 'adopted' as const, generation: null, current: false, authority: e.authority }] : [])),
  ];
}

interface Deps {
  db: Db;
  clock: Clock;
  cas: CaSet;
}

function depsOf(d: Deps, s: CrlSource): CrlDeps {
  return { db: d.db, clock: d.clock, authority: s.authority, ...(s.validityMs ? { validityMs: s.validityMs } : {}) };
}

/** One CRL by name, regenerated first when stale; undefined for a name no CA here has. */
export async function currentCrlNamed(deps: Deps, name: string): Promise<NamedCrl | undefined> {
  const source = crlSources(deps.cas).find((s) => s.name === name);
  return source && { name: source.name, generation: source.generation, crl: await currentCrl(depsOf(deps, source)) };
}

/**
 * The number currentCrlNamed would return when that is the stored CRL (fresh, listing every
 * revocation), without reading its bytes; undefined when it would publish a new one or no CA has
 * that name.
 */
export async function currentCrlNumberNamed(deps: Deps, name: string): Promise<number | undefined> {
  const source = crlSources(deps.cas).find((s) => s.name === name);
  return source && currentCrlNumber(depsOf(deps, source));
}

/** The number of the stored CRL of one name (one indexed row, not its bytes): has a new one been published? */
export async function storedCrlNumber(deps: Deps, name: string): Promise<number | undefined> {
  const source = crlSources(deps.cas).find((s) => s.name === name);
  if (!source) return undefined;
  const row = await deps.db.selectFrom('crls').select('number').where('issuer_fingerprint', '=', await source.authority.issuingFingerprint()).executeTakeFirst();
  return row?.number;
}

/** Every CRL, each regenerated when stale (a revocation since, or a day old). */
export async function currentCrls(deps: Deps): Promise<NamedCrl[]> {
  const out: NamedCrl[] = [];
  for (const s of crlSources(deps.cas)) out.push({ name: s.name, generation: s.generation, crl: await currentCrl(depsOf(deps, s)) });
  return out;
}

/**
 * After a revocation: publishes a new CRL for each CA that issued one of these certificates (an
 * old-generation certificate goes on the old CA's CRL, signed by the old CA's key). A CA this
 * process has not loaded (rotated by another process since it started) is skipped; the
 * housekeeping of a restarted `serve` publishes it.
 */
export async function publishCrlsFor(deps: Deps, serials: string[]): Promise<NamedCrl[]> {
  if (serials.length === 0) return [];
  const issuers = await deps.db.selectFrom('certificates').select('issuer_fingerprint').distinct().where('serial', 'in', serials).execute();
  const wanted = new Set(issuers.map((r) => r.issuer_fingerprint));
  const out: NamedCrl[] = [];
  for (const s of crlSources(deps.cas)) {
    if (s.kind === 'root' || !wanted.has(await s.authority.issuingFingerprint())) continue;
    out.push({ name: s.name, generation: s.generation, crl: await publishCrl(depsOf(deps, s)) });
  }
  return out;
}

/** The PEM concatenation of CRLs: what nginx `ssl_crl` reads (it needs one for every CA in the chain). */
export function crlBundlePem(crls: NamedCrl[], externalPems: readonly string[] = []): string {
  return crls.map((c) => c.crl.pem.trimEnd() + '\n').join('') + externalPems.join('');
}
