import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { makeWorld, type World } from '../helpers/world.js';
import { testDialects } from '../helpers/databases.js';
import { kenshin } from '../helpers/cli.js';
import { makeOpensslCa, type OpensslCa } from '../helpers/openssl-ca.js';
import { run } from '../helpers/openssl.js';
import { TlsClient } from '../helpers/client.js';
import { kenshinBehindProxy, startFront, getOverSocket } from '../helpers/front.js';
import { startNginx } from '../helpers/nginx.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { revokeCertificate } from '../../src/certificates/service.js';
import { fingerprintOfCertificate, currentIssuingFiles } from '../../src/ca/generations.js';
import type { Dialect } from '../../src/db/database.js';

/**
 * Taking over a running service whose CA was run with `openssl ca`: trust (or adopt) its CA, import
 * its index.txt, and the clinics' certificates already in the field log in and renew into Kenshin's
 * own CA with the same name — in direct mode and behind nginx with the files `kenshin ca bundle`
 * writes. Everything real: the openssl CLI made the old CA and its certificates, TLS handshakes
 * present them, nginx verifies them against the bundle.
 */

const PASSWORD = 'correct horse battery';

interface OldWorld {
  w: World;
  old: OpensslCa;
  k(args: string[], stdin?: string): ReturnType<typeof kenshin>;
  /** 60 days left (in the renewal window at the real now), T0001. */
  due: ReturnType<OpensslCa['issue']>;
  /** Revoked by the old system (keyCompromise). */
  revoked: ReturnType<OpensslCa['issue']>;
  /** 400 days left, T0001: revoked later in Kenshin. */
  far: ReturnType<OpensslCa['issue']>;
  map: string;
}

async function oldService(dialect: Dialect, name: string): Promise<OldWorld> {
  const w = await makeWorld(dialect, { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0' } });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');
  await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'yamada', password: PASSWORD, role: 'admin', institutionNumbers: ['1312345678'] }, 'test');
  const old = makeOpensslCa(path.join(w.dir, 'old-system'), { name });
  const due = old.issue({ cn: 'T0001', o: '山田クリニック' }, { days: 60 });
  const revoked = old.issue({ cn: 'T0001', o: '山田クリニック' }, { days: 300 });
  const far = old.issue({ cn: 'T0001', o: '山田クリニック' }, { days: 400 });
  old.revoke(revoked.certFile, 'keyCompromise');
  // openssl stamped them with the real clock just now, after the world's T0: Kenshin's clock follows.
  w.clock.set(new Date());
  const map = path.join(w.dir, 'tenants.csv');
  fs.writeFileSync(map, `serial,tenant,label\n${due.serial},T0001,受付PC\n${revoked.serial},T0001,\n${far.serial},t0001,診察室\n`);
  const env = { KENSHIN_DATABASE_URL: w.config.databaseUrl, KENSHIN_CA_PASSPHRASE: w.config.caPassphrase, KENSHIN_LOG_LEVEL: 'silent' };
  return { w, old, due, revoked, far, map, k: (args, stdin) => kenshin(['--data-dir', w.dir, ...args], { env, ...(stdin !== undefined ? { stdin } : {}), clock: w.clock }) };
}

function client(url: string, w: World, cert: { p12: string; p12Password: string }): TlsClient {
  return new TlsClient(url, fs.readFileSync(w.runtime.paths.rootCert, 'utf8'), { file: fs.readFileSync(cert.p12), password: cert.p12Password });
}

/** The seed's renewal from the old certificate; returns the successor's PEM from the downloaded package. */
async function renewThroughPortal(c: TlsClient): Promise<{ p12: Buffer; password: string }> {
  const login = await c.get('/');
  assert.equal(login.status, 200, login.text);
  assert.match(login.text, /ログインID/, 'the imported certificate gets the login page, not a refusal');
  const check = await c.follow(await c.submit(login, '/login', { loginId: 'yamada', password: PASSWORD }));
  assert.match(check.text, /証明書更新チェック/);
  assert.match(check.text, />取得する</);
  const confirm = await c.get('/renewal/confirm');
  const save = await c.follow(await c.submit(confirm, '/renewal'));
  assert.match(save.text, /id="download-p12"[^>]*>こちら</);
  const dl = await c.get('/renewal/package/download');
  assert.equal(dl.status, 200);
  const revealed = await c.follow(await c.submit(save, '/renewal/package/password'));
  const password = /id="p12-password" class="password">([^<]+)</.exec(revealed.text)?.[1];
  assert.ok(password);
  return { p12: dl.body, password };
}

function refusalOf(text: string): string | undefined {
  return /data-reason="([a-z_]+)"/.exec(text)?.[1];
}

async function assertRenewedIntoKenshin(ow: OldWorld, renewed: { p12: Buffer; password: string }) {
  const { w } = ow;
  const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${renewed.password}`], renewed.p12);
  const subject = (file: string | Buffer) => run('openssl', ['x509', '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space'], file).trim();
  // The same name as the old certificate, byte for byte (the manual: both carry the same name) …
  assert.equal(subject(pem), subject(fs.readFileSync(ow.due.certFile)));
  const oldRow = await w.runtime.database.db.selectFrom('certificates').selectAll().where('serial', '=', ow.due.serial.toLowerCase()).executeTakeFirstOrThrow();
  const succ = await w.runtime.database.db.selectFrom('certificates').selectAll().where('predecessor_id', '=', oldRow.id).executeTakeFirstOrThrow();
  assert.equal(succ.subject_der, oldRow.subject_der);
  // … but issued by Kenshin's own issuing CA, and it verifies to Kenshin's root with openssl.
  assert.equal(succ.issuer_fingerprint, currentIssuingFiles(w.runtime.paths).fingerprint);
  assert.notEqual(succ.issuer_fingerprint, oldRow.issuer_fingerprint);
  const chain = path.join(w.dir, 'kenshin-chain.pem');
  fs.writeFileSync(chain, fs.readFileSync(w.runtime.paths.rootCert, 'utf8') + fs.readFileSync(w.runtime.paths.issuingCert, 'utf8'));
  assert.match(run('openssl', ['verify', '-CAfile', chain, '-purpose', 'sslclient'], pem), /stdin: OK/);
}

for (const dialect of testDialects()) {
  describe(`taking over an openssl CA on ${dialect}`, () => {
    test('ca trust + cert import of index.txt: imported certificates log in and renew into Kenshin; the revoked one is refused (direct mode)', async () => {
      const ow = await oldService(dialect, 'Old Trusted CA');
      const trusted = await ow.k(['ca', 'trust', '--cert', ow.old.certFile, '--crl', ow.old.crlFile(), '--json']);
      assert.equal(trusted.code, 0, trusted.stderr);
      assert.equal(trusted.json<{ mode: string }>().mode, 'trusted');
      const dry = await ow.k(['cert', 'import', '--from-openssl-index', ow.old.index, '--tenants', ow.map, '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /would import 3 certificates/);
      assert.equal((await ow.w.runtime.database.db.selectFrom('certificate_imports').selectAll().execute()).length, 0, 'a dry run changes nothing');
      const imported = await ow.k(['cert', 'import', '--from-openssl-index', ow.old.index, '--tenants', ow.map, '--json']);
      assert.equal(imported.code, 0, imported.stderr);
      assert.deepEqual(imported.json<{ counts: Record<string, number> }>().counts, { imported: 3, unchanged: 0, revoked: 0, skipped: 0, rejected: 0 });
      const again = await ow.k(['cert', 'import', '--from-openssl-index', ow.old.index, '--tenants', ow.map]);
      assert.equal(again.code, 0);
      assert.match(again.stdout, /^nothing to do: 3 already imported/);
      const db = ow.w.runtime.database.db;
      const rows = await db.selectFrom('certificates').select(['serial', 'status', 'revocation_reason', 'label', 'issuer_fingerprint']).orderBy('serial').execute();
      assert.deepEqual(
        rows.map((r) => [r.serial, r.status, r.revocation_reason, r.label]),
        [
          [ow.due.serial.toLowerCase(), 'active', null, '受付PC'],
          [ow.revoked.serial.toLowerCase(), 'revoked', 'keyCompromise', null],
          [ow.far.serial.toLowerCase(), 'active', null, '診察室'],
        ],
      );
      const oldFp = fingerprintOfCertificate(new (await import('../../src/ca/x509.js')).x509.X509Certificate(fs.readFileSync(ow.old.certFile, 'utf8')));
      assert.ok(rows.every((r) => r.issuer_fingerprint === oldFp));
      const actions = (await db.selectFrom('audit_events').select('action').execute()).map((a) => a.action);
      assert.equal(actions.filter((a) => a === 'certificate.imported').length, 3);
      assert.ok(actions.includes('ca.trusted'));

      const { server } = await startFront(ow.w, { via: 'direct' });
      // The listener names the old CA to browsers, so they offer the clinic's old certificate.
      // Asynchronously: the server answers from this very process.
      const names = await new Promise<string>((resolve) => {
        const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${new URL(server.url).port}`, '-servername', 'localhost']);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', () => resolve(out));
        p.stdin.end('Q\n');
      });
      assert.match(names, /Acceptable client certificate CA names[\s\S]*Old Trusted CA/);
      assert.equal(refusalOf((await client(server.url, ow.w, ow.revoked).get('/')).text), 'revoked');
      await assertRenewedIntoKenshin(ow, await renewThroughPortal(client(server.url, ow.w, ow.due)));
      // Revoking an imported certificate in Kenshin refuses it at once (there is no CRL Kenshin could sign for this CA).
      const farClient = client(server.url, ow.w, ow.far);
      assert.match((await farClient.get('/')).text, /ログインID/);
      await revokeCertificate({ db, clock: ow.w.clock }, { serial: ow.far.serial, reason: 'cessationOfOperation', actor: 'test' });
      assert.equal(refusalOf((await farClient.get('/')).text), 'revoked');
    });

    test('ca adopt: Kenshin signs the old CA\'s CRL (openssl crl -verify), continuing its numbering; behind nginx with `kenshin ca bundle`', async () => {
      const ow = await oldService(dialect, 'Old Adopted CA');
      const oldCrl = ow.old.crlFile();
      const oldNumber = parseInt(run('openssl', ['crl', '-in', oldCrl, '-noout', '-crlnumber']).trim().split('=')[1]!, 16);
      const adopted = await ow.k(['ca', 'adopt', '--cert', ow.old.certFile, '--key', ow.old.encryptedKeyFile, '--passphrase-stdin', '--crl', oldCrl, '--json'], ow.old.keyPassphrase + '\n');
      assert.equal(adopted.code, 0, adopted.stderr);
      const { id, crl } = adopted.json<{ id: string; crl: string }>();
      // The key at rest is encrypted with Kenshin's CA passphrase, not the old one, and never plain.
      const keyFile = path.join(ow.w.runtime.paths.caDir, 'external', id, 'ca.key');
      assert.match(fs.readFileSync(keyFile, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
      run('openssl', ['pkey', '-in', keyFile, '-passin', `pass:${ow.w.config.caPassphrase}`, '-noout']);
      assert.equal((await ow.k(['cert', 'import', '--from-openssl-index', ow.old.index, '--tenants', ow.map])).code, 0);

      const { server, files, dir } = await kenshinBehindProxy(ow.w, {}, ow.w.clock, 'nginx');
      // What an operator's timer does: the bundles from the CLI, then nginx.
      const bundle = await ow.k(['ca', 'bundle', '--ca-out', files.clientCa, '--crl-out', files.crl]);
      assert.equal(bundle.code, 0, bundle.stderr);
      const nginx = await startNginx(dir, files);
      ow.w.onClose(() => nginx.stop());
      assert.equal(refusalOf((await client(nginx.url, ow.w, ow.revoked).get('/')).text), 'revoked');
      await assertRenewedIntoKenshin(ow, await renewThroughPortal(client(nginx.url, ow.w, ow.due)));

      // Revoked in Kenshin: on the adopted CA's CRL, signed with the adopted key, with the old system's revocation.
      await revokeCertificate({ db: ow.w.runtime.database.db, clock: ow.w.clock }, { serial: ow.far.serial, reason: 'cessationOfOperation', actor: 'test' });
      const crlPem = await getOverSocket(files.upstreamSocket, `/crl/${crl}.crl.pem`);
      const crlFile = path.join(ow.w.dir, 'adopted.crl.pem');
      fs.writeFileSync(crlFile, crlPem);
      const text = run('openssl', ['crl', '-in', crlFile, '-CAfile', ow.old.certFile, '-verify', '-noout', '-text']);
      assert.match(text, /verify OK/);
      assert.match(text, new RegExp(`Serial Number: ${ow.revoked.serial}[\\s\\S]*Key Compromise`, 'i'));
      assert.match(text, new RegExp(`Serial Number: ${ow.far.serial}`, 'i'));
      const number = parseInt(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1] ?? '0', 10);
      assert.ok(number > oldNumber, `CRL number ${number} continues after the old system's ${oldNumber}`);
      // nginx refreshed with that CRL refuses the certificate itself; Kenshin still says why.
      assert.equal((await ow.k(['ca', 'bundle', '--crl-out', files.crl])).code, 0);
      await nginx.reload();
      assert.equal(refusalOf((await client(nginx.url, ow.w, ow.far).get('/')).text), 'revoked');
      void server;
    });
  });
}
