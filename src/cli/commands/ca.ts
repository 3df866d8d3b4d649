import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { dataPaths, type CaKeyType } from '../../config.js';
import { loadTrustedCaPems, requireInitialised } from '../../ca/hierarchy.js';
import { crlName } from '../../ca/generations.js';
import { externalCrlPems } from '../../ca/external.js';
import { adoptExternalCa, listExternal, replaceTrustedCrl, trustExternalCa, type ExternalCaSummary } from '../../takeover/external-ca.js';
import { crlBundlePem, currentCrlNamed, currentCrls, crlSources } from '../../certificates/crl-set.js';
import { rotateIssuingCa, type RotationResult } from '../../setup/rotate-ca.js';
import { writeFileAtomic } from '../../atomic-file.js';
import { Refusal, invalidInput } from '../../errors.js';

const ACTOR = 'cli';

function caKeyType(v: string | undefined): CaKeyType | undefined {
  if (v === undefined) return undefined;
  if (v === 'p256' || v === 'p384' || v === 'rsa3072') return v;
  throw invalidInput('key-type', `expected p256, p384 or rsa3072, got "${v}"`);
}

function generation(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9]\d{0,5}$/.test(v)) throw invalidInput('generation', `"${v}" is not a generation number (1, 2, …)`);
  return Number(v);
}

const unwritable = (target: string, e: unknown, field: string) =>
  new Refusal('output_not_writable', `cannot write ${target} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { field });

/** Refuses an output path that cannot be written before any work (and any CRL refresh) is done. */
function assertWritable(file: string, field: string): void {
  const target = path.resolve(file);
  const probe = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.probe`);
  try {
    fs.writeFileSync(probe, '', { flag: 'wx' });
    fs.rmSync(probe);
  } catch (e) {
    throw unwritable(target, e, field);
  }
}

/** Output files for a proxy: written whole or not at all (see writeFileAtomic), so nginx never reads half a bundle. */
function writeOutput(file: string, content: string | Uint8Array, field: string): string {
  const target = path.resolve(file);
  try {
    writeFileAtomic(target, content, 0o644);
  } catch (e) {
    throw unwritable(target, e, field);
  }
  return target;
}

function describeRotation(r: RotationResult): string {
  const day = (iso: string) => iso.slice(0, 10);
  return [
    ...(r.finishedInterrupted ? ['(an interrupted earlier rotation was completed first)'] : []),
    `rotated the issuing CA: generation ${r.previous.generation} → ${r.current.generation}`,
    `  new issuing CA:   ${r.current.subject}, valid until ${day(r.current.notAfter)}`,
    `  fingerprint:      ${r.current.fingerprint}`,
    `  its CRL:          /crl/${r.current.crl}.crl (DER), /crl/${r.current.crl}.crl.pem`,
    r.crlDistributionPoint ? `  CRL DP of new certificates: ${r.crlDistributionPoint}` : '  CRL DP of new certificates: none (KENSHIN_CRL_URL is not set)',
    `  previous CA:      generation ${r.previous.generation} (${r.previous.subject}) stays trusted until ${day(r.previous.notAfter)};`,
    `                    its certificates keep working until they expire, its CRL stays at /crl/${r.previous.crl}.crl`,
    '',
    'Next:',
    `  1. Restart every \`kenshin serve\`: a running server keeps issuing with generation ${r.previous.generation} until it restarts`,
    '     (instances on other machines need this data directory\'s ca/ copied to them first).',
    '  2. Refresh the reverse proxy\'s bundles: `kenshin ca bundle --ca-out FILE --crl-out FILE`, then reload it (nginx -s reload).',
  ].join('\n');
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function describeExternal(verb: string, c: ExternalCaSummary): string {
  return [
    `${verb} ${c.subject}`,
    `  id:            ${c.id} (ca/external/${c.id})`,
    `  fingerprint:   ${c.fingerprint}`,
    `  valid until:   ${c.notAfter.slice(0, 10)}`,
    ...(c.chain.length ? [`  chain:         ${c.chain.join(' → ')}`] : []),
    c.mode === 'adopted'
      ? `  its CRL:       signed by Kenshin with the adopted key: /crl/${c.crl}.crl (DER), /crl/${c.crl}.crl.pem, and in \`kenshin ca bundle --crl-out\``
      : c.keptCrls > 0
        ? `  its CRL:       the old system's (${c.keptCrls} kept), in \`kenshin ca bundle --crl-out\`; replace it with \`kenshin ca trust-crl --crl FILE\` before its nextUpdate`
        : '  its CRL:       none — Kenshin cannot sign one without the key. Kenshin refuses revoked certificates itself; nginx with ssl_crl\n                 refuses every certificate of a CA without a CRL: give the old CRL (--crl), adopt the CA, or drop ssl_crl',
    '',
    'Next:',
    '  1. Import the certificates already in the field: kenshin cert import --from-openssl-index DIR/index.txt (or files) --tenants MAP.csv',
    '  2. Restart every `kenshin serve` (the TLS listener names this CA to browsers from then on).',
    '  3. Behind a proxy: kenshin ca bundle --ca-out FILE --crl-out FILE, then reload it.',
  ].join('\n');
}

export function registerCa(program: Command, io: CliIo, exit: ExitBox): void {
  const ca = program.command('ca').description('the certificate authority');

  ca.command('crl')
    .description('print a CRL (PEM), regenerating it when stale: the current issuing CA\'s unless --generation or --root')
    .option('--generation <N>', 'the CRL of issuing CA generation N')
    .option('--root', 'the root CA\'s CRL (revoked issuing CAs)')
    .option('--der <FILE>', 'also write it in DER to FILE')
    .action(async (o: { generation?: string; root?: boolean; der?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ runtime }) => {
        const wanted = generation(o.generation);
        if (wanted !== undefined && o.root) throw invalidInput('root', 'use either --root or --generation, not both');
        if (o.der) assertWritable(o.der, 'der');
        const rt = await runtime();
        const cas = await rt.caSet();
        const name = o.root ? 'root' : wanted !== undefined ? crlName(wanted) : crlSources(cas).find((s) => s.current)!.name;
        const named = await currentCrlNamed({ db: rt.database.db, clock: rt.clock, cas }, name);
        if (!named) throw invalidInput('generation', `there is no issuing CA generation ${wanted} (see \`kenshin ca bundle\` for the ones there are)`);
        if (o.der) writeOutput(o.der, named.crl.der, 'der');
        io.stdout(named.crl.pem);
      }),
    );

  ca.command('cert')
    .description('print the root CA certificate (PEM), for trust stores and reverse proxies')
    .option('--chain', 'print root + the current issuing CA')
    .option('--json', 'JSON output: { root, issuing } in PEM')
    .action(async (o: { chain?: boolean; json?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ runtime }) => {
        const rt = await runtime();
        const authority = await rt.authority();
        if (o.json) io.stdout(JSON.stringify({ root: authority.root.toString('pem'), issuing: authority.issuing.toString('pem') }, null, 2) + '\n');
        else io.stdout(authority.pem(Boolean(o.chain)));
      }),
    );

  ca.command('rotate')
    .description('create a new issuing CA under the same root: new certificates use it, earlier ones keep working until they expire')
    .option('--key-type <TYPE>', 'p256, p384 or rsa3072 (default: that of the current issuing CA)')
    .option('--json', 'JSON output')
    .action(async (o: { keyType?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        const keyType = caKeyType(o.keyType);
        const paths = dataPaths(config.dataDir);
        // Before the database is opened: "not initialised" should say so, not name a missing SQLite file.
        requireInitialised(paths);
        const rt = await runtime();
        const r = await rotateIssuingCa({ db: rt.database.db, clock: rt.clock, paths, passphraseFromEnv: config.caPassphrase, crlUrl: config.crlUrl }, { actor: ACTOR, keyType });
        out.result({ ...r, restartServe: true }, () => describeRotation(r));
      }),
    );

  ca.command('bundle')
    .description('write what a reverse proxy needs (e.g. from a timer, before `nginx -s reload`): the client CAs and the CRLs, PEM')
    .option('--ca-out <FILE>', 'root + every issuing CA, current and retired (nginx ssl_client_certificate)')
    .option('--crl-out <FILE>', 'root CRL + the CRL of every issuing CA, each regenerated when stale (nginx ssl_crl)')
    .option('--json', 'JSON output')
    .action(async (o: { caOut?: string; crlOut?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        if (!o.caOut && !o.crlOut) throw invalidInput('ca-out', 'give --ca-out FILE, --crl-out FILE, or both');
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        if (o.caOut) assertWritable(o.caOut, 'ca-out');
        if (o.crlOut) assertWritable(o.crlOut, 'crl-out');
        const result: { caOut?: string; certificates?: number; crlOut?: string; crls?: { name: string; number: number; nextUpdate: string }[] } = {};
        // Everything is computed before the first write, so a refusal leaves both files as they were.
        const caPems = o.caOut ? loadTrustedCaPems(paths) : [];
        let crlPem = '';
        if (o.crlOut) {
          const rt = await runtime();
          const crls = await currentCrls({ db: rt.database.db, clock: rt.clock, cas: await rt.caSet() });
          crlPem = crlBundlePem(crls, externalCrlPems(paths));
          result.crls = crls.map((c) => ({ name: c.name, number: c.crl.number, nextUpdate: c.crl.nextUpdate }));
        }
        if (o.caOut) {
          result.caOut = writeOutput(o.caOut, caPems.join(''), 'ca-out');
          result.certificates = caPems.length;
        }
        if (o.crlOut) result.crlOut = writeOutput(o.crlOut, crlPem, 'crl-out');
        out.result(result, () =>
          [
            ...(result.caOut ? [`wrote ${result.caOut}: ${result.certificates} CA certificates (root + ${result.certificates! - 1} issuing)`] : []),
            ...(result.crlOut
              ? [
                  `wrote ${result.crlOut}: ${result.crls!.length} CRLs (${result.crls!.map((c) => `${c.name} #${c.number}`).join(', ')}),`,
                  `  earliest nextUpdate ${result.crls!.map((c) => c.nextUpdate).sort()[0]}: run this again before then (it is safe to run hourly)`,
                ]
              : []),
          ].join('\n'),
        );
      }),
    );
  ca.command('trust')
    .description('recognise the certificates of another CA (a service taken over) for login and renewal, without its key')
    .requiredOption('--cert <FILE>', 'the CA certificate (PEM or DER; may be followed by its chain)')
    .option('--chain <FILE>', 'the CAs above it up to the self-signed root (PEM)')
    .option('--crl <FILE>', 'the old system\'s CRL for nginx ssl_crl (repeatable)', collect)
    .option('--json', 'JSON output')
    .action(async (o: { cert: string; chain?: string; crl?: string[] }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const rt = await runtime();
        const r = await trustExternalCa({ db: rt.database.db, clock: rt.clock, paths, passphraseFromEnv: config.caPassphrase }, { certFile: o.cert, chainFile: o.chain, crlFiles: o.crl }, ACTOR);
        out.result({ ...r, restartServe: true }, () => describeExternal('trusted', r));
      }),
    );

  ca.command('adopt')
    .description('take over another CA with its key: its certificates log in and renew, and Kenshin signs its CRL')
    .requiredOption('--cert <FILE>', 'the CA certificate (PEM or DER)')
    .requiredOption('--key <FILE>', 'its private key (PEM: PKCS#8 or traditional, encrypted or not)')
    .option('--passphrase-stdin', 'read the key\'s passphrase from standard input')
    .option('--chain <FILE>', 'the CAs above it up to the self-signed root (PEM)')
    .option('--crl <FILE>', 'its last CRL (Kenshin\'s continue its numbering) and CRLs of the CAs above it (repeatable)', collect)
    .option('--json', 'JSON output')
    .action(async (o: { cert: string; key: string; passphraseStdin?: boolean; chain?: string; crl?: string[] }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const keyPassphrase = o.passphraseStdin ? (await io.readStdin()).replace(/\r?\n$/, '') : undefined;
        const rt = await runtime();
        const r = await adoptExternalCa(
          { db: rt.database.db, clock: rt.clock, paths, passphraseFromEnv: config.caPassphrase },
          { certFile: o.cert, chainFile: o.chain, crlFiles: o.crl, keyFile: o.key, keyPassphrase },
          ACTOR,
        );
        out.result({ ...r, restartServe: true }, () => describeExternal('adopted', r));
      }),
    );

  ca.command('trust-crl')
    .description('replace the old system\'s CRL kept for a trusted CA (for nginx ssl_crl)')
    .requiredOption('--crl <FILE>', 'the CRL (PEM or DER; repeatable)', collect)
    .option('--json', 'JSON output')
    .action(async (o: { crl: string[] }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config, runtime }) => {
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const rt = await runtime();
        const r = await replaceTrustedCrl({ db: rt.database.db, clock: rt.clock, paths, passphraseFromEnv: config.caPassphrase }, o.crl, ACTOR);
        out.result(r, () => `replaced the CRL kept for ${r.ca.subject}${r.nextUpdate ? ` (nextUpdate ${r.nextUpdate})` : ''}: run \`kenshin ca bundle --crl-out FILE\` and reload the proxy`);
      }),
    );

  ca.command('external')
    .description('list the CAs of services taken over (kenshin ca trust / adopt)')
    .option('--json', 'JSON output')
    .action(async (_o: unknown, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, config }) => {
        const paths = dataPaths(config.dataDir);
        requireInitialised(paths);
        const list = listExternal(paths);
        out.result(list, () => (list.length === 0 ? 'no external CAs (kenshin ca trust / kenshin ca adopt)' : list.map((c) => `${c.id}  ${c.mode.padEnd(7)}  until ${c.notAfter.slice(0, 10)}  ${c.subject}`).join('\n')));
      }),
    );
}
