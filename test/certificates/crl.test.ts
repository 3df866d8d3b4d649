import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';
import { currentCrl, currentCrlNumber, publishCrl } from '../../src/certificates/crl.js';
import { run, tryRun } from '../helpers/openssl.js';
import { epochSeconds } from '../helpers/dates.js';
import { turnCounter } from '../helpers/turns.js';

for (const dialect of testDialects()) {
  describe(`CRL on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const deps = await w.runtime.certificateDeps();
    const authority = await w.runtime.authority();
    const crlDeps = { db: deps.db, clock: w.clock, authority };
    await addTenant({ db: deps.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
    const certs: Awaited<ReturnType<typeof issueCertificate>>[] = [];
    for (let i = 0; i < 6; i++) certs.push(await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' }));
    const reasons = ['keyCompromise', 'superseded', 'cessationOfOperation', 'unspecified', 'affiliationChanged'];
    for (const [i, reason] of reasons.entries()) await revokeCertificate({ db: deps.db, clock: w.clock }, { serial: certs[i]!.serial, reason, actor: 'test' });
    const chain = path.join(w.dir, 'chain.pem');
    fs.writeFileSync(chain, fs.readFileSync(w.runtime.paths.rootCert, 'utf8') + fs.readFileSync(w.runtime.paths.issuingCert, 'utf8'));

    test('the CRL verifies with openssl, is numbered and lists every revoked serial with its reason', async () => {
      const crl = await publishCrl(crlDeps);
      const file = path.join(w.dir, 'crl.pem');
      fs.writeFileSync(file, crl.pem);
      assert.match(run('openssl', ['crl', '-in', file, '-CAfile', chain, '-noout']), /verify OK/);
      const text = run('openssl', ['crl', '-in', file, '-noout', '-text']);
      assert.match(text, new RegExp(`X509v3 CRL Number: \\n\\s+${crl.number}\\n`));
      assert.match(text, /Next Update: /);
      assert.match(text, /X509v3 Authority Key Identifier/);
      for (const c of certs.slice(0, 5)) assert.match(text, new RegExp(`Serial Number: 0?${c.serial.toUpperCase()}\\n`));
      assert.doesNotMatch(text, new RegExp(certs[5]!.serial.toUpperCase()));
      assert.match(text, /Key Compromise/);
      assert.match(text, /Cessation Of Operation/);
      const again = await publishCrl(crlDeps);
      assert.equal(again.number, crl.number + 1);
    });

    test('openssl verify -crl_check refuses the revoked certificates and accepts the others', async () => {
      const crl = await currentCrl(crlDeps);
      const file = path.join(w.dir, 'crl-check.pem');
      fs.writeFileSync(file, crl.pem);
      for (const [i, c] of certs.entries()) {
        const leaf = path.join(w.dir, `leaf${i}.pem`);
        fs.writeFileSync(leaf, c.certificatePem);
        const r = tryRun('openssl', ['verify', '-attime', epochSeconds(w.clock.now()), '-crl_check', '-CAfile', w.runtime.paths.rootCert, '-untrusted', w.runtime.paths.issuingCert, '-CRLfile', file, leaf]);
        if (i < 5) {
          assert.equal(r.ok, false, `certificate ${i} is revoked`);
          assert.match(r.out, /certificate revoked/);
        } else {
          assert.equal(r.ok, true, r.out);
        }
      }
    });

    test('currentCrl reuses a fresh CRL and republishes after a new revocation', async () => {
      const a = await currentCrl(crlDeps);
      const b = await currentCrl(crlDeps);
      assert.equal(b.number, a.number);
      w.clock.advance(1000);
      await revokeCertificate({ db: deps.db, clock: w.clock }, { serial: certs[5]!.serial, actor: 'test' });
      const c = await currentCrl(crlDeps);
      assert.equal(c.number, a.number + 1);
      w.clock.advance(25 * 3600_000);
      const d = await currentCrl(crlDeps);
      assert.equal(d.number, c.number + 1, 'a day-old CRL is refreshed');
    });

    test('currentCrlNumber names the CRL currentCrl would serve, and nothing when it would publish a new one', async () => {
      const served = await currentCrl(crlDeps);
      assert.equal(await currentCrlNumber(crlDeps), served.number);
      // A row with a number but no bytes (what adopting a CA stores: the old system's last number).
      const issuer = await authority.issuingFingerprint();
      const { der } = await deps.db.selectFrom('crls').select('der').where('issuer_fingerprint', '=', issuer).executeTakeFirstOrThrow();
      await deps.db.updateTable('crls').set({ der: '' }).where('issuer_fingerprint', '=', issuer).execute();
      try {
        assert.equal(await currentCrlNumber(crlDeps), undefined, 'nothing signed is stored');
      } finally {
        await deps.db.updateTable('crls').set({ der }).where('issuer_fingerprint', '=', issuer).execute();
      }
      assert.equal(await currentCrlNumber(crlDeps), served.number);
      w.clock.advance(25 * 3600_000);
      assert.equal(await currentCrlNumber(crlDeps), undefined, 'a day old');
      assert.equal((await currentCrl(crlDeps)).number, served.number + 1);
    });

    test('first publications racing on an empty table (two instances starting) all succeed, numbered apart', async () => {
      await deps.db.deleteFrom('crls').execute();
      // What two instances do at start: both may find no CRL and publish the first one.
      const started = await Promise.all([currentCrl(crlDeps), currentCrl(crlDeps)]);
      assert.ok(started.every((p) => p.number >= 1));
      await deps.db.deleteFrom('crls').execute();
      const published = await Promise.all([1, 2, 3, 4].map(() => publishCrl(crlDeps)));
      assert.deepEqual(published.map((p) => p.number).sort(), [1, 2, 3, 4]);
      const row = await deps.db.selectFrom('crls').selectAll().executeTakeFirstOrThrow();
      assert.equal(row.number, 4);
      assert.equal(row.der, Buffer.from(published.find((p) => p.number === 4)!.der).toString('base64'), 'the stored CRL is the last one numbered');
    });

    test('revocations that land between reading the list and the publishing transaction are on the CRL', async () => {
      // The list is read before the transaction (so SQLite's one connection is not held for it). A
      // revocation in between rolls the transaction back and the list is read again; after three
      // such reads (a burst of revocations) it is read under the lock.
      for (const landing of [1, 3]) {
        const late: Awaited<ReturnType<typeof issueCertificate>>[] = [];
        for (let i = 0; i < landing; i++) late.push(await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' }));
        let transactions = 0;
        const db = new Proxy(deps.db, {
          get(target, prop, receiver) {
            if (prop !== 'transaction') {
              const v = Reflect.get(target, prop, receiver === db ? target : receiver) as unknown;
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
            }
            return () => {
              const tx = target.transaction();
              return {
                execute: async <T,>(fn: Parameters<typeof tx.execute<T>>[0]) => {
                  const next = late[transactions++];
                  if (next) await revokeCertificate({ db: deps.db, clock: w.clock }, { serial: next.serial, reason: 'keyCompromise', actor: 'test' });
                  return tx.execute(fn);
                },
              };
            };
          },
        });
        const before = (await deps.db.selectFrom('crls').select('number').where('issuer_fingerprint', '=', await authority.issuingFingerprint()).executeTakeFirst())?.number ?? 0;
        const crl = await publishCrl({ ...crlDeps, db });
        assert.equal(transactions, Math.min(landing, 2) + 1, `${landing} late revocation(s): ${transactions} transactions`);
        assert.equal(crl.number, before + 1, 'a transaction rolled back claims no number');
        const text = run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], crl.der);
        for (const c of late) assert.match(text, new RegExp(`Serial Number: 0?${c.serial.toUpperCase()}\\n`), 'the late revocation is listed');
        const { revoked_count } = await deps.db.selectFrom('crls').select('revoked_count').where('issuer_fingerprint', '=', await authority.issuingFingerprint()).executeTakeFirstOrThrow();
        assert.equal(Number(revoked_count), (text.match(/Serial Number:/g) ?? []).length);
      }
    });

    test('a higher number never carries an older thisUpdate, even from a clock behind the last publisher', async () => {
      const issuer = await authority.issuingFingerprint();
      const ahead = new Date(w.clock.now().getTime() + 3600_000).toISOString();
      await deps.db.updateTable('crls').set({ this_update: ahead }).where('issuer_fingerprint', '=', issuer).execute();
      const crl = await publishCrl(crlDeps);
      assert.ok(Date.parse(crl.thisUpdate) >= Date.parse(ahead), `${crl.thisUpdate} is not before ${ahead}`);
      const signed = run('openssl', ['crl', '-inform', 'DER', '-noout', '-lastupdate'], crl.der).trim().replace(/^lastUpdate=/, '');
      assert.equal(Date.parse(signed), Math.floor(Date.parse(crl.thisUpdate) / 1000) * 1000, `the signed lastUpdate ${signed} is the row's`);
    });

    test('a long revocation list is read and written a page at a time: the event loop gets turns while it is published', async () => {
      // 100,000 entries held the process for ~300 ms in one stretch (one query, then the encoding).
      // (It tells the two apart on SQLite, whose queries answer without a turn; on PostgreSQL every
      // query is a turn already.)
      // The last test here: it leaves 21,000 more revoked rows behind.
      const { n: revokedBefore } = await deps.db.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'revoked').executeTakeFirstOrThrow().then((r) => ({ n: Number(r.n) }));
      const row: Record<string, unknown> = { ...(await deps.db.selectFrom('certificates').selectAll().where('serial', '=', certs[5]!.serial).executeTakeFirstOrThrow()) };
      delete row.id;
      const revokedAt = w.clock.now().toISOString();
      for (let done = 0; done < 21_000; done += 500) {
        const rows = Array.from({ length: 500 }, (_, i) => ({ ...row, serial: `7${String(done + i).padStart(31, '0')}`, fingerprint_sha256: `f${String(done + i).padStart(63, '0')}`, status: 'revoked', revoked_at: revokedAt, revocation_reason: 'superseded' }));
        await deps.db.insertInto('certificates').values(rows as never).execute();
      }
      // A revoked row without a date (the column allows it; nothing writes one): listed all the same.
      await deps.db.insertInto('certificates').values({ ...row, serial: '6'.padEnd(32, '0'), fingerprint_sha256: 'e'.padEnd(64, '0'), status: 'revoked', revoked_at: null, revocation_reason: null } as never).execute();
      const publishing = turnCounter();
      let crl;
      try {
        crl = await publishCrl(crlDeps);
      } finally {
        publishing.stop();
      }
      // Three pages read and three slices written, with a turn between each two, and one before the PEM.
      assert.ok(publishing.count >= 5, `${publishing.count} turns of the event loop while publishing`);
      // The text of 21,000 entries is more than the helper buffers: counted by the shell instead.
      const listed = run('sh', ['-c', 'openssl crl -inform DER -noout -text | grep -c "Serial Number:"'], crl.der);
      assert.equal(Number(listed.trim()), revokedBefore + 21_001, 'every revoked certificate is listed once');
      assert.match(run('openssl', ['crl', '-inform', 'DER', '-CAfile', chain, '-noout'], crl.der), /verify OK/);
      // Serving the stored one (what every other process does after a publication): a turn too.
      const serving = turnCounter();
      try {
        const stored = await currentCrl(crlDeps);
        assert.equal(stored.number, crl.number, 'the stored CRL, not a new one');
        assert.equal(stored.pem, crl.pem);
      } finally {
        serving.stop();
      }
      assert.ok(serving.count >= 1, 'decoding and PEM in separate turns');
    });
  });
}
