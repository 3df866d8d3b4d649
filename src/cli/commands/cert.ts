import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { certificatePages, getCertificate, issueCertificate, listCertificatePage, reissueCertificate, revokeCertificate, REVOCATION_REASONS, type CertificateView, type IssueHooks, type RenewalSummary } from '../../certificates/service.js';
import type { ValidityRequest } from '../../certificates/validity.js';
import { Refusal, invalidInput, isRefusal } from '../../errors.js';
import { table } from '../output.js';
import type { KeyType, Pkcs12ProfileName } from '../../config.js';
import { publishCrlsFor } from '../../certificates/crl-set.js';
import { completeHandover, holdHandover, openHandover, pendingHandovers } from '../../certificates/handover.js';
import { claimP12Output, onInterrupt, type PendingP12 } from '../p12-file.js';
import { candidatesFromFiles, candidatesFromOpensslIndex, readTenantMap, type Candidate } from '../../takeover/sources.js';
import { importCertificates, type ImportReport, type TenantRule } from '../../takeover/import-certificates.js';
import { dataPaths } from '../../config.js';
import { requireInitialised } from '../../ca/hierarchy.js';

const ACTOR = 'cli';

function keyType(v: string | undefined, def: KeyType): KeyType {
  if (v === undefined) return def;
  if (v === 'rsa2048' || v === 'p256') return v;
  throw invalidInput('key', `expected rsa2048 or p256, got "${v}"`);
}

function profile(v: string | undefined, def: Pkcs12ProfileName): Pkcs12ProfileName {
  if (v === undefined) return def;
  if (v === 'compatible' || v === 'modern') return v;
  throw invalidInput('profile', `expected compatible or modern, got "${v}"`);
}

function validity(o: { validDays?: string; notBefore?: string; notAfter?: string }): ValidityRequest {
  if (o.validDays !== undefined && (o.notBefore !== undefined || o.notAfter !== undefined)) {
    throw invalidInput('valid-days', 'use either --valid-days or --not-before/--not-after, not both');
  }
  if (o.validDays !== undefined) {
    if (!/^\d+$/.test(o.validDays)) throw invalidInput('valid-days', `"${o.validDays}" is not a whole number of days`);
    return { kind: 'days', days: Number(o.validDays) };
  }
  if (o.notBefore !== undefined || o.notAfter !== undefined) {
    if (o.notBefore === undefined) throw invalidInput('not-before', 'is required with --not-after');
    if (o.notAfter === undefined) throw invalidInput('not-after', 'is required with --not-before');
    return { kind: 'explicit', notBefore: o.notBefore, notAfter: o.notAfter };
  }
  return { kind: 'default' };
}

const recoverHint = (serial: string) => `get its file and password with \`kenshin cert recover ${serial} --out FILE.p12\``;

function human(c: CertificateView & { renewal?: RenewalSummary | null }): string {
  const lines = [
    `serial:       ${c.serial}`,
    `tenant:       ${c.tenantCode} (${c.tenantName})`,
    `subject:      ${c.subject}`,
    `status:       ${c.status}${c.revocationReason ? ` (${c.revocationReason}, ${c.revokedAt})` : ''}`,
    `valid:        ${c.notBefore} → ${c.notAfter} (${c.daysLeft} days left)`,
    `key:          ${c.keyType}`,
    `fingerprint:  ${c.fingerprintSha256}`,
    `issued via:   ${c.issuedVia}`,
  ];
  if (c.label) lines.push(`label:        ${c.label}`);
  if (c.predecessorSerial) lines.push(`renews:       ${c.predecessorSerial}`);
  if (c.successorSerials.length) lines.push(`successors:   ${c.successorSerials.join(', ')}`);
  const r = c.renewal;
  if (r) {
    lines.push(`renewed:      ${r.createdAt}${r.takenUpAt ? `, new certificate in use since ${r.takenUpAt}` : ', new certificate not yet presented to the portal'}`);
    if (r.clientFetchedAt) lines.push(`desktop client fetched it: ${r.clientFetchedAt} (${r.clientAgent ?? 'unknown'})`);
  }
  return lines.join('\n');
}

function describeImport(r: ImportReport): string {
  const c = r.counts;
  const lines: string[] = [];
  for (const o of r.outcomes) {
    if (o.result === 'rejected' || o.result === 'skipped') lines.push(`  ${o.result.padEnd(8)} ${o.source}${o.serial ? ` (serial ${o.serial})` : ''}: ${o.reason}`);
    else if (o.result === 'revoked') lines.push(`  revoked  ${o.source} (serial ${o.serial}, ${o.tenant}): revoked by the old system since the last import`);
  }
  const verb = r.dryRun ? 'would import' : 'imported';
  const head =
    c.imported === 0 && c.revoked === 0
      ? `nothing to do: ${c.unchanged} already imported${c.skipped ? `, ${c.skipped} skipped` : ''}${c.rejected ? `, ${c.rejected} refused` : ''}${r.dryRun ? ' (dry run)' : ''}`
      : `${verb} ${c.imported} certificates${c.revoked ? `, ${r.dryRun ? 'would revoke' : 'revoked'} ${c.revoked}` : ''}${c.unchanged ? `, ${c.unchanged} already imported` : ''}${c.skipped ? `, ${c.skipped} skipped` : ''}${c.rejected ? `, ${c.rejected} refused (--continue-on-error)` : ''}` +
        (r.tenantsCreated.length ? `; ${r.dryRun ? 'would create' : 'created'} tenants ${r.tenantsCreated.join(', ')}` : '');
  const imported = r.outcomes.filter((o) => o.result === 'imported');
  const revokedImports = imported.filter((o) => o.result === 'imported' && o.status === 'revoked').length;
  return [
    head,
    ...(revokedImports ? [`  (${revokedImports} of them revoked by the old system: they are refused at login)`] : []),
    ...lines,
    ...(r.dryRun ? ['dry run: nothing was changed'] : imported.length ? ['They log in and renew like any other certificate from now on (restart `kenshin serve` if the CA was trusted just now).'] : []),
  ].join('\n');
}

export function registerCert(program: Command, io: CliIo, exit: ExitBox): void {
  const cert = program.command('cert').description('client certificates');
  cert
    .command('issue')
    .description('issue a client certificate for a tenant and write it as a password-protected .p12')
    .option('--tenant <CODE>', 'tenant code (required unless --reissue)')
    .option('--reissue <SERIAL>', 're-issue for this certificate (e.g. after it expired): same subject, linked to it')
    .requiredOption('--out <FILE.p12>', 'where to write the PKCS#12 file (must not exist)')
    .option('--profile <compatible|modern>', 'PKCS#12 profile: compatible (3DES/SHA-1, imports everywhere) or modern (AES-256/SHA-256)')
    .option('--key <rsa2048|p256>', 'key type')
    .option('--label <TEXT>', 'terminal label, added to the subject as OU')
    .option('--valid-days <N>', 'validity in days instead of the configured years')
    .option('--not-before <ISO>', 'explicit start (for migrating certificates and for tests)')
    .option('--not-after <ISO>', 'explicit end')
    .option('--json', 'JSON output')
    .action(async (o: { tenant?: string; reissue?: string; out: string; profile?: string; key?: string; label?: string; validDays?: string; notBefore?: string; notAfter?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime, config }) => {
        if (o.reissue !== undefined && (o.tenant !== undefined || o.label !== undefined)) throw invalidInput('reissue', 'takes the tenant and label from the certificate it replaces: leave out --tenant and --label');
        if (o.reissue === undefined && o.tenant === undefined) throw invalidInput('tenant', 'is required (or use --reissue SERIAL)');
        const req = {
          tenantCode: o.tenant ?? '',
          keyType: keyType(o.key, config.defaultKeyType),
          profile: profile(o.profile, config.defaultPkcs12Profile),
          label: o.label,
          validity: validity(o),
          actor: ACTOR,
        };
        const rt = await runtime();
        const deps = await rt.certificateDeps();
        const vault = rt.packageVault();
        // The order makes a crash at any instant recoverable: the finished file is written before
        // the commit; the commit registers the certificate with its file and password sealed
        // (handover.ts); then the file is linked into place, the password printed, the seal wiped.
        // The signal handlers come first: a signal right after the claim must not leave the temp file.
        let registered: string | undefined;
        let claimed: PendingP12 | undefined;
        const release = onInterrupt(() => {
          claimed?.abandon();
          io.stderr(registered ? `kenshin: interrupted after certificate ${registered} was registered: ${recoverHint(registered)}\n` : 'kenshin: interrupted; `kenshin cert recover` lists any certificate registered without its password printed\n');
        });
        try {
          const file = (claimed = claimP12Output(o.out));
          const hooks: IssueHooks = {
            beforeCommit: (m) => file.write(m.pkcs12),
            inTransaction: (trx, row, m, now) => holdHandover(trx, vault, row, m, req.profile, file.target, now),
          };
          let issued;
          try {
            issued = o.reissue !== undefined ? await reissueCertificate(deps, { ...req, serial: o.reissue }, hooks) : await issueCertificate(deps, req, hooks);
          } catch (e) {
            file.abandon();
            throw e;
          }
          registered = issued.serial;
          try {
            file.publish();
          } catch (e) {
            file.abandon();
            throw new Error(`certificate ${issued.serial} was issued, but ${file.target} could not be written (${(e as NodeJS.ErrnoException).code ?? 'error'}): ${recoverHint(issued.serial)}`);
          }
          out.result(
            { serial: issued.serial, subject: issued.row.subject, notBefore: issued.row.not_before, notAfter: issued.row.not_after, file: file.target, profile: req.profile, keyType: req.keyType, password: issued.password },
            () =>
              [
                `issued ${issued.serial} for ${issued.tenant.code} (${issued.row.subject})`,
                `valid until ${issued.row.not_after}`,
                `file:     ${file.target} (${req.profile}, ${req.keyType})`,
                `password: ${issued.password}`,
                'Hand the file and the password over separately; the password is not kept (only sealed until it was printed).',
              ].join('\n'),
          );
          await completeHandover({ db: rt.database.db, clock: rt.clock }, issued.row, file.target, ACTOR, 'certificate.handed_over');
        } finally {
          release();
        }
        const pending = await pendingHandovers(rt.database.db);
        if (pending.length) io.stderr(`kenshin: note: ${pending.length} certificate(s) were registered by an interrupted \`kenshin cert issue\` (or one still running) without their password printed: \`kenshin cert recover\` lists them\n`);
      }),
    );
  cert
    .command('recover')
    .description('after an interrupted `cert issue`: list the certificates whose password was not printed, or write one\'s file and print its password')
    .argument('[SERIAL]', 'serial number (hex); without it, list what can be recovered')
    .option('--out <FILE.p12>', 'where to write the PKCS#12 file (must not exist)')
    .option('--json', 'JSON output')
    .action(async (serial: string | undefined, o: { out?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        if (serial === undefined && o.out !== undefined) throw invalidInput('out', 'needs the SERIAL of the certificate to recover (`kenshin cert recover` lists them)');
        if (serial !== undefined && o.out === undefined) throw invalidInput('out', 'is required: where to write the certificate file');
        const rt = await runtime();
        if (serial === undefined) {
          const pending = await pendingHandovers(rt.database.db);
          out.result(pending, () =>
            pending.length === 0
              ? 'nothing to recover: every certificate issued by `kenshin cert issue` was handed over'
              : table(['SERIAL', 'TENANT', 'REGISTERED', 'WAS WRITING'], pending.map((p) => [p.serial, p.tenantCode, p.createdAt, p.outputFile])) + `\n\nkenshin cert recover SERIAL --out FILE.p12 writes one and prints its password`,
          );
          return;
        }
        const h = await openHandover({ db: rt.database.db, clock: rt.clock, vault: rt.packageVault() }, serial);
        let claimed: PendingP12 | undefined;
        const release = onInterrupt(() => claimed?.abandon());
        try {
          const file = (claimed = claimP12Output(o.out!));
          try {
            file.write(h.pkcs12);
            file.publish();
          } catch (e) {
            file.abandon();
            throw e;
          }
          out.result({ serial: h.row.serial, file: file.target, password: h.password }, () =>
            [`recovered ${h.row.serial} (${h.row.subject})`, `file:     ${file.target}`, `password: ${h.password}`, 'Hand the file and the password over separately.'].join('\n'),
          );
          // Wiped only after the print: a crash before this line leaves it recoverable again.
          await completeHandover({ db: rt.database.db, clock: rt.clock }, h.row, file.target, ACTOR, 'certificate.recovered');
        } finally {
          release();
        }
      }),
    );
  cert
    .command('list')
    .description('list certificates, soonest expiry first (every one, streamed a page at a time; or one page with --limit)')
    .option('--tenant <CODE>', 'only this tenant')
    .option('--expiring-within <DAYS>', 'only valid certificates expiring within DAYS days')
    .option('--search <TEXT>', 'a 機関番号, a serial or its beginning, a tenant code or part of a tenant name')
    .option('--limit <N>', 'one page of at most N (1-10000); the next page\'s cursor goes to stderr (or "next" in --json)')
    .option('--cursor <CURSOR>', 'the page after this cursor (from --limit)')
    .option('--csv', 'CSV on stdout (serial, tenant, status, not_after, days_left)')
    .option('--json', 'JSON output')
    .action(async (o: { tenant?: string; expiringWithin?: string; search?: string; limit?: string; cursor?: string; csv?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        if (o.expiringWithin !== undefined && !/^\d+$/.test(o.expiringWithin)) throw invalidInput('expiring-within', `"${o.expiringWithin}" is not a whole number of days`);
        if (o.limit !== undefined && !/^\d+$/.test(o.limit)) throw invalidInput('limit', `"${o.limit}" is not a whole number`);
        if (o.cursor !== undefined && o.limit === undefined) throw invalidInput('cursor', 'goes with --limit');
        const rt = await runtime();
        const deps = { db: rt.database.db, clock: rt.clock };
        const filter = { tenantCode: o.tenant, expiringWithinDays: o.expiringWithin === undefined ? undefined : Number(o.expiringWithin), search: o.search };
        const csvLine = (c: CertificateView) => [c.serial, c.tenantCode, c.status, c.notAfter, String(c.daysLeft)].join(',') + '\n';
        const rowsOf = (rows: CertificateView[]) => rows.map((c) => [c.serial, c.tenantCode, c.status, c.notAfter.slice(0, 10), String(c.daysLeft)]);
        if (o.limit !== undefined) {
          const page = await listCertificatePage(deps, { ...filter, cursor: o.cursor, limit: Number(o.limit) });
          if (page.next && !out.json) io.stderr(`next page: --cursor ${page.next}\n`);
          if (o.csv) return void io.stdout('serial,tenant,status,not_after,days_left\n' + page.rows.map(csvLine).join(''));
          return out.result(page, () => (page.rows.length === 0 ? 'no certificates' : table(['SERIAL', 'TENANT', 'STATUS', 'NOT AFTER', 'DAYS'], rowsOf(page.rows))));
        }
        // Every certificate: streamed a page at a time, so a million rows never sit in memory at once.
        if (o.csv) {
          io.stdout('serial,tenant,status,not_after,days_left\n');
          for await (const rows of certificatePages(deps, filter)) io.stdout(rows.map(csvLine).join(''));
          return;
        }
        if (out.json) {
          // One JSON array, written as it is read.
          let first = true;
          io.stdout('[');
          for await (const rows of certificatePages(deps, filter)) {
            for (const c of rows) {
              io.stdout((first ? '\n' : ',\n') + JSON.stringify(c));
              first = false;
            }
          }
          io.stdout(first ? ']\n' : '\n]\n');
          return;
        }
        let any = false;
        for await (const rows of certificatePages(deps, filter)) {
          // Each page's columns fit that page; the header comes once.
          const lines = table(['SERIAL', 'TENANT', 'STATUS', 'NOT AFTER', 'DAYS'], rowsOf(rows)).split('\n');
          io.stdout((any ? lines.slice(1) : lines).join('\n') + '\n');
          any = true;
        }
        if (!any) io.stdout('no certificates\n');
      }),
    );
  cert
    .command('show')
    .description('show one certificate')
    .argument('<SERIAL>', 'serial number (hex)')
    .option('--pem', 'print the certificate PEM as well')
    .option('--json', 'JSON output')
    .action(async (serial: string, o: { pem?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const c = await getCertificate({ db: rt.database.db, clock: rt.clock }, serial);
        out.result(c, () => human(c) + (o.pem ? '\n' + c.pem : ''));
      }),
    );
  cert
    .command('revoke')
    .description('revoke a certificate')
    .argument('<SERIAL>', 'serial number (hex)')
    .option('--reason <REASON>', REVOCATION_REASONS.join('|'), 'unspecified')
    .option('--with-successors', 'also revoke every certificate that renews or re-issues it')
    .option('--json', 'JSON output')
    .action(async (serial: string, o: { reason: string; withSuccessors?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        // The CA keys must open before anything changes: a revocation is only effective at the
        // proxies once it is on a CRL, and a wrong passphrase used to revoke with only a warning.
        let cas;
        try {
          cas = await rt.caSet();
        } catch (e) {
          if (isRefusal(e)) throw new Refusal(e.code, `${e.message}; nothing was revoked (the CRL is published at once, so the CA key must open first)`, { field: e.field ?? 'KENSHIN_CA_PASSPHRASE' });
          throw e;
        }
        const c = await revokeCertificate({ db: rt.database.db, clock: rt.clock }, { serial, reason: o.reason, actor: ACTOR, withSuccessors: Boolean(o.withSuccessors) });
        // Publish at once, on the CRL of each CA that issued a revoked certificate, so proxies see it;
        // if that fails now (the database, say), `serve` republishes within the hour.
        let crls: { name: string; number: number }[] = [];
        try {
          crls = (await publishCrlsFor({ db: rt.database.db, clock: rt.clock, cas }, [c.serial, ...c.alsoRevoked])).map((p) => ({ name: p.name, number: p.crl.number }));
        } catch (e) {
          io.stderr(`kenshin: warning: revoked, but the CRL could not be published now (${(e as Error).message}); kenshin serve will publish it\n`);
        }
        const published = crls.map((p) => `CRL #${p.number} (${p.name})`).join(', ');
        out.result({ ...c, crlNumber: crls[0]?.number ?? null, crls }, () => `revoked ${c.serial} (${c.revocationReason})${c.alsoRevoked.length ? ` and its successors ${c.alsoRevoked.join(', ')}` : ''}${published ? `; ${published} published` : ''}`);
      }),
    );
  cert
    .command('import [FILES...]')
    .description('register certificates already in the field, issued by a CA Kenshin trusts or adopted, so they log in and renew')
    .option('--from-openssl-index <FILE>', 'an OpenSSL CA database (index.txt; revoked lines become revoked certificates)')
    .option('--newcerts <DIR>', 'where its certificates are (default: newcerts/ beside index.txt)')
    .option('--tenants <CSV>', 'which tenant each certificate belongs to: columns serial (or fingerprint), tenant, label')
    .option('--tenant-from <PART>', 'take the tenant code from the subject instead: cn')
    .option('--create-tenants', 'create a tenant that does not exist yet (named after the subject\'s O)')
    .option('--dry-run', 'check everything and report; change nothing')
    .option('--continue-on-error', 'import what is acceptable and report the rest (default: all or nothing)')
    .option('--json', 'JSON output')
    .action(async (files: string[], o: { fromOpensslIndex?: string; newcerts?: string; tenants?: string; tenantFrom?: string; createTenants?: boolean; dryRun?: boolean; continueOnError?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        if (files.length === 0 && !o.fromOpensslIndex) throw invalidInput('files', 'give certificate files or directories, or --from-openssl-index index.txt');
        if (o.tenants && o.tenantFrom) throw invalidInput('tenant-from', 'use either --tenants CSV or --tenant-from cn, not both');
        if (!o.tenants && !o.tenantFrom) throw invalidInput('tenants', 'say which tenant each certificate belongs to: --tenants MAP.csv or --tenant-from cn');
        if (o.tenantFrom !== undefined && o.tenantFrom.toLowerCase() !== 'cn') throw invalidInput('tenant-from', `expected cn, got "${o.tenantFrom}"`);
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const tenants: TenantRule = o.tenants ? { kind: 'map', map: readTenantMap(o.tenants) } : { kind: 'cn' };
        const candidates: Candidate[] = [...(o.fromOpensslIndex ? candidatesFromOpensslIndex(o.fromOpensslIndex, o.newcerts) : []), ...(files.length ? candidatesFromFiles(files) : [])];
        const rt = await runtime();
        const r = await importCertificates(
          { db: rt.database.db, clock: rt.clock, paths },
          { candidates, tenants, createTenants: Boolean(o.createTenants), dryRun: Boolean(o.dryRun), continueOnError: Boolean(o.continueOnError), actor: ACTOR, fallbackKeyType: config.defaultKeyType },
        );
        out.result(r, () => describeImport(r));
      }),
    );
}
