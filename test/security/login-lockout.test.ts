import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld, PASSWORD } from '../helpers/portal-world.js';
import { simultaneousRequests } from '../helpers/instances.js';
import { addUser } from '../../src/tenancy/service.js';
import { purgeLoginThrottle } from '../../src/identity/throttle.js';

/**
 * The 5-failure lockout under concurrency. An outside review beat it with 40 parallel POST /login
 * (one reused pre-login CSRF pair): 39 × 401 and a success on the 40th; with 300, 36 passwords were
 * checked before the 429s began. At most 5 checks per login ID and per certificate may happen in a
 * window, however many requests arrive at once.
 */
for (const dialect of testDialects()) {
  describe(`login lockout under concurrency on ${dialect}`, async () => {
    // 300 connections from one address: the per-address cap (tested in timeouts.test.ts) is off, so
    // the throttle alone must hold.
    const w = await makePortalWorld(dialect, { KENSHIN_MAX_CONNECTIONS_PER_ADDRESS: '0' });
    const { db } = w.runtime.database;
    const deps = { db, clock: w.clock };

    /** `n` login attempts sent at once on `n` open connections with one certificate and one CSRF pair. */
    async function flood(cert: { file: Uint8Array; password: string }, loginId: string, n: number, passwordOf: (i: number) => string) {
      const c = w.client(cert);
      const page = await c.get('/');
      const csrf = /name="_csrf" value="([^"]*)"/.exec(page.text)![1]!;
      const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const targets = Array.from({ length: n }, (_, i) => ({
        base: c.base,
        method: 'POST',
        path: '/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ _csrf: csrf, loginId, password: passwordOf(i) }).toString(),
      }));
      return simultaneousRequests(targets, { ca: w.ca, pfx: cert.file, passphrase: cert.password });
    }

    for (const n of [40, 300]) {
      test(`${n} parallel attempts: at most 5 passwords checked, the right one on the last is refused, the rest 429`, async () => {
        const loginId = `flood${n}`;
        await addUser(deps, { tenantCode: 'T0001', loginId, password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
        const cert = await w.cert(300);
        const responses = await flood(cert, loginId, n, (i) => (i === n - 1 ? PASSWORD : `guess ${i}`));
        const statuses = responses.map((r) => r.status);
        for (const s of statuses) assert.ok(s === 401 || s === 429 || s === 303, `unexpected ${s}`);
        const checked = statuses.filter((s) => s !== 429).length;
        assert.ok(checked <= 5, `${checked} passwords were checked: ${JSON.stringify(statuses)}`);
        const failed = await db.selectFrom('audit_events').select('id').where('action', '=', 'login.failed').where('actor', '=', `cert:${cert.row.serial}`).execute();
        assert.ok(failed.length <= 5, `${failed.length} failures audited`);
        // The refusals are one audit row, not one per attempt.
        const refused = await db.selectFrom('audit_events').select('id').where('action', '=', 'login.refused_locked').where('actor', '=', `cert:${cert.row.serial}`).execute();
        assert.ok(refused.length <= 2, `${refused.length} refusal rows for ${n - checked} refused attempts`);
      });
    }

    test('a success gives back only its own check: failures made meanwhile by someone else still count', async () => {
      const loginId = 'victim1';
      await addUser(deps, { tenantCode: 'T0001', loginId, password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      // The guesser fails 4 times from one PC; the real user logs in from another; the guesser's
      // next failure must still lock the login ID (before, the success deleted the counter).
      const guesser = w.client(await w.cert(300));
      const page = await guesser.get('/');
      for (let i = 0; i < 4; i++) assert.equal((await guesser.submit(page, '/login', { loginId, password: 'nope' })).status, 401);
      const user = w.client(await w.cert(300));
      const ok = await user.submit(await user.get('/'), '/login', { loginId, password: PASSWORD });
      assert.equal(ok.status, 303);
      assert.equal((await guesser.submit(page, '/login', { loginId, password: 'nope' })).status, 401);
      const third = w.client(await w.cert(300));
      assert.equal((await third.submit(await third.get('/'), '/login', { loginId, password: PASSWORD })).status, 429, 'the login ID is locked');
    });

    test('after a lock expires, one typo does not lock again; the refused attempts are audited once with their total', async () => {
      const loginId = 'typo1';
      await addUser(deps, { tenantCode: 'T0001', loginId, password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      const cert = await w.cert(300);
      const c = w.client(cert);
      const page = await c.get('/');
      for (let i = 0; i < 5; i++) await c.submit(page, '/login', { loginId, password: 'nope' });
      for (let i = 0; i < 7; i++) assert.equal((await c.submit(page, '/login', { loginId, password: PASSWORD })).status, 429);
      w.clock.advance(16 * 60_000);
      try {
        assert.equal((await c.submit(page, '/login', { loginId, password: 'typo' })).status, 401);
        const ok = await c.submit(page, '/login', { loginId, password: PASSWORD });
        assert.equal(ok.status, 303, 'one typo after the lock ended is not a new lock');
        const totals = await db.selectFrom('audit_events').select(['details', 'target']).where('action', '=', 'login.refused_locked_total').execute();
        const mine = totals.map((t) => JSON.parse(t.details) as { key: string; refused: number }).filter((d) => d.key === `cert:${cert.row.id}`);
        assert.deepEqual(mine.map((d) => d.refused), [7]);
        const single = await db.selectFrom('audit_events').select('id').where('action', '=', 'login.refused_locked').where('actor', '=', `cert:${cert.row.serial}`).execute();
        assert.equal(single.length, 1, 'the first refusal is audited at once');
      } finally {
        w.clock.advance(-16 * 60_000);
      }
    });

    test('housekeeping purges the rows of windows that are over', async () => {
      const loginId = 'purge1';
      await addUser(deps, { tenantCode: 'T0001', loginId, password: PASSWORD, role: 'user', institutionNumbers: ['1312345678'] }, 'test');
      const cert = await w.cert(300);
      const c = w.client(cert);
      await c.submit(await c.get('/'), '/login', { loginId, password: 'nope' });
      const key = `cert:${cert.row.id}`;
      assert.equal((await db.selectFrom('login_throttle').select('key').where('key', '=', key).execute()).length, 1);
      assert.equal(await purgeLoginThrottle(deps), 0, 'a window still open stays');
      w.clock.advance(16 * 60_000);
      try {
        assert.ok((await purgeLoginThrottle(deps)) >= 1);
        assert.equal((await db.selectFrom('login_throttle').select('key').where('key', '=', key).execute()).length, 0);
      } finally {
        w.clock.advance(-16 * 60_000);
      }
    });
  });
}
