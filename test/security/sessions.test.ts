import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld, loginAs, PASSWORD } from '../helpers/portal-world.js';
import { purgeExpiredSessions } from '../../src/identity/sessions.js';

/** Session lifecycle, as the outside review found it: logout, absolute lifetime, purge, re-login. */
describe('session lifecycle', async () => {
  const w = await makePortalWorld('sqlite');
  const { db } = w.runtime.database;
  const sessionsOf = async (certificateId: number) => db.selectFrom('sessions').selectAll().where('certificate_id', '=', certificateId).execute();

  test('POST /logout without a valid CSRF token still ends the session on the server', async () => {
    const cert = await w.cert(300);
    const c = w.client(cert);
    const home = await loginAs(c, 'solo');
    assert.match(home.text, /<h1>ホーム<\/h1>/);
    const cookie = c.cookies.get('kenshin_session')!;
    assert.equal((await sessionsOf(cert.row.id)).length, 1);
    const out = await c.request('POST', '/logout', { form: { _csrf: 'not the token' } });
    assert.equal(out.status, 303);
    assert.equal((await sessionsOf(cert.row.id)).length, 0, 'no session left behind the cleared cookie');
    // The old cookie, replayed, opens nothing.
    c.cookies.set('kenshin_session', cookie);
    assert.equal((await c.get('/home')).status, 303);
  });

  test('a session ends after its absolute lifetime (12 h by default), however active', async () => {
    const cert = await w.cert(300);
    const c = w.client(cert);
    await loginAs(c, 'solo');
    const start = w.clock.now().getTime();
    try {
      // Active every 25 minutes (inside the 30-minute idle limit) for 11 h 40 min: still logged in.
      for (let i = 0; i < 28; i++) {
        w.clock.advance(25 * 60_000);
        const r = await c.get('/home');
        assert.equal(r.status, 200, `${(w.clock.now().getTime() - start) / 60_000} min: ${String(r.headers.location)}`);
      }
      w.clock.set(new Date(start + 12 * 3_600_000 + 60_000));
      const after = await c.get('/home');
      assert.equal(after.status, 303, 'past 12 hours the session is over');
      assert.equal((await sessionsOf(cert.row.id)).length, 0);
    } finally {
      w.clock.set(new Date(start));
    }
  });

  test('housekeeping purges idle and over-age sessions, and keeps live ones', async () => {
    const idle = await w.cert(300);
    const live = await w.cert(300);
    await loginAs(w.client(idle), 'solo');
    const start = w.clock.now().getTime();
    try {
      w.clock.advance(20 * 60_000);
      await loginAs(w.client(live), 'solo');
      w.clock.advance(15 * 60_000);
      const policy = { idleMinutes: w.config.sessionIdleMinutes, maxHours: w.config.sessionMaxHours };
      assert.ok((await purgeExpiredSessions(db, w.clock, policy)) >= 1);
      assert.equal((await sessionsOf(idle.row.id)).length, 0, 'idle for 35 minutes: purged');
      assert.equal((await sessionsOf(live.row.id)).length, 1, 'idle for 15 minutes: kept');
    } finally {
      w.clock.set(new Date(start));
    }
  });

  test('a new login in the same browser ends the previous session', async () => {
    const cert = await w.cert(300);
    const c = w.client(cert);
    await loginAs(c, 'solo');
    const [first] = await sessionsOf(cert.row.id);
    // Logged in, the login page redirects home; a login posted anyway (a second user on a shared
    // PC, with the form from before) must replace the session, not add one.
    const other = w.client(cert);
    const form = await other.get('/');
    other.cookies.set('kenshin_session', c.cookies.get('kenshin_session')!);
    const r = await other.submit(form, '/login', { loginId: 'yamada', password: PASSWORD });
    assert.equal(r.status, 303);
    const now = await sessionsOf(cert.row.id);
    assert.equal(now.length, 1, 'one session, not two');
    assert.notEqual(now[0]!.id_hash, first!.id_hash);
  });
});
