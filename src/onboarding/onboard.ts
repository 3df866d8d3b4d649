import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from '../db/database.js';
import type { AnyKeyType } from '../ca/keys.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';
import type { PackageVault } from '../renewal/package-vault.js';
import { issueCertificate, type CertificateDeps } from '../certificates/service.js';
import { completeHandover, holdHandover } from '../certificates/handover.js';
import { addInstitution, addTenant, generateLoginPassword } from '../tenancy/service.js';
import { hashPasswords } from '../identity/passwords.js';
import { tenantCodeIs, tenantCodeKey } from '../db/tenant-code.js';
import { appendAudit } from '../audit/log.js';
import { Refusal } from '../errors.js';
import { writeFileAtomic } from '../atomic-file.js';
import { formatRowError, type OnboardRow, type RowError } from './rows.js';
import { writeDeliverySheets, type Sheet } from './delivery-sheets.js';
import { displaySerial } from '../ca/serial.js';

/**
 * `kenshin onboard`: from a checked CSV (rows.ts) to certificates, .p12 files, one PDF of delivery
 * sheets and a CSV of what was done. The order makes every crash recoverable by running the same
 * command again:
 *
 *   1. everything is checked against the database first; one bad row refuses the run (unless the
 *      operator chose to skip bad rows), with nothing created;
 *   2. missing tenants and 健診機関 are created (no secrets in them);
 *   3. missing users are created in ONE transaction with their initial passwords sealed
 *      (onboarding_users), so a user never exists without a password someone can print;
 *   4. each row's certificate is issued with its .p12 and password sealed (the handover, as for
 *      `kenshin cert issue`) and the row → certificate link, in the issuing transaction: a re-run
 *      finds the row done and issues nothing twice;
 *   5. the .p12 files, the PDF and the result CSV are written from the seals;
 *   6. only then are the seals wiped (handed over, audited).
 */

export interface OnboardDeps extends CertificateDeps {
  vault: PackageVault;
}

export interface OnboardOptions {
  file: string;
  outDir: string;
  keyType: AnyKeyType;
  profile: Pkcs12Profile;
  dryRun: boolean;
  continueOnError: boolean;
  actor: string;
  portalUrl: string;
  operatorContact: string | undefined;
  font?: string | undefined;
  /** Parallel issues in flight (the mint pool's workers do the CPU work). */
  concurrency: number;
  /**
   * Initial passwords hashed at once (default: the cores). In `kenshin serve` fewer, so the
   * logins of everyone else never queue behind a whole upload's hashes (passwords.ts).
   */
  hashesAtOnce?: number;
  progress?(done: number, total: number): void;
  /**
   * Throws when this run may no longer write (the console's job was taken over by another process,
   * or marked interrupted at shutdown): asked before each step, each certificate, each file and each
   * seal wiped, so two runs never both deliver. Cheap: it reads the database at most once a second.
   */
  claim?(): Promise<void>;
}

export interface OnboardReport {
  dryRun: boolean;
  rows: number;
  /** Rows left out (--continue-on-error), with what is wrong: `message` is the whole "file:line:column (name): …" line. */
  skippedRows: { line: number; column: number | undefined; name: string | undefined; problem: string; message: string }[];
  tenantsCreated: string[];
  institutionsCreated: string[];
  usersCreated: string[];
  issued: number;
  alreadyDone: number;
  files: { p12: number; pdf: string | undefined; pages: number; csv: string | undefined };
  /** Wall-clock seconds per step (checking, tenants, users' password hashes, certificates, files, PDF, wipe): where a run's time goes. */
  seconds: Record<string, number>;
}

interface Plan {
  errors: RowError[];
  rows: OnboardRow[];
  newTenants: Map<string, OnboardRow>;
  newInstitutions: Map<string, OnboardRow>;
  /** tenant key | login (lower) → the user to create. */
  newUsers: Map<string, { tenantCode: string; loginId: string; role: 'admin' | 'user'; institutions: Set<string> }>;
  /** Existing users that need a row's 健診機関 added. */
  links: { tenantCode: string; loginId: string; institution: string }[];
  done: Map<string, number>;
}

/** Checks the rows against the database: names that differ, 機関番号 of another tenant, roles that differ. */
async function plan(db: Db, file: string, rows: OnboardRow[]): Promise<Plan> {
  const errors: RowError[] = [];
  const p: Plan = { errors, rows: [], newTenants: new Map(), newInstitutions: new Map(), newUsers: new Map(), links: [], done: new Map() };
  const tenants = new Map<string, { id: number; code: string; name: string } | undefined>();
  for (const r of rows) {
    const before = errors.length;
    const err = (name: string, column: number | undefined, message: string) => errors.push({ file, line: r.line, column, name, message });
    const tk = tenantCodeKey(r.tenantCode);
    if (!tenants.has(tk)) tenants.set(tk, await db.selectFrom('tenants').select(['id', 'code', 'name']).where(tenantCodeIs('code'), '=', tk).executeTakeFirst());
    const tenant = tenants.get(tk);
    if (tenant && tenant.name !== r.tenantName) err('tenant_name', undefined, `tenant ${tenant.code} is already registered as "${tenant.name}"`);
    const inst = await db.selectFrom('institutions').innerJoin('tenants', 'tenants.id', 'institutions.tenant_id').select(['institutions.name', 'tenants.code']).where('institutions.number', '=', r.institutionNumber).executeTakeFirst();
    if (inst && tenantCodeKey(inst.code) !== tk) err('institution_number', undefined, `機関番号 ${r.institutionNumber} is already registered for another tenant`);
    else if (inst && inst.name !== r.institutionName) err('institution_name', undefined, `機関番号 ${r.institutionNumber} is already registered as "${inst.name}"`);
    for (const u of r.users) {
      const existing = tenant ? await db.selectFrom('users').select(['id', 'role', 'login_id']).where('tenant_id', '=', tenant.id).where('login_id', '=', u.loginId).executeTakeFirst() : undefined;
      if (existing && existing.role !== u.role) err('users', undefined, `user ${u.loginId} already exists as ${existing.role}`);
    }
    if (errors.length > before) continue;
    p.rows.push(r);
    const done = await db.selectFrom('onboarding_rows').select('certificate_id').where('row_key', '=', r.key).executeTakeFirst();
    if (done) p.done.set(r.key, done.certificate_id);
    if (!tenant && !p.newTenants.has(tk)) p.newTenants.set(tk, r);
    if (!inst && !p.newInstitutions.has(r.institutionNumber)) p.newInstitutions.set(r.institutionNumber, r);
    for (const u of r.users) {
      const uk = `${tk}|${u.loginId.toLowerCase()}`;
      const existing = tenant ? await db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('login_id', '=', u.loginId).executeTakeFirst() : undefined;
      if (existing) p.links.push({ tenantCode: r.tenantCode, loginId: u.loginId, institution: r.institutionNumber });
      else {
        const nu = p.newUsers.get(uk) ?? { tenantCode: r.tenantCode, loginId: u.loginId, role: u.role, institutions: new Set<string>() };
        nu.institutions.add(r.institutionNumber);
        p.newUsers.set(uk, nu);
      }
    }
  }
  return p;
}

function p12Name(row: OnboardRow, serial: string): string {
  return `${row.tenantCode}_${row.institutionNumber}_${serial}.p12`;
}

/** Runs a bounded number of async jobs at a time. */
async function inParallel<T>(items: T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await job(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function csvCell(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export async function onboard(deps: OnboardDeps, rows: OnboardRow[], fileErrors: RowError[], o: OnboardOptions): Promise<OnboardReport> {
  const seconds: Record<string, number> = {};
  let mark = performance.now();
  const step = (name: string) => {
    const now = performance.now();
    seconds[name] = Math.round(now - mark) / 1000;
    mark = now;
  };
  const p = await plan(deps.db, o.file, rows);
  step('check');
  const errors = [...fileErrors, ...p.errors].sort((a, b) => a.line - b.line);
  if (errors.length && !o.continueOnError) {
    const shown = errors.slice(0, 50).map((e) => `  ${formatRowError(e)}`);
    throw new Refusal('invalid_input', `nothing created: ${errors.length} problem${errors.length > 1 ? 's' : ''} in ${o.file} (fix them and run again, or pass --continue-on-error to skip those rows):\n${shown.join('\n')}${errors.length > 50 ? `\n  … and ${errors.length - 50} more` : ''}`, { field: 'csv', details: { errors } });
  }
  const report: OnboardReport = {
    dryRun: o.dryRun,
    rows: p.rows.length,
    skippedRows: errors.map((e) => ({ line: e.line, column: e.column, name: e.name, problem: e.message, message: formatRowError(e) })),
    tenantsCreated: [...p.newTenants.values()].map((r) => r.tenantCode),
    institutionsCreated: [...p.newInstitutions.keys()],
    usersCreated: [...p.newUsers.values()].map((u) => `${u.tenantCode}/${u.loginId}`),
    issued: 0,
    alreadyDone: p.done.size,
    files: { p12: 0, pdf: undefined, pages: 0, csv: undefined },
    seconds,
  };
  if (o.dryRun) {
    report.issued = p.rows.length - p.done.size;
    return report;
  }
  fs.mkdirSync(o.outDir, { recursive: true, mode: 0o700 });

  // 2. Tenants and 健診機関 (each audited by the tenancy service).
  await o.claim?.();
  const tenancy = { db: deps.db, clock: deps.clock };
  for (const r of p.newTenants.values()) await addTenant(tenancy, { code: r.tenantCode, name: r.tenantName, ...(r.contactEmail ? { email: r.contactEmail } : {}) }, o.actor);
  for (const r of p.newInstitutions.values()) await addInstitution(tenancy, { tenantCode: r.tenantCode, number: r.institutionNumber, name: r.institutionName }, o.actor);

  step('tenants');
  // 3. Users with their initial passwords sealed, in one transaction.
  const users = [...p.newUsers.values()].map((u) => ({ ...u, password: generateLoginPassword() }));
  const hashes = await hashPasswords(users.map((u) => u.password), o.hashesAtOnce ?? os.availableParallelism());
  const hashed = users.map((u, i) => ({ ...u, hash: hashes[i]! }));
  const now = deps.clock.now();
  await o.claim?.();
  await deps.db.transaction().execute(async (trx) => {
    const tenantId = async (code: string) => (await trx.selectFrom('tenants').select('id').where(tenantCodeIs('code'), '=', tenantCodeKey(code)).executeTakeFirstOrThrow()).id;
    const institutionId = async (number: string) => (await trx.selectFrom('institutions').select('id').where('number', '=', number).executeTakeFirstOrThrow()).id;
    for (const u of hashed) {
      const tid = await tenantId(u.tenantCode);
      const user = await trx.insertInto('users').values({ tenant_id: tid, login_id: u.loginId, password_hash: u.hash, role: u.role, locked_at: null, created_at: now.toISOString() }).returning('id').executeTakeFirstOrThrow();
      for (const n of u.institutions) await trx.insertInto('user_institutions').values({ user_id: user.id, institution_id: await institutionId(n) }).execute();
      await trx.insertInto('onboarding_users').values({ user_id: user.id, password_sealed: deps.vault.seal({ password: u.password, pkcs12: {} }), created_at: now.toISOString() }).execute();
      await appendAudit(trx, now, { actor: o.actor, action: 'user.created', tenantId: tid, target: `user:${u.loginId}`, details: { loginId: u.loginId, role: u.role, institutions: [...u.institutions], via: 'onboard' } });
    }
    for (const l of p.links) {
      const tid = await tenantId(l.tenantCode);
      const user = await trx.selectFrom('users').select('id').where('tenant_id', '=', tid).where('login_id', '=', l.loginId).executeTakeFirstOrThrow();
      const iid = await institutionId(l.institution);
      await trx.insertInto('user_institutions').values({ user_id: user.id, institution_id: iid }).onConflict((oc) => oc.columns(['user_id', 'institution_id']).doNothing()).execute();
    }
  });

  step('users');
  // 4. One certificate per row not done yet, its .p12 and password sealed with it.
  const todo = p.rows.filter((r) => !p.done.has(r.key));
  let finished = 0;
  o.progress?.(0, todo.length);
  await inParallel(todo, o.concurrency, async (r) => {
    await o.claim?.();
    await issueCertificate(
      deps,
      { tenantCode: r.tenantCode, keyType: o.keyType, profile: o.profile, label: r.label, validity: { kind: 'default' }, actor: o.actor },
      {
        inTransaction: async (trx, row, minted, at) => {
          await holdHandover(trx, deps.vault, row, minted, o.profile, path.join(o.outDir, p12Name(r, row.serial)), at);
          await trx.insertInto('onboarding_rows').values({ row_key: r.key, certificate_id: row.id, created_at: at.toISOString() }).execute();
        },
      },
    );
    report.issued++;
    o.progress?.(++finished, todo.length);
  });

  step('certificates');
  // 5. Files from the seals: every row of this CSV, whether issued now or by an interrupted run.
  const sheets: Sheet[] = [];
  const results: string[] = ['line,tenant_code,institution_number,label,serial,not_after,p12_file,users_created'];
  const handedOver: { id: number; serial: string; tenant_id: number; file: string }[] = [];
  const printedUsers: number[] = [];
  const usersShown = new Set<number>();
  for (const r of p.rows) {
    // SQLite answers synchronously and each row's .p12 is fsync'd on this thread (1–10 ms): a turn
    // of the event loop before every row, or the console's job holds off every request of the
    // process (every 50 rows was up to half a second) and the job's own heartbeat.
    await yieldToLoop();
    await o.claim?.();
    const link = await deps.db.selectFrom('onboarding_rows').select('certificate_id').where('row_key', '=', r.key).executeTakeFirstOrThrow();
    const cert = await deps.db.selectFrom('certificates').select(['id', 'serial', 'tenant_id', 'not_after']).where('id', '=', link.certificate_id).executeTakeFirstOrThrow();
    const h = await deps.db.selectFrom('handovers').select(['package_sealed', 'output_file']).where('certificate_id', '=', cert.id).executeTakeFirstOrThrow();
    let password: string | undefined;
    if (h.package_sealed) {
      const c = deps.vault.open(h.package_sealed);
      password = c.password;
      writeFileAtomic(h.output_file, (c.pkcs12[o.profile] ?? Object.values(c.pkcs12)[0])!, 0o600);
      handedOver.push({ id: cert.id, serial: cert.serial, tenant_id: cert.tenant_id, file: h.output_file });
      report.files.p12++;
    }
    // A user's initial password goes on the slip of the first row of this run that names them.
    const users: Sheet['users'] = [];
    for (const u of r.users) {
      const user = await deps.db.selectFrom('users').leftJoin('onboarding_users', 'onboarding_users.user_id', 'users.id').select(['users.id', 'onboarding_users.password_sealed']).where('users.tenant_id', '=', cert.tenant_id).where('users.login_id', '=', u.loginId).executeTakeFirstOrThrow();
      const first = !usersShown.has(user.id);
      usersShown.add(user.id);
      const pw = first && user.password_sealed ? deps.vault.open(user.password_sealed).password : undefined;
      if (pw) printedUsers.push(user.id);
      users.push({ loginId: u.loginId, role: u.role, password: pw });
    }
    const file = path.basename(h.output_file);
    sheets.push({ tenantCode: r.tenantCode, tenantName: r.tenantName, institutionNumber: r.institutionNumber, institutionName: r.institutionName, label: r.label, serial: cert.serial, notAfter: new Date(cert.not_after), p12File: file, password, users });
    results.push([String(r.line), r.tenantCode, r.institutionNumber, r.label ?? '', displaySerial(cert.serial), cert.not_after, file, users.filter((u) => u.password).map((u) => u.loginId).join(' ')].map(csvCell).join(','));
  }
  if (handedOver.length === 0 && printedUsers.length === 0 && report.issued === 0) {
    // Everything was delivered by an earlier run: its PDF and files stay as they are.
    return report;
  }
  step('files');
  await o.claim?.();
  const pdf = path.join(o.outDir, 'delivery-sheets.pdf');
  report.files.pages = (await writeDeliverySheets(pdf, sheets, { portalUrl: o.portalUrl, operatorContact: o.operatorContact, font: o.font, ...(o.claim ? { beforeRename: o.claim } : {}) })).pages;
  report.files.pdf = pdf;
  const csv = path.join(o.outDir, 'onboard-result.csv');
  writeFileAtomic(csv, results.join('\n') + '\n', 0o600);
  report.files.csv = csv;

  step('pdf');
  // 6. Delivered: wipe the seals.
  await o.claim?.();
  for (const h of handedOver) {
    // A transaction per seal (its audit event with it): a turn before each, as for the files.
    await yieldToLoop();
    // Before every seal: a run stopped at shutdown must not wipe one more password.
    await o.claim?.();
    await completeHandover({ db: deps.db, clock: deps.clock }, h, h.file, o.actor, 'certificate.handed_over');
  }
  const at = deps.clock.now();
  await o.claim?.();
  await deps.db.transaction().execute(async (trx) => {
    if (printedUsers.length) await trx.updateTable('onboarding_users').set({ password_sealed: null }).where('user_id', 'in', printedUsers).execute();
    await appendAudit(trx, at, { actor: o.actor, action: 'onboarding.delivered', target: `onboarding:${path.basename(o.file)}`, details: { file: o.file, rows: p.rows.length, issued: report.issued, resumed: p.done.size, pdf, pages: report.files.pages, users: printedUsers.length } });
  });
  step('wipe');
  return report;
}

export const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
