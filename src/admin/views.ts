import { displaySerial } from '../ca/serial.js';
import { html, type Html } from '../web/html.js';
import { layout, type PageContext } from '../web/views/layout.js';
import { date, dateTime } from '../web/views/format.js';
import type { Dashboard, DashboardSort } from './dashboard.js';
import { REVOCATION_REASONS, type CertificateView, type RenewalSummary } from '../certificates/service.js';
import type { AuditEvent } from '../db/schema.js';

export function adminLayout(ctx: PageContext, title: string, body: Html, opts: { refreshSeconds?: number } = {}) {
  const { t } = ctx;
  return layout(
    ctx,
    title,
    html`<nav class="admin-nav"><a href="/admin">${t('admin.nav.dashboard')}</a><a href="/admin/tenants">${t('admin.nav.tenants')}</a><a href="/admin/certificates">${t('admin.nav.certificates')}</a><a href="/admin/onboard">${t('admin.nav.onboard')}</a><a href="/admin/audit">${t('admin.nav.audit')}</a></nav>${body}`,
    opts,
  );
}

/**
 * Expirations per month as a server-rendered SVG bar chart (no script, CSP-safe): each bar with its
 * count (turned upright along the bar, so five-digit counts of a million-certificate installation
 * fit a 20-pixel bar: inside it in white when the bar is tall enough, above it otherwise), a month
 * label every third bar, and a baseline, so it reads without hovering.
 */
function monthChart(months: Dashboard['months']): Html {
  const w = 720;
  const h = 220;
  const top = 8;
  const base = h - 18;
  const barW = w / months.length;
  const max = Math.max(1, ...months.map((m) => m.count));
  const bars = months.map((m, i) => {
    const bh = Math.round((m.count / max) * (base - top - 40));
    const x = i * barW + 2;
    const cx = x + (barW - 4) / 2 + 3;
    const text = m.count.toLocaleString('en');
    // About 5.5 px per character at this size: inside when the bar has room for the figure and a margin.
    const inside = bh >= text.length * 5.5 + 8;
    const y = inside ? base - 4 : base - bh - 3;
    const label = i % 3 === 0 ? html`<text x="${x.toFixed(1)}" y="${h - 4}" font-size="10" fill="#5b6675">${m.month}</text>` : '';
    const value = m.count > 0 ? html`<text x="${cx.toFixed(1)}" y="${y}" transform="rotate(-90 ${cx.toFixed(1)} ${y})" font-size="9" fill="${inside ? '#ffffff' : '#1b2430'}" class="bar-value">${text}</text>` : '';
    return html`<g><title>${m.month}: ${text}</title><rect x="${x.toFixed(1)}" y="${base - bh}" width="${(barW - 4).toFixed(1)}" height="${bh}" fill="#1f5fae"></rect>${value}${label}</g>`;
  });
  return html`<svg id="expiry-chart" viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="expirations per month"><line x1="0" y1="${base}" x2="${w}" y2="${base}" stroke="#9aa4b1" stroke-width="1"></line>${bars}</svg>`;
}

/**
 * A column header of the tenants to chase that sorts by it: a plain link (no script), the current
 * order marked with aria-sort and an arrow; the expiry column toggles between soonest and latest first.
 */
function sortableHeader(ctx: PageContext, current: DashboardSort, column: 'tenant' | 'expiry', label: string): Html {
  const active = column === 'tenant' ? current === 'tenant' : current !== 'tenant';
  const descending = column === 'expiry' && current === 'expiry-desc';
  const target: DashboardSort = column === 'tenant' ? 'tenant' : current === 'expiry' ? 'expiry-desc' : 'expiry';
  const href = target === 'expiry' ? '/admin#expiring-tenants' : `/admin?sort=${target}#expiring-tenants`;
  return html`<th${active ? html` aria-sort="${descending ? 'descending' : 'ascending'}"` : ''}><a class="sort" href="${href}" id="sort-${column}" title="${ctx.t('admin.sortHint')}">${label}${active ? (descending ? ' ▼' : ' ▲') : ''}</a></th>`;
}

export function dashboardPage(ctx: PageContext, d: Dashboard) {
  const { t } = ctx;
  const total = d.buckets.find((b) => b.days === 90)?.count ?? 0;
  return adminLayout(
    ctx,
    t('admin.nav.dashboard'),
    html`<section class="tiles" id="buckets">${d.buckets.map((b) => html`<div class="tile"><span class="tile-label">${t('admin.expiringWithin', { days: b.days })}</span><span class="tile-value" data-count="${b.count}" id="bucket-${b.days}">${b.count.toLocaleString('en')}</span></div>`)}</section>
<section class="card"><h2>${t('admin.perMonth')}</h2>${monthChart(d.months)}</section>
<section class="card"><h2>${t('admin.expiringTenants')} <small>(${total.toLocaleString('en')})</small></h2>
${
  d.expiringTenants.length
    ? html`<div class="table-scroll"><table class="list wide" id="expiring-tenants"><thead><tr>${sortableHeader(ctx, d.sort, 'tenant', t('admin.tenant'))}<th>${t('cert.serial')}</th>${sortableHeader(ctx, d.sort, 'expiry', t('cert.notAfter'))}<th>${t('admin.contact')}</th><th>${t('admin.lastReminder')}</th></tr></thead><tbody>
${d.expiringTenants.map((e) => html`<tr><td class="tenant">${e.tenantCode} ${e.tenantName}</td><td class="serial"><a href="/admin/certificates/${e.serial}"><code>${displaySerial(e.serial)}</code></a></td><td class="nowrap">${date(e.notAfter)}</td><td class="mail">${e.contactEmail ?? '—'}</td><td class="nowrap">${e.lastReminderAt ? dateTime(e.lastReminderAt) : '—'}</td></tr>`)}
</tbody></table></div>${d.next ? html`<p class="pager"><a href="/admin?${d.sort === 'expiry' ? '' : `sort=${d.sort}&`}after=${d.next}" id="next-page" rel="next">${t('admin.nextPage')}</a></p>` : ''}`
    : html`<p>${t('admin.none')}</p>`
}</section>`,
  );
}

export function certificatesPage(ctx: PageContext, p: { rows: CertificateView[]; next: string | undefined; tenant: string; within: string; status: string; search: string; first: boolean }) {
  const { t } = ctx;
  const filters = { tenant: p.tenant, within: p.within, status: p.status, q: p.search };
  const link = (extra: Record<string, string>) => '/admin/certificates?' + new URLSearchParams(Object.entries({ ...filters, ...extra }).filter(([, v]) => v !== '')).toString();
  return adminLayout(
    ctx,
    t('admin.nav.certificates'),
    html`<p class="actions"><a class="button primary" href="/admin/certificates/new" id="issue-link">${t('admin.issue')}</a></p><form method="get" action="/admin/certificates" class="card inline-form">
  <label>${t('admin.search')} <input name="q" value="${p.search}" size="24" placeholder="${t('admin.searchHint')}" id="certificate-search"></label>
  <label>${t('admin.tenant')} <input name="tenant" value="${p.tenant}" size="8"></label>
  <label>${t('admin.withinDays')} <input name="within" value="${p.within}" inputmode="numeric" size="4"></label>
  <label>${t('admin.status')} <select name="status"><option value="">${t('admin.all')}</option>${(['active', 'expired', 'revoked', 'not_yet_valid'] as const).map((s) => html`<option value="${s}"${p.status === s ? html` selected` : ''}>${t(`cert.status.${s}`)}</option>`)}</select></label>
  <button type="submit">${t('admin.filter')}</button>
</form>
<table class="list" id="certificates"><thead><tr><th>${t('cert.serial')}</th><th>${t('admin.tenant')}</th><th>${t('cert.status')}</th><th>${t('cert.notAfter')}</th><th>${t('cert.daysLeft')}</th></tr></thead><tbody>
${p.rows.map((c) => html`<tr><td><a href="/admin/certificates/${c.serial}"><code>${displaySerial(c.serial)}</code></a></td><td>${c.tenantCode}</td><td>${t(`cert.status.${c.status}`)}</td><td>${date(c.notAfter)}</td><td>${c.daysLeft}</td></tr>`)}
</tbody></table>
${p.rows.length === 0 ? html`<p class="muted" id="no-certificates">${t('admin.noCertificates')}</p>` : ''}
<p class="actions pager">${p.first ? '' : html`<a class="button" href="${link({})}" id="page-first">${t('admin.firstPage')}</a>`}${p.next ? html`<a class="button" href="${link({ after: p.next })}" id="page-next">${t('admin.nextCertificates')}</a>` : ''}</p>`,
  );
}

export function certificatePage(ctx: PageContext, c: CertificateView & { renewal: RenewalSummary | null }, csrf: string) {
  const { t } = ctx;
  const link = (s: string) => html`<a href="/admin/certificates/${s}"><code>${s}</code></a>`;
  return adminLayout(
    ctx,
    `${t('home.certificate')} ${displaySerial(c.serial)}`,
    html`<section class="card"><dl class="facts" id="certificate-detail">
  <dt>${t('cert.name')}</dt><dd>${c.subject}</dd>
  <dt>${t('admin.tenant')}</dt><dd>${c.tenantCode} ${c.tenantName}</dd>
  <dt>${t('cert.status')}</dt><dd>${t(`cert.status.${c.status}`)}${c.revocationReason ? ` (${c.revocationReason})` : ''}</dd>
  <dt>${t('cert.notAfter')}</dt><dd>${date(c.notAfter)} (${c.daysLeft})</dd>
  <dt>${t('admin.issuedVia')}</dt><dd>${c.issuedVia}</dd>
</dl></section>
<section class="card"><h2>${t('admin.lineage')}</h2><dl class="facts" id="lineage">
  <dt>${t('admin.predecessor')}</dt><dd>${c.predecessorSerial ? link(c.predecessorSerial) : '—'}</dd>
  <dt>${t('admin.successors')}</dt><dd>${c.successorSerials.length ? c.successorSerials.map((s) => html`${link(s)} `) : '—'}</dd>
  ${
    c.renewal
      ? html`<dt>${t('admin.renewal.takenUp')}</dt><dd id="renewal-taken-up">${c.renewal.takenUpAt ? dateTime(c.renewal.takenUpAt) : t('admin.renewal.notYet')}</dd>
  <dt>${t('admin.renewal.clientFetched')}</dt><dd id="renewal-client-fetched">${c.renewal.clientFetchedAt ? html`${dateTime(c.renewal.clientFetchedAt)} (<code>${c.renewal.clientAgent ?? 'unknown'}</code>)` : '—'}</dd>`
      : ''
  }
</dl></section>
<p class="actions"><a class="button" href="/admin/certificates/new?reissue=${c.serial}" id="reissue-link">${t('admin.reissue')}</a></p>
${
  c.status === 'revoked'
    ? ''
    : html`<form method="post" action="/admin/certificates/${c.serial}/revoke" class="card inline-form" id="revoke-form" data-once>
  <input type="hidden" name="_csrf" value="${csrf}">
  <label>${t('admin.revokeReason')} <select name="reason">${REVOCATION_REASONS.map((r) => html`<option value="${r}">${r}</option>`)}</select></label>
  <label><input type="checkbox" name="withSuccessors" value="1"> ${t('admin.withSuccessors')}</label>
  <button type="submit" id="revoke-submit">${t('admin.revoke')}</button>
</form>`
}`,
  );
}

export function auditPage(ctx: PageContext, p: { rows: (AuditEvent & { tenant_code: string | null })[]; query: Record<string, string>; older?: number | undefined }) {
  const { t } = ctx;
  // The filters alone: the page's own cursor and the CSV switch are not carried into its links.
  const q = Object.fromEntries(Object.entries(p.query).filter(([k]) => k !== 'before' && k !== 'format'));
  const csv = '/admin/audit?' + new URLSearchParams({ ...q, format: 'csv' }).toString();
  const olderLink = p.older === undefined ? undefined : '/admin/audit?' + new URLSearchParams({ ...q, before: String(p.older) }).toString();
  return adminLayout(
    ctx,
    t('admin.nav.audit'),
    html`<form method="get" action="/admin/audit" class="card inline-form">
  <label>${t('admin.tenant')} <input name="tenant" value="${q.tenant ?? ''}" size="8"></label>
  <label>${t('admin.actor')} <input name="actor" value="${q.actor ?? ''}" size="12"></label>
  <label>${t('admin.action')} <input name="action" value="${q.action ?? ''}" size="16"></label>
  <label>${t('admin.period')} <input name="from" type="date" value="${q.from ?? ''}"> – <input name="to" type="date" value="${q.to ?? ''}"></label>
  <button type="submit">${t('admin.filter')}</button> <a href="${csv}" id="audit-csv">${t('admin.csv')}</a>
</form>
<table class="list" id="audit"><thead><tr><th>${t('admin.at')}</th><th>${t('admin.tenant')}</th><th>${t('admin.actor')}</th><th>${t('admin.action')}</th><th>${t('admin.target')}</th></tr></thead><tbody>
${p.rows.map((r) => html`<tr><td>${dateTime(r.at)}</td><td>${r.tenant_code ?? '—'}</td><td>${r.actor}</td><td><code>${r.action}</code></td><td>${r.target ?? ''}</td></tr>`)}
</tbody></table>
${olderLink ? html`<p class="actions pager"><a class="button" href="${olderLink}" id="audit-older">${t('admin.olderEvents')}</a></p>` : ''}`,
  );
}

export function forbiddenPage(ctx: PageContext) {
  return layout(ctx, ctx.t('admin.title'), html`<p id="forbidden">${ctx.t('admin.forbidden')}</p>`);
}

export function issueFormPage(ctx: PageContext, p: { tenant?: string | undefined; reissue?: string | undefined; csrf: string; error?: string | undefined }) {
  const { t } = ctx;
  const title = p.reissue ? t('admin.reissueFor', { serial: p.reissue }) : t('admin.issueFor', { tenant: p.tenant ?? '' });
  return adminLayout(
    ctx,
    title,
    html`${p.error ? html`<p class="notice error" id="issue-error">${p.error}</p>` : ''}<form method="post" action="/admin/certificates" class="card form" id="issue-form" data-once>
  <input type="hidden" name="_csrf" value="${p.csrf}">
  ${p.reissue ? html`<input type="hidden" name="reissue" value="${p.reissue}">` : html`<label>${t('admin.tenant')}<input name="tenant" value="${p.tenant ?? ''}" required></label><label>${t('admin.label')}<input name="label"></label>`}
  <label>${t('admin.keyType')}<select name="key"><option value="rsa2048">RSA-2048</option><option value="p256">ECDSA P-256</option></select></label>
  <label>${t('admin.profile')}<select name="profile"><option value="compatible">compatible (3DES / SHA-1)</option><option value="modern">modern (AES-256 / SHA-256)</option></select></label>
  <button type="submit" class="primary" id="issue-submit">${t('admin.doIssue')}</button>
</form>`,
  );
}

/** Shown once after issuing: the download, the A4 delivery sheet, and the password on its own slip. */
export function issuedPage(ctx: PageContext, p: { serial: string; subject: string; tenantName: string; tenantCode: string; notAfter: string; password: string; downloadId: string }) {
  const { t } = ctx;
  return adminLayout(
    ctx,
    t('admin.issued'),
    html`<section class="card no-print"><p><a class="button primary" href="/admin/deliveries/${p.downloadId}" id="delivery-download" download>${t('admin.downloadOnce')}</a></p>
<p class="notice warn">${t('admin.passwordOnce')}</p><p><button type="button" data-print>${t('admin.print')}</button></p></section>
<section class="sheet" id="delivery-sheet"><h2>${t('admin.sheetTitle')}</h2><p>${t('admin.sheetLead')}</p>
<dl class="facts"><dt>${t('admin.tenant')}</dt><dd>${p.tenantName} (${p.tenantCode})</dd><dt>${t('cert.name')}</dt><dd>${p.subject}</dd><dt>${t('cert.serial')}</dt><dd><code>${displaySerial(p.serial)}</code></dd><dt>${t('cert.notAfter')}</dt><dd>${date(p.notAfter)}</dd></dl>
<h3>${t('save.importTitle')}</h3><ol><li>${t('steps.windows1')}</li><li>${t('steps.windows2')}</li><li>${t('steps.windows3')}</li><li>${t('steps.windows4')}</li></ol><p>${t('steps.firefox')}: ${t('steps.firefox3')}</p></section>
<section class="sheet slip" id="password-slip"><h2>${t('admin.slipTitle')}</h2><p><code class="password" id="issued-password">${p.password}</code></p><p><code>${displaySerial(p.serial)}</code></p></section>`,
  );
}

export interface TenantDetail {
  tenant: { code: string; name: string; contact_email: string | null };
  institutions: { number: string; name: string }[];
  users: { login_id: string; role: string; locked_at: string | null; institutions: string[] }[];
  certificates: CertificateView[];
}

export function tenantsPage(ctx: PageContext, p: { tenants: { code: string; name: string; contact_email: string | null }[]; csrf: string; error?: string | undefined }) {
  const { t } = ctx;
  return adminLayout(
    ctx,
    t('admin.nav.tenants'),
    html`${p.error ? html`<p class="notice error" id="form-error">${p.error}</p>` : ''}
<table class="list" id="tenants"><thead><tr><th>${t('admin.code')}</th><th>${t('admin.name')}</th><th>${t('admin.contact')}</th></tr></thead><tbody>
${p.tenants.map((x) => html`<tr><td><a href="/admin/tenants/${x.code}"><code>${x.code}</code></a></td><td>${x.name}</td><td>${x.contact_email ?? '—'}</td></tr>`)}
</tbody></table>
<form method="post" action="/admin/tenants" class="card form" id="tenant-form"><input type="hidden" name="_csrf" value="${p.csrf}">
<label>${t('admin.code')}<input name="code" required></label><label>${t('admin.name')}<input name="name" required></label><label>${t('admin.email')}<input name="email" type="email"></label>
<button type="submit" class="primary">${t('admin.add')}</button></form>`,
  );
}

/**
 * One tenant's people and certificates. Operators (base /admin/tenants/CODE) may also edit the tenant,
 * add 健診機関 and issue; a tenant's own 管理者 (base /tenant, scope 'tenant') manages its users only.
 */
export function tenantPage(ctx: PageContext, d: TenantDetail, p: { csrf: string; notice?: string | undefined; error?: string | undefined; scope?: 'operator' | 'tenant' }) {
  const { t } = ctx;
  const operator = (p.scope ?? 'operator') === 'operator';
  const csrf = html`<input type="hidden" name="_csrf" value="${p.csrf}">`;
  const base = operator ? `/admin/tenants/${d.tenant.code}` : '/tenant';
  const frame = operator ? adminLayout : layout;
  return frame(
    ctx,
    `${d.tenant.name} (${d.tenant.code})`,
    html`${p.notice ? html`<p class="notice ok" id="form-notice">${p.notice}</p>` : ''}${p.error ? html`<p class="notice error" id="form-error">${p.error}</p>` : ''}
${operator ? html`<form method="post" action="${base}" class="card inline-form" id="tenant-edit">${csrf}<label>${t('admin.name')} <input name="name" value="${d.tenant.name}"></label><label>${t('admin.email')} <input name="email" value="${d.tenant.contact_email ?? ''}"></label><button type="submit">${t('admin.save')}</button></form>` : ''}
<section class="card"><h2>${t('admin.institutions')}</h2><table class="list" id="institutions"><tbody>${d.institutions.map((i) => html`<tr><td><code>${i.number}</code></td><td>${i.name}</td></tr>`)}</tbody></table>
${operator ? html`<form method="post" action="${base}/institutions" class="inline-form">${csrf}<label>${t('institutions.number')} <input name="number" size="12" required></label><label>${t('admin.name')} <input name="name" required></label><button type="submit">${t('admin.add')}</button></form>` : ''}</section>
<section class="card"><h2>${t('admin.users')}</h2><table class="list" id="users"><thead><tr><th>${t('login.loginId')}</th><th>${t('admin.role')}</th><th>${t('admin.institutions')}</th><th></th></tr></thead><tbody>
${d.users.map(
  (u) => html`<tr><td>${u.login_id}${u.locked_at ? html` <span class="tag">${t('admin.locked')}</span>` : ''}</td><td>${t(`home.role.${u.role as 'admin' | 'user' | 'operator'}`)}</td>
<td><form method="post" action="${base}/users/${u.login_id}/institutions" class="inline">${csrf}<input name="institutions" value="${u.institutions.join(',')}" size="24" aria-label="${t('admin.setInstitutions')}"> <button type="submit">${t('admin.save')}</button></form></td>
<td><form method="post" action="${base}/users/${u.login_id}/${u.locked_at ? 'unlock' : 'lock'}" class="inline">${csrf}<button type="submit">${u.locked_at ? t('admin.unlock') : t('admin.lock')}</button></form>
<form method="post" action="${base}/users/${u.login_id}/reset-password" class="inline">${csrf}<button type="submit">${t('admin.resetPassword')}</button></form></td></tr>`,
)}
</tbody></table>
<form method="post" action="${base}/users" class="inline-form" id="user-form">${csrf}<label>${t('login.loginId')} <input name="login" required size="12"></label>
<label>${t('admin.role')} <select name="role"><option value="user">${t('home.role.user')}</option><option value="admin">${t('home.role.admin')}</option></select></label>
<label>${t('admin.setInstitutions')} <input name="institutions" size="24"></label><button type="submit">${t('admin.add')}</button></form></section>
<section class="card"><h2>${t('admin.certificates')}</h2>${operator ? html`<p><a class="button primary" href="/admin/certificates/new?tenant=${d.tenant.code}">${t('admin.issue')}</a></p>` : ''}
<table class="list" id="tenant-certificates"><tbody>${d.certificates.map((c) => html`<tr><td>${operator ? html`<a href="/admin/certificates/${c.serial}"><code>${displaySerial(c.serial)}</code></a>` : html`<code>${displaySerial(c.serial)}</code>`}</td><td>${t(`cert.status.${c.status}`)}</td><td>${date(c.notAfter)}</td><td>${c.daysLeft > 0 ? t('cert.days', { days: c.daysLeft }) : ''}</td></tr>`)}</tbody></table></section>`,
  );
}
