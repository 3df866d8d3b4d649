import { html, type Html } from '../web/html.js';
import { layout, type PageContext } from '../web/views/layout.js';
import { date, dateTime } from '../web/views/format.js';
import type { Dashboard } from './dashboard.js';
import type { CertificateView } from '../certificates/service.js';
import type { AuditEvent } from '../db/schema.js';

function adminLayout(ctx: PageContext, title: string, body: Html) {
  const { t } = ctx;
  return layout(
    ctx,
    title,
    html`<nav class="admin-nav"><a href="/admin">${t('admin.nav.dashboard')}</a><a href="/admin/certificates">${t('admin.nav.certificates')}</a><a href="/admin/audit">${t('admin.nav.audit')}</a></nav>${body}`,
  );
}

/** Expirations per month as a server-rendered SVG bar chart (no script, CSP-safe). */
function monthChart(months: Dashboard['months']): Html {
  const w = 720;
  const h = 180;
  const barW = w / months.length;
  const max = Math.max(1, ...months.map((m) => m.count));
  const bars = months.map((m, i) => {
    const bh = Math.round((m.count / max) * (h - 30));
    const x = (i * barW + 2).toFixed(1);
    const label = i % 6 === 0 ? html`<text x="${x}" y="${h - 2}" font-size="10" fill="#5b6675">${m.month}</text>` : '';
    return html`<g><title>${m.month}: ${m.count}</title><rect x="${x}" y="${h - 16 - bh}" width="${(barW - 4).toFixed(1)}" height="${bh}" fill="#1f5fae"></rect>${label}</g>`;
  });
  return html`<svg id="expiry-chart" viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="expirations per month">${bars}</svg>`;
}

export function dashboardPage(ctx: PageContext, d: Dashboard) {
  const { t } = ctx;
  return adminLayout(
    ctx,
    t('admin.nav.dashboard'),
    html`<section class="card"><dl class="facts" id="buckets">${d.buckets.map((b) => html`<dt>${t('admin.expiringWithin', { days: b.days })}</dt><dd id="bucket-${b.days}">${b.count}</dd>`)}</dl></section>
<section class="card"><h2>${t('admin.perMonth')}</h2>${monthChart(d.months)}</section>
<section class="card"><h2>${t('admin.expiringTenants')}</h2>
${
  d.expiringTenants.length
    ? html`<table class="list" id="expiring-tenants"><thead><tr><th>${t('admin.tenant')}</th><th>${t('cert.serial')}</th><th>${t('cert.notAfter')}</th><th>${t('admin.contact')}</th><th>${t('admin.lastReminder')}</th></tr></thead><tbody>
${d.expiringTenants.map((e) => html`<tr><td>${e.tenantCode} ${e.tenantName}</td><td><a href="/admin/certificates/${e.serial}"><code>${e.serial}</code></a></td><td>${date(e.notAfter)}</td><td>${e.contactEmail ?? '—'}</td><td>${e.lastReminderAt ? dateTime(e.lastReminderAt) : '—'}</td></tr>`)}
</tbody></table>`
    : html`<p>${t('admin.none')}</p>`
}</section>`,
  );
}

export function certificatesPage(ctx: PageContext, p: { rows: CertificateView[]; tenant: string; within: string }) {
  const { t } = ctx;
  return adminLayout(
    ctx,
    t('admin.nav.certificates'),
    html`<form method="get" action="/admin/certificates" class="card inline-form">
  <label>${t('admin.tenant')} <input name="tenant" value="${p.tenant}"></label>
  <label>${t('admin.withinDays')} <input name="within" value="${p.within}" inputmode="numeric" size="4"></label>
  <button type="submit">${t('admin.filter')}</button>
</form>
<table class="list" id="certificates"><thead><tr><th>${t('cert.serial')}</th><th>${t('admin.tenant')}</th><th>${t('cert.status')}</th><th>${t('cert.notAfter')}</th><th>${t('cert.daysLeft')}</th></tr></thead><tbody>
${p.rows.map((c) => html`<tr><td><a href="/admin/certificates/${c.serial}"><code>${c.serial}</code></a></td><td>${c.tenantCode}</td><td>${t(`cert.status.${c.status}`)}</td><td>${date(c.notAfter)}</td><td>${c.daysLeft}</td></tr>`)}
</tbody></table>`,
  );
}

export function certificatePage(ctx: PageContext, c: CertificateView) {
  const { t } = ctx;
  const link = (s: string) => html`<a href="/admin/certificates/${s}"><code>${s}</code></a>`;
  return adminLayout(
    ctx,
    `${t('home.certificate')} ${c.serial}`,
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
</dl></section>`,
  );
}

export function auditPage(ctx: PageContext, p: { rows: (AuditEvent & { tenant_code: string | null })[]; query: Record<string, string> }) {
  const { t } = ctx;
  const q = p.query;
  const csv = '/admin/audit?' + new URLSearchParams({ ...q, format: 'csv' }).toString();
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
</tbody></table>`,
  );
}

export function forbiddenPage(ctx: PageContext) {
  return layout(ctx, ctx.t('admin.title'), html`<p id="forbidden">${ctx.t('admin.forbidden')}</p>`);
}
