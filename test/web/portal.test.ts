import { displaySerial } from '../../src/ca/serial.js';
import { browserDate } from '../../src/web/views/format.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld, loginAs, PASSWORD } from '../helpers/portal-world.js';
import { revokeCertificate } from '../../src/certificates/service.js';
import { dataPaths } from '../../src/config.js';
import { createHierarchy, loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { inProcessMinter } from '../../src/ca/mint.js';
import { buildSubject } from '../../src/ca/subject.js';
import { tempDir } from '../helpers/tmp.js';
import { run } from '../helpers/openssl.js';
import { DAY_MS } from '../../src/clock.js';
import { T0, daysAfter, jstDate, threeYearsAfter } from '../helpers/dates.js';

const reasonOf = (html: string) => /id="refusal" data-reason="([^"]+)"/.exec(html)?.[1];

for (const dialect of testDialects()) {
  describe(`portal over mTLS on ${dialect}`, async () => {
    const w = await makePortalWorld(dialect);
    const db = w.runtime.database.db;
    const institutionId = async (number: string) => String((await db.selectFrom('institutions').select('id').where('number', '=', number).executeTakeFirstOrThrow()).id);

    test('refusals: each class has its own page and status, never a TLS error or a 500', async () => {
      const none = await w.client().get('/');
      assert.equal(none.status, 401);
      assert.equal(reasonOf(none.text), 'none');
      assert.match(none.text, /クライアント証明書がありません/);
      assert.match(none.text, /href="\/help\/import"/);

      const expired = await w.cert(-1);
      const e = await w.client(expired).get('/');
      assert.equal(e.status, 403);
      assert.equal(reasonOf(e.text), 'expired');
      assert.match(e.text, /期限切れの証明書では自動更新ができません/);
      assert.match(e.text, /運用窓口 03-0000-0000/);

      const future = await w.cert(1000, { notBeforeDaysAgo: -2 });
      assert.equal(reasonOf((await w.client(future).get('/')).text), 'not_yet_valid');

      const revoked = await w.cert(200);
      await revokeCertificate({ db, clock: w.clock }, { serial: revoked.row.serial, actor: 'test' });
      const r = await w.client(revoked).get('/');
      assert.equal(r.status, 403);
      assert.equal(reasonOf(r.text), 'revoked');

      // Signed by our CA but not in our database.
      const authority = await w.runtime.authority();
      const now = w.clock.now().getTime();
      const subjectDer = new Uint8Array(buildSubject({ tenantCode: 'T0001', tenantName: 'x' }).toArrayBuffer());
      const ghost = await inProcessMinter(authority).mint({ subjectDer, displayName: 'x', keyType: 'p256', profile: 'modern', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + DAY_MS * 100) });
      assert.equal(reasonOf((await w.client({ file: ghost.pkcs12, password: ghost.password }).get('/')).text), 'unknown');

      // Another CA altogether.
      const other = dataPaths(tempDir());
      await createHierarchy({ paths: other, keyType: 'p256', commonNamePrefix: 'Stranger', passphraseFromEnv: 'x', now: w.clock.now() });
      const stranger = await inProcessMinter(await loadIssuingAuthority(other, 'x', undefined)).mint({ subjectDer, displayName: 'x', keyType: 'p256', profile: 'modern', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + DAY_MS) });
      const f = await w.client({ file: stranger.pkcs12, password: stranger.password }).get('/');
      assert.equal(f.status, 403);
      assert.equal(reasonOf(f.text), 'foreign');
      // Expired as well: OpenSSL then reports only CERT_HAS_EXPIRED, which must not make it "ours".
      const expiredStranger = await inProcessMinter(await loadIssuingAuthority(other, 'x', undefined)).mint({ subjectDer, displayName: 'x', keyType: 'p256', profile: 'modern', notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) });
      assert.equal(reasonOf((await w.client({ file: expiredStranger.pkcs12, password: expiredStranger.password }).get('/')).text), 'foreign');
      // And an expired one of ours that the database does not know is still "ours but unknown".
      const expiredGhost = await inProcessMinter(authority).mint({ subjectDer, displayName: 'x', keyType: 'p256', profile: 'modern', notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) });
      assert.equal(reasonOf((await w.client({ file: expiredGhost.pkcs12, password: expiredGhost.password }).get('/')).text), 'unknown');

      // English on request.
      const en = await w.client(expired).get('/?lang=en');
      assert.match(en.text, /<html lang="en">/);
      assert.match(en.text, /expired/i);
    });

    test('the full flow: login → 健診機関選択 → 取得する → 開始する → こちら / 確認する → new certificate', async () => {
      const old = await w.cert(60);
      const c = w.client(old);
      const login = await c.get('/');
      assert.equal(login.status, 200);
      assert.match(login.text, /ログインID/);
      assert.match(login.text, new RegExp(displaySerial(old.row.serial)), 'the serial as browsers show it');
      const inst = await loginAs(c, 'yamada');
      assert.match(inst.text, /健診機関選択/);
      assert.match(inst.text, /1312345679/);
      assert.match(inst.text, />選択</);
      const check = await c.follow(await c.submit(inst, '/institutions', { institutionId: await institutionId('1312345679') }));
      assert.match(check.text, /証明書更新チェック/);
      assert.match(check.text, />取得する</);
      assert.match(check.text, />あとで</);
      assert.match(check.text, /60 日/);
      const confirm = await c.get('/renewal/confirm');
      assert.match(confirm.text, />開始する</);
      assert.match(confirm.text, />キャンセル</);
      const save = await c.follow(await c.submit(confirm, '/renewal'));
      assert.equal(save.headers['cache-control'], 'no-store');
      assert.match(save.text, /id="download-p12"[^>]*>こちら</);
      assert.match(save.text, />確認する</);
      assert.doesNotMatch(save.text, /id="p12-password"/);
      // A second 開始する (double click, second tab) changes nothing.
      await c.submit(confirm, '/renewal');
      const successors = await db.selectFrom('certificates').selectAll().where('predecessor_id', '=', old.row.id).execute();
      assert.equal(successors.length, 1);

      const dl = await c.get('/renewal/package/download');
      assert.equal(dl.status, 200);
      assert.equal(dl.headers['content-type'], 'application/x-pkcs12');
      assert.equal(dl.headers['cache-control'], 'no-store');
      assert.equal(dl.headers['content-disposition'], `attachment; filename="T0001_${jstDate(T0).replace(/-/g, '')}.p12"`);
      // 確認する is a POST that redirects to the save screen (POST-redirect-GET): the screen with the
      // password is a GET, so Back from the help, a reload and a second tab show it again.
      const posted = await c.submit(save, '/renewal/package/password');
      assert.equal(posted.status, 303);
      assert.equal(posted.headers.location, '/renewal/package#password');
      const revealed = await c.follow(posted);
      const password = /id="p12-password" class="password">([^<]+)</.exec(revealed.text)?.[1];
      assert.ok(password, 'password shown after 確認する');
      assert.match(revealed.text, />コピーする</);
      assert.equal(revealed.headers['cache-control'], 'no-store');
      const reloaded = await c.get('/renewal/package');
      assert.equal(/id="p12-password" class="password">([^<]+)</.exec(reloaded.text)?.[1], password, 'a reload shows the same password');
      // Both certificates, as a certificate manager shows them, on the save screen.
      assert.match(reloaded.text, new RegExp(`id="pair-old"[\\s\\S]*?${displaySerial(old.row.serial)}`));
      const successor = successors[0]!;
      assert.match(reloaded.text, new RegExp(`id="pair-new"[\\s\\S]*?${displaySerial(successor.serial)}`));
      // The help keeps the user menu and leads back to the save screen.
      const help = await c.get('/help/delete-old?back=%2Frenewal%2Fpackage');
      assert.match(help.text, /class="user-menu"[\s\S]*?yamada/);
      assert.match(help.text, /<a href="\/renewal\/package" class="back-link">前の画面に戻る<\/a>/);
      assert.match(help.text, new RegExp(displaySerial(successor.serial)));
      assert.doesNotMatch((await c.get('/help/import?back=https%3A%2F%2Fevil.example%2F')).text, /back-link/, 'a back link off this site is dropped');
      // Revealed once, audited once: pressing 確認する again in this session writes no second row.
      await c.submit(save, '/renewal/package/password');
      const reveals = await db.selectFrom('audit_events').select('id').where('action', '=', 'package.password_revealed').where('target', '=', `certificate:${successor.serial}`).execute();
      assert.equal(reveals.length, 1);
      assert.match(run('openssl', ['pkcs12', '-info', '-noout', '-passin', `pass:${password}`], dl.body), /pbeWithSHA1And3-KeyTripleDES-CBC/);
      const modern = await c.get('/renewal/package/download?format=modern');
      assert.match(run('openssl', ['pkcs12', '-info', '-noout', '-passin', `pass:${password}`], modern.body), /AES-256-CBC/);
      const actions = (await db.selectFrom('audit_events').select('action').where('actor', '=', 'user:yamada').execute()).map((a) => a.action);
      for (const a of ['institution.chosen', 'renewal.issued', 'package.downloaded', 'package.password_revealed']) assert.ok(actions.includes(a), a);

      // Still on the old certificate: home says the new one is not in use yet.
      const home = await c.get('/home');
      assert.match(home.text, /id="not-in-use"/);
      assert.match(home.text, /ブラウザをすべて閉じて/);
      assert.doesNotMatch(home.text, /id="still-old"/, 'the same session: the user has not come back yet');
      assert.match(home.text, new RegExp(`有効期限 ${browserDate(successor.not_after, 'ja')}、シリアル番号 ${displaySerial(successor.serial)}`));

      // The imported new certificate: the old session ends, login again, taken-up message.
      c.pfx = { file: dl.body, password: password! };
      const ended = await c.get('/home');
      assert.equal(ended.status, 303);
      const again = await c.get(String(ended.headers.location));
      assert.match(again.text, /別の証明書で接続されたため/);
      const after = await c.follow(await c.submit(again, '/login', { loginId: 'yamada', password: PASSWORD }));
      const home2 = await c.follow(await c.submit(after, '/institutions', { institutionId: await institutionId('1312345678') }));
      assert.match(home2.text, new RegExp(`新しい証明書で接続しています、有効期限 ${jstDate(threeYearsAfter())}`));
      const renewal = await db.selectFrom('renewals').selectAll().where('predecessor_id', '=', old.row.id).executeTakeFirstOrThrow();
      assert.ok(renewal.taken_up_at);
    });

    test('Firefox: its own steps, which certificate to delete, a re-login still on the old one; a desktop client\'s fetch is recorded', async () => {
      const old = await w.cert(45);
      const c = w.client(old);
      c.defaultHeaders['user-agent'] = 'Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0';
      const inst = await loginAs(c, 'yamada');
      await c.follow(await c.submit(inst, '/institutions', { institutionId: await institutionId('1312345679') }));
      const save = await c.follow(await c.submit(await c.get('/renewal/confirm'), '/renewal'));
      const successor = await db.selectFrom('certificates').selectAll().where('predecessor_id', '=', old.row.id).executeTakeFirstOrThrow();
      // No double-click advice and no "Firefox may need the AES file" for a Firefox user.
      assert.match(save.text, /id="backup-line">[^<]*証明書マネージャーからインポート/);
      assert.doesNotMatch(save.text, /id="backup-line">[^<]*ダブルクリックで実行/);
      assert.match(save.text, /id="after-import">[^<]*更新前の証明書を削除し/);
      assert.doesNotMatch(save.text, /id="modern-line">[^<]*Firefox\) が必要/);
      // The deletion steps are on the save screen itself, with the 認証の決定 tab and the serials.
      assert.match(save.text, /<section class="card" id="delete-old">[\s\S]*?認証の決定/);
      assert.match(save.text, new RegExp(`id="pair-old"[\\s\\S]*?${displaySerial(old.row.serial)}[\\s\\S]*?${browserDate(old.row.not_after, 'ja')}`));
      assert.match(save.text, new RegExp(`id="pair-new"[\\s\\S]*?${displaySerial(successor.serial)}`));

      // Home in the same session: Firefox's way (delete the old one by serial), not "restart".
      const home = await c.get('/home');
      assert.match(home.text, new RegExp(`id="not-in-use"[^>]*>[^<]*Firefox は同じ名前の証明書が2つあると[^<]*シリアル番号 ${displaySerial(old.row.serial)}`));
      assert.doesNotMatch(home.text, /id="still-old"/);
      // Logged in again and still on the old certificate: the advice did not work, and home says so.
      w.clock.advance(60_000);
      const again = w.client(old);
      again.defaultHeaders = { ...c.defaultHeaders };
      const inst2 = await loginAs(again, 'yamada');
      const home2 = await again.follow(await again.submit(inst2, '/institutions', { institutionId: await institutionId('1312345679') }));
      const home3 = home2.text.includes('id="not-in-use"') ? home2 : await again.get('/home');
      assert.match(home3.text, /id="still-old">ログインし直した後も、更新前の証明書で接続しています。/);
      assert.match(home3.text, /href="\/help\/delete-old\?back=%2Fhome"/);

      // ORCA's desktop client fetches the package over the API: the portal and the console say so.
      const api = w.client(old);
      const started = await api.request('POST', '/api/cert', { json: {}, headers: { 'user-agent': 'Java/17.0.12' } });
      assert.equal(started.status, 200);
      const uri = new URL(started.json().uri as string);
      assert.equal((await api.request('GET', uri.pathname, { headers: { 'user-agent': 'Java/17.0.12' } })).status, 200);
      const renewal = await db.selectFrom('renewals').selectAll().where('predecessor_id', '=', old.row.id).executeTakeFirstOrThrow();
      assert.equal(renewal.client_agent, 'Java/17.0.12');
      assert.ok(renewal.client_fetched_at);
      // A second fetch keeps the first one's time and agent.
      await api.request('GET', uri.pathname, { headers: { 'user-agent': 'curl/8.0' } });
      assert.equal((await db.selectFrom('renewals').select('client_agent').where('id', '=', renewal.id).executeTakeFirstOrThrow()).client_agent, 'Java/17.0.12');
      assert.match((await again.get('/home')).text, /id="client-fetched"[^>]*>[^<]*デスクトップクライアント \(Java\/17\.0\.12\)/);
    });

    test('one institution skips the selection; outside the window goes straight home', async () => {
      const far = await w.cert(400);
      const c = w.client(far);
      const home = await loginAs(c, 'solo');
      assert.match(home.text, /<h1>ホーム<\/h1>/);
      assert.match(home.text, /山田クリニック本院/);
      assert.doesNotMatch(home.text, /健診機関選択/);
      // Manual check from the user menu: not needed, days left, and from when.
      assert.match(home.text, /id="menu-renewal-check">証明書更新チェック</);
      const check = await c.get('/renewal/check');
      assert.match(check.text, /証明書の更新は不要です/);
      assert.match(check.text, /残り 400 日/);
      assert.match(check.text, new RegExp(`${jstDate(daysAfter(400 - 90))} から更新できます`));
      assert.equal((await c.get('/renewal/confirm')).status, 303);
    });

    test('あとで puts the check off for this session only', async () => {
      const soon = await w.cert(30);
      const c = w.client(soon);
      const check = await loginAs(c, 'solo');
      assert.match(check.text, /証明書の更新が必要です/);
      const home = await c.follow(await c.submit(check, '/renewal/later'));
      assert.match(home.text, /<h1>ホーム<\/h1>/);
      assert.match(home.text, /id="renew-soon"/);
      await c.submit(home, '/logout');
      const again = await loginAs(c, 'solo');
      assert.match(again.text, /証明書の更新が必要です/);
    });

    test('login refusals: wrong password, user of another tenant, lock after 5 failures, CSRF', async () => {
      const cert = await w.cert(300);
      const c = w.client(cert);
      const page = await c.get('/');
      const wrong = await c.submit(page, '/login', { loginId: 'solo', password: 'wrong' });
      assert.equal(wrong.status, 401);
      assert.match(wrong.text, /ログインIDまたはパスワードが正しくありません/);
      const foreign = await c.submit(page, '/login', { loginId: 'other', password: PASSWORD });
      assert.equal(foreign.status, 401);
      assert.match(foreign.text, /USER NOT IN TENANTDB/);
      const noCsrf = await c.request('POST', '/login', { form: { loginId: 'solo', password: PASSWORD } });
      assert.equal(noCsrf.status, 403);
      for (let i = 0; i < 3; i++) await c.submit(page, '/login', { loginId: 'solo', password: 'wrong' });
      // 5 failures on this certificate: even the right password is refused for 15 minutes.
      const locked = await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD });
      assert.equal(locked.status, 429);
      assert.match(locked.text, /一時的にロックしています/);
      const failures = await db.selectFrom('audit_events').select('action').where('action', '=', 'login.failed').where('actor', '=', `cert:${cert.row.serial}`).execute();
      assert.equal(failures.length, 5);
      w.clock.advance(16 * 60_000);
      try {
        const ok = await c.follow(await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD }));
        assert.match(ok.text, /<h1>ホーム<\/h1>/);
      } finally {
        w.clock.advance(-16 * 60_000);
      }
    });

    test('a user with no institutions gets a clear page; sessions are bound to the certificate', async () => {
      const a = await w.cert(300);
      const b = await w.cert(300);
      const c = w.client(a);
      const none = await loginAs(c, 'nobody');
      assert.match(none.text, /利用できる健診機関がありません/);
      await c.submit(none, '/logout');
      const home = await loginAs(c, 'solo');
      assert.match(home.text, /<h1>ホーム<\/h1>/);
      assert.ok(c.cookies.get('kenshin_session'));
      c.pfx = { file: b.file, password: b.password };
      assert.equal((await c.get('/home')).status, 303);
      c.pfx = { file: a.file, password: a.password };
      assert.equal((await c.get('/home')).status, 303, 'the session ended for good');
    });

    test('revoking a certificate ends its sessions and refuses its next request', async () => {
      const cert = await w.cert(300);
      const c = w.client(cert);
      const home = await loginAs(c, 'solo');
      assert.match(home.text, /<h1>ホーム<\/h1>/);
      assert.equal((await db.selectFrom('sessions').select('id_hash').where('certificate_id', '=', cert.row.id).execute()).length, 1);
      await revokeCertificate({ db, clock: w.clock }, { serial: cert.row.serial, reason: 'keyCompromise', actor: 'test' });
      assert.equal((await db.selectFrom('sessions').select('id_hash').where('certificate_id', '=', cert.row.id).execute()).length, 0);
      const next = await c.get('/home');
      assert.equal(next.status, 403);
      assert.equal(reasonOf(next.text), 'revoked');
      assert.equal((await c.get('/api/v1/certificate')).json().error, 'certificate_revoked');
    });

    test('security headers and cookie flags', async () => {
      const cert = await w.cert(300);
      const c = w.client(cert);
      const page = await c.get('/');
      assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
      assert.doesNotMatch(page.text, /<script>/);
      const res = await c.submit(page, '/login', { loginId: 'solo', password: PASSWORD });
      const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((s) => s.startsWith('kenshin_session='));
      assert.ok(setCookie);
      assert.match(setCookie!, /HttpOnly/);
      assert.match(setCookie!, /Secure/);
      assert.match(setCookie!, /SameSite=Strict/);
      const stored = await db.selectFrom('sessions').select('id_hash').execute();
      assert.ok(!stored.some((s) => s.id_hash === c.cookies.get('kenshin_session')), 'only the hash is stored');
      assert.equal((await c.get('/nope')).status, 404);
    });
  });
}
