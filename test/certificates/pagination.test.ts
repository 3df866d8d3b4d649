import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addInstitution, addTenant } from '../../src/tenancy/service.js';
import { certificatePages, issueCertificate, listCertificatePage, listCertificates } from '../../src/certificates/service.js';
import { displaySerial, normaliseSerial } from '../../src/ca/serial.js';
import { DAY_MS } from '../../src/clock.js';
import { isRefusal } from '../../src/errors.js';

for (const dialect of testDialects()) {
  describe(`certificate lists a page at a time (${dialect})`, async () => {
    const w = await makeWorld(dialect);
    const deps = await w.runtime.certificateDeps();
    const tenancy = { db: deps.db, clock: w.clock };
    await addTenant(tenancy, { code: 'T0001', name: '山田クリニック' }, 'test');
    await addTenant(tenancy, { code: 'T0002', name: '鈴木医院' }, 'test');
    await addInstitution(tenancy, { tenantCode: 'T0002', number: '2712345678', name: '鈴木医院本院' }, 'test');
    const now = w.clock.now().getTime();
    const issued: string[] = [];
    // 23 certificates, several sharing an expiry (ties broken by id), over two tenants.
    for (let i = 0; i < 23; i++) {
      const notAfter = new Date(now + (100 + Math.floor(i / 3)) * DAY_MS);
      const r = await issueCertificate(deps, { tenantCode: i % 4 === 0 ? 'T0002' : 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - DAY_MS), notAfter }, actor: 'test' });
      issued.push(r.serial);
    }
    const all = await listCertificates(tenancy, {});

    test('pages follow each other exactly: nothing twice, nothing missed, in the list order', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await listCertificatePage(tenancy, { limit: 5, cursor });
        assert.ok(page.rows.length <= 5);
        seen.push(...page.rows.map((c) => c.serial));
        cursor = page.next;
        pages++;
      } while (cursor);
      assert.equal(pages, 5);
      assert.deepEqual(seen, all.map((c) => c.serial));
      const streamed: string[] = [];
      for await (const rows of certificatePages(tenancy, {}, 7)) streamed.push(...rows.map((c) => c.serial));
      assert.deepEqual(streamed, seen);
      // A certificate issued after the first page sorts later: the next pages still hold each once.
      const first = await listCertificatePage(tenancy, { limit: 10 });
      const late = await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 500 * DAY_MS) }, actor: 'test' });
      const rest: string[] = [];
      for (let c = first.next; c; ) {
        const page = await listCertificatePage(tenancy, { limit: 10, cursor: c });
        rest.push(...page.rows.map((r) => r.serial));
        c = page.next;
      }
      assert.deepEqual([...first.rows.map((r) => r.serial), ...rest], [...seen, late.serial]);
    });

    test('search: 機関番号 (its tenant), a serial beginning as browsers show it, a tenant code or name', async () => {
      const t2 = all.filter((c) => c.tenantCode === 'T0002').map((c) => c.serial);
      assert.deepEqual((await listCertificatePage(tenancy, { limit: 100, search: '2712345678' })).rows.map((c) => c.serial), t2);
      assert.deepEqual((await listCertificatePage(tenancy, { limit: 100, search: '鈴木' })).rows.map((c) => c.serial), t2);
      assert.deepEqual((await listCertificatePage(tenancy, { limit: 100, search: 't0002' })).rows.map((c) => c.serial), t2);
      const target = issued[7]!;
      const prefix = displaySerial(target).split(':').slice(0, 3).join(':');
      const found = (await listCertificatePage(tenancy, { limit: 100, search: prefix })).rows.map((c) => c.serial);
      assert.ok(found.includes(target), `${prefix} finds ${target}`);
      for (const s of found) assert.ok(s.startsWith(normaliseSerial(prefix)!), `${s} begins with ${prefix}`);
      assert.deepEqual((await listCertificatePage(tenancy, { limit: 100, search: displaySerial(target) })).rows.map((c) => c.serial), [target]);
      assert.equal((await listCertificatePage(tenancy, { limit: 100, search: 'nothing like this' })).rows.length, 0);
      assert.equal((await listCertificatePage(tenancy, { limit: 100, search: '100%_' })).rows.length, 0, 'LIKE wildcards are text');
    });

    test('a cursor that this list did not give out, or a bad limit, is refused naming the field', async () => {
      for (const [input, field] of [[{ limit: 5, cursor: 'not-a-cursor' }, 'cursor'], [{ limit: 0 }, 'limit'], [{ limit: 10_001 }, 'limit']] as const) {
        await assert.rejects(listCertificatePage(tenancy, input), (e: unknown) => isRefusal(e) && e.field === field);
      }
    });
  });
}
