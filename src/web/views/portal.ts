import { html, raw, type Html } from '../html.js';
import { layout, notice, type PageContext } from './layout.js';
import { certificateCard } from './certificate.js';
import { date, dateTime } from './format.js';
import type { CertificateRow, Institution } from '../../db/schema.js';
import type { RenewalStatus } from '../../renewal/policy.js';
import { displaySerial } from '../../ca/serial.js';
import { certificatePairTable, type CertificatePair } from './certificate-pair.js';
import { deleteSteps, importSteps, type Platform } from './steps.js';

export type { Platform } from './steps.js';
import { browserDate } from './format.js';

/**
 * Where the user was going (the gateway's `rd`, already checked by returnPath): carried through
 * the login, 健診機関選択 and 証明書更新チェック forms, so the steps keep the manual's order and the
 * user still ends up at the application page they asked for.
 */
const returnField = (rd: string | undefined) => (rd ? html`<input type="hidden" name="rd" value="${rd}">` : '');

export function loginPage(ctx: PageContext, p: { cert: CertificateRow; now: Date; csrf: string; loginId?: string; error?: string | undefined; info?: string | undefined; rd?: string | undefined }) {
  const { t } = ctx;
  return layout(
    ctx,
    t('login.title'),
    html`<p>${t('login.lead')}</p>
<section class="card"><h2>${t('login.certificate')}</h2>${certificateCard(t, p.cert, p.now)}</section>
<form method="post" action="/login" class="card form" id="login-form" data-once>
  <input type="hidden" name="_csrf" value="${p.csrf}">${returnField(p.rd)}
  <label>${t('login.loginId')}<input name="loginId" id="loginId" autocomplete="username" required value="${p.loginId ?? ''}"></label>
  <label>${t('login.password')}<input name="password" id="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" class="primary" id="login-submit">${t('login.submit')}</button>
</form>`,
    { notice: p.error ? notice('error', p.error, 'login-error') : p.info ? notice('info', p.info) : undefined },
  );
}

export function institutionsPage(ctx: PageContext, p: { institutions: Institution[]; csrf: string; rd?: string | undefined }) {
  const { t } = ctx;
  if (p.institutions.length === 0) {
    return layout(ctx, t('institutions.none.title'), html`<p id="no-institutions">${t('institutions.none.body')}</p>`);
  }
  return layout(
    ctx,
    t('institutions.title'),
    html`<p>${t('institutions.lead')}</p>
<form method="post" action="/institutions" class="card" id="institutions-form" data-once>
  <input type="hidden" name="_csrf" value="${p.csrf}">${returnField(p.rd)}
  <table class="list">
    <thead><tr><th></th><th>${t('institutions.number')}</th><th>${t('institutions.name')}</th></tr></thead>
    <tbody>
    ${p.institutions.map(
      (i, n) => html`<tr><td><input type="radio" name="institutionId" value="${i.id}" id="inst-${i.number}"${n === 0 ? raw(' checked') : ''}></td><td><label for="inst-${i.number}"><code>${i.number}</code></label></td><td><label for="inst-${i.number}">${i.name}</label></td></tr>`,
    )}
    </tbody>
  </table>
  <button type="submit" class="primary" id="select-institution">${t('institutions.select')}</button>
</form>`,
  );
}

export interface HomeModel {
  cert: CertificateRow;
  now: Date;
  institution: Institution;
  user: { loginId: string; role: string };
  status: RenewalStatus;
  /** The current certificate is a renewal successor. */
  isSuccessor: boolean;
  /** Renewed, and this browser still presents the old certificate. */
  successorNotInUse?: { pair: CertificatePair; platform: Platform; afterRestart: boolean } | undefined;
  /** The renewal was fetched by a desktop client (monsiaj, glclient) over the API. */
  clientFetched?: { at: string; agent: string } | undefined;
}

export function homePage(ctx: PageContext, m: HomeModel) {
  const { t } = ctx;
  const notices: Html[] = [];
  if (m.isSuccessor) notices.push(notice('ok', t('home.notice.takenUp', { notAfter: date(m.cert.not_after) }), 'taken-up'));
  if (m.clientFetched) notices.push(notice('info', t('home.notice.clientFetched', { at: dateTime(m.clientFetched.at), agent: m.clientFetched.agent }), 'client-fetched'));
  const n = m.successorNotInUse;
  if (n) {
    // What works differs by browser: Firefox keeps the first-imported of two same-named
    // certificates whatever the restart, so it must delete the old one; the others pick on restart.
    const text =
      n.platform === 'firefox'
        ? t('home.notice.notInUse.firefox', { oldSerial: displaySerial(n.pair.old.serial), oldNotAfter: browserDate(n.pair.old.not_after, ctx.lang) })
        : t('home.notice.notInUse', { newSerial: displaySerial(n.pair.new.serial), newNotAfter: browserDate(n.pair.new.not_after, ctx.lang) });
    const howTo = n.platform === 'firefox' ? html` <a href="/help/delete-old?back=%2Fhome" id="not-in-use-howto">${t('home.notice.howTo')}</a>` : '';
    notices.push(notice('warn', html`${n.afterRestart ? html`<strong id="still-old">${t('home.notice.stillOld')}</strong> ` : ''}${text}${howTo} <a href="/renewal/package">${t('check.openPackage')}</a>`, 'not-in-use'));
  } else if (m.status.eligible) notices.push(notice('warn', html`${t('home.notice.renewSoon', { days: m.status.daysLeft })} <a href="/renewal/check">${t('menu.renewalCheck')}</a>`, 'renew-soon'));
  return layout(
    ctx,
    t('home.title'),
    html`${notices}
<section class="card">
<dl class="facts">
  <dt>${t('home.institution')}</dt><dd id="home-institution">${m.institution.name} (<code>${m.institution.number}</code>)</dd>
  <dt>${t('home.user')}</dt><dd id="home-user">${m.user.loginId} (${t(`home.role.${m.user.role as 'admin' | 'user' | 'operator'}`)})</dd>
</dl>
</section>
<section class="card"><h2>${t('home.certificate')}</h2>${certificateCard(t, m.cert, m.now)}</section>
${n ? certificatePairTable(ctx, n.pair, n.platform) : ''}
<p class="muted">${t('home.business')}</p>`,
  );
}

export function renewalCheckPage(ctx: PageContext, p: { cert: CertificateRow; now: Date; status: RenewalStatus; csrf: string; hasPackage: boolean; rd?: string | undefined }) {
  const { t } = ctx;
  if (p.status.reason === 'already_renewed') {
    return layout(ctx, t('check.title'), html`<p id="already-renewed">${t('check.alreadyRenewed')}</p>${certificateCard(t, p.cert, p.now)}
<p class="actions">${p.hasPackage ? html`<a class="button primary" href="/renewal/package">${t('check.openPackage')}</a>` : ''}<a class="button" href="/home">${t('common.back')}</a></p>`);
  }
  if (!p.status.eligible) {
    return layout(
      ctx,
      t('check.title'),
      html`<p id="not-needed"><strong>${t('check.notNeeded')}</strong> ${t('check.notNeededDetail', { days: p.status.daysLeft, from: date(p.status.windowStart) })}</p>
${certificateCard(t, p.cert, p.now)}
<p class="actions"><a class="button" href="/home">${t('common.back')}</a></p>`,
    );
  }
  return layout(
    ctx,
    t('check.title'),
    html`<p id="renewal-due">${t('check.due')}</p>
<section class="card">${certificateCard(t, p.cert, p.now)}</section>
<div class="actions">
  <a class="button primary" href="/renewal/confirm" id="renewal-get">${t('check.get')}</a>
  <form method="post" action="/renewal/later" class="inline"><input type="hidden" name="_csrf" value="${p.csrf}">${returnField(p.rd)}<button type="submit" id="renewal-later">${t('check.later')}</button></form>
</div>
<p class="muted">${t('check.laterNote')}</p>`,
  );
}

export function renewalConfirmPage(ctx: PageContext, p: { csrf: string }) {
  const { t } = ctx;
  return layout(
    ctx,
    t('confirm.title'),
    html`<p>${t('confirm.lead')}</p>
<ul class="points"><li>${t('confirm.what1')}</li><li>${t('confirm.what2')}</li><li>${t('confirm.what3')}</li></ul>
<div class="actions">
  <form method="post" action="/renewal" class="inline" id="renewal-start-form" data-once data-working="${t('confirm.working')}">
    <input type="hidden" name="_csrf" value="${p.csrf}">
    <button type="submit" class="primary" id="renewal-start">${t('confirm.start')}</button>
  </form>
  <a class="button" href="/home" id="renewal-cancel">${t('confirm.cancel')}</a>
</div>`,
  );
}

export function renewalSavePage(ctx: PageContext, p: { pair: CertificatePair; now: Date; csrf: string; password?: string | undefined; expiresAt: string; platform: Platform }) {
  const { t } = ctx;
  const firefox = p.platform === 'firefox';
  const here = html`<a href="/renewal/package/download" id="download-p12" download>${t('save.here')}</a>`;
  const modern = html`<a href="/renewal/package/download?format=modern" id="download-modern" download>${t('save.modernLink')}</a>`;
  // Help opened from here comes back here: the screen is a GET, so Back and reload show it again.
  const back = `?back=${encodeURIComponent('/renewal/package')}`;
  return layout(
    ctx,
    t('save.title'),
    html`${p.pair.presenting === 'new' ? notice('ok', t('save.presentingNew'), 'presenting-new') : ''}<section class="card">
  <p class="big" id="download-line">${raw(t('save.download', { link: here.value }))}</p>
  <p id="backup-line">${t(firefox ? 'save.backup.firefox' : 'save.backup')}</p>
  <p>${t('save.reveal')}</p>
  <div class="password-row" id="password">
    ${
      p.password
        ? html`<span class="label">${t('save.passwordLabel')}</span><code id="p12-password" class="password">${p.password}</code>
    <button type="button" id="copy-password" data-copy="#p12-password" data-copied="${t('save.copied')}" data-fallback="${t('save.copyFallback')}">${t('save.copy')}</button>
    <span id="copy-status" class="muted" aria-live="polite"></span>`
        : html`<form method="post" action="/renewal/package/password" class="inline"><input type="hidden" name="_csrf" value="${p.csrf}"><button type="submit" id="reveal-password">${t('save.confirm')}</button></form>`
    }
  </div>
  <p class="muted">${t('save.passwordNote')}</p>
  <p class="muted" id="package-expires">${t('save.expires', { until: dateTime(p.expiresAt) })}</p>
</section>
<section class="card important" id="important">
  <h2>${t('save.important')}</h2>
  <ul><li>${t('save.important1')}</li><li>${t('save.important2')}</li></ul>
</section>
<section class="card">
  <h2>${t('save.importTitle')}</h2>
  ${importSteps(ctx, p.platform)}
  <p id="after-import">${t(firefox ? 'save.afterImport.firefox' : 'save.afterImport')}</p>
  <p><a href="/help/import${back}">${t('common.helpImport')}</a> · <a href="/help/delete-old${back}" id="help-delete-link">${t('common.helpDelete')}</a></p>
  <p class="muted" id="modern-line">${raw(t('save.modern', { link: modern.value }))}</p>
</section>
${certificatePairTable(ctx, p.pair, p.platform)}
${
  firefox
    ? html`<section class="card" id="delete-old"><h2>${t('help.delete.title')}</h2>${deleteSteps(ctx, 'firefox', { onlyYours: true })}</section>`
    : html`<details class="card" id="delete-old"><summary>${t('help.delete.title')}</summary>${deleteSteps(ctx, p.platform)}</details>`
}
<section class="card"><h2>${t('save.newCertificate')}</h2>${certificateCard(t, p.pair.new, p.now, 'new-certificate')}</section>`,
  );
}
