import { html } from '../web/html.js';
import type { PageContext } from '../web/views/layout.js';
import { dateTime } from '../web/views/format.js';
import { COLUMNS } from '../onboarding/rows.js';
import type { JobView } from '../onboarding/jobs.js';
import { adminLayout } from './views.js';

const kib = (n: number) => (n < 1024 * 1024 ? `${Math.max(1, Math.round(n / 1024))} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`);
const duration = (s: number) => (s < 90 ? `${Math.ceil(s)} s` : `${Math.ceil(s / 60)} min`);

function statusBadge(ctx: PageContext, j: JobView) {
  return html`<span class="status status-${j.status}">${ctx.t(`admin.onboard.status.${j.status}`)}</span>`;
}

/** The upload form and the recent jobs. */
export function onboardPage(ctx: PageContext, p: { jobs: JobView[]; csrf: string; error?: string | undefined }) {
  const { t } = ctx;
  return adminLayout(
    ctx,
    t('admin.nav.onboard'),
    html`${p.error ? html`<p class="notice error" id="onboard-error">${p.error}</p>` : ''}<p>${t('admin.onboard.lead')}</p>
<form method="post" action="/admin/onboard" enctype="multipart/form-data" class="card form" id="onboard-upload" data-once>
  <input type="hidden" name="_csrf" value="${p.csrf}">
  <label>${t('admin.onboard.file')}<input type="file" name="csv" accept=".csv,text/csv" required></label>
  <label>${t('admin.keyType')}<select name="key"><option value="rsa2048">RSA-2048</option><option value="p256">ECDSA P-256</option></select></label>
  <label>${t('admin.profile')}<select name="profile"><option value="compatible">compatible (3DES / SHA-1)</option><option value="modern">modern (AES-256 / SHA-256)</option></select></label>
  <p class="hint">${t('admin.onboard.columns')}: <code>${COLUMNS.join(',')}</code></p>
  <button type="submit" class="primary" id="onboard-check">${t('admin.onboard.check')}</button>
</form>
${
  p.jobs.length
    ? html`<section class="card"><h2>${t('admin.onboard.recent')}</h2><div class="table-scroll"><table class="list" id="onboard-jobs"><thead><tr><th>${t('admin.at')}</th><th>CSV</th><th>${t('admin.status')}</th><th>${t('admin.actor')}</th></tr></thead><tbody>
${p.jobs.map((j) => html`<tr><td class="nowrap">${dateTime(j.createdAt)}</td><td><a href="/admin/onboard/${j.id}">${j.fileName}</a> (${j.totalRows})</td><td>${statusBadge(ctx, j)}</td><td>${j.createdBy}</td></tr>`)}
</tbody></table></div></section>`
    : ''
}`,
  );
}

/** One job: its preview, its progress while it runs, or its files when it is done. */
export function onboardJobPage(ctx: PageContext, j: JobView, p: { csrf: string; error?: string | undefined }) {
  const { t } = ctx;
  const r = j.report;
  const problems = r.skippedRows;
  const counts = t('admin.onboard.counts', { rows: r.rows, issue: j.status === 'done' ? r.issued : r.rows - r.alreadyDone, tenants: r.tenantsCreated.length, institutions: r.institutionsCreated.length, users: r.usersCreated.length });
  const running = j.status === 'running' && j.progress;
  let progress = html``;
  if (running && j.progress) {
    const { done, total, startedMs } = j.progress;
    const secs = Math.max(0.001, (Date.now() - startedMs) / 1000);
    const rate = done / secs;
    progress = html`<section class="card" id="onboard-progress"><p class="notice info">${t('admin.onboard.running')}</p><progress max="${Math.max(1, total)}" value="${done}"></progress>
<p id="onboard-rate">${t('admin.onboard.rate', { done, total, rate: rate.toFixed(1), left: rate > 0 ? duration((total - done) / rate) : '—' })}</p></section>`;
  }
  const startForm = (label: string, id: string) =>
    html`<form method="post" action="/admin/onboard/${j.id}/start" class="card form" id="${id}" data-once><input type="hidden" name="_csrf" value="${p.csrf}">
${problems.length ? html`<label class="check"><input type="checkbox" name="skip" value="1" id="onboard-skip"> ${t('admin.onboard.skipBad')}</label>` : ''}
<button type="submit" class="primary" id="onboard-start">${label}</button></form>`;
  const pdf = j.files.find((f) => f.name.endsWith('.pdf'));
  const csv = j.files.find((f) => f.name.endsWith('.csv'));
  const p12s = j.files.filter((f) => f.name.endsWith('.p12'));
  const files =
    j.status === 'done' || j.files.length
      ? j.filesDeleted
        ? html`<p class="notice info" id="onboard-files-deleted">${t('admin.onboard.filesDeleted')}</p>`
        : j.files.length
          ? html`<section class="card" id="onboard-files"><h2>${t('admin.onboard.files')}</h2><ul>
${pdf ? html`<li><a href="/admin/onboard/${j.id}/files/${pdf.name}" id="onboard-pdf" download>${t('admin.onboard.pdf')}</a> (${kib(pdf.bytes)})</li>` : ''}
${p12s.length ? html`<li><a href="/admin/onboard/${j.id}/certificates.zip" id="onboard-zip" download>${t('admin.onboard.zip')}</a> (${p12s.length})</li>` : ''}
${csv ? html`<li><a href="/admin/onboard/${j.id}/files/${csv.name}" id="onboard-csv" download>${t('admin.onboard.resultCsv')}</a></li>` : ''}
</ul><p class="notice warn">${t('admin.onboard.sendApart')}</p>
${
  j.status !== 'running'
    ? html`<form method="post" action="/admin/onboard/${j.id}/delete-files" id="onboard-delete"><input type="hidden" name="_csrf" value="${p.csrf}"><p class="hint">${t('admin.onboard.deleteWarn')}</p><button type="submit">${t('admin.onboard.deleteFiles')}</button></form>`
    : ''
}</section>`
          : ''
      : '';
  return adminLayout(
    ctx,
    t('admin.onboard.previewTitle', { file: j.fileName }),
    html`${p.error ? html`<p class="notice error" id="onboard-error">${p.error}</p>` : ''}<p>${statusBadge(ctx, j)} <span id="onboard-counts">${counts}</span></p>
${r.alreadyDone && j.status !== 'done' ? html`<p class="notice info">${t('admin.onboard.alreadyDone', { n: r.alreadyDone })}</p>` : ''}
${j.status === 'done' ? html`<p class="notice ok" id="onboard-done">${t('admin.onboard.done', { issued: r.issued })}</p>` : ''}
${j.status === 'failed' ? html`<div class="notice error" id="onboard-failed"><strong>${t('admin.onboard.failed')}</strong><pre>${j.error ?? ''}</pre></div>` : ''}
${j.status === 'interrupted' ? html`<p class="notice warn" id="onboard-interrupted">${t('admin.onboard.interrupted')}</p>` : ''}
${progress}
${files}
${
  problems.length
    ? html`<section class="card important"><h2>${t('admin.onboard.problems', { n: problems.length })}</h2><div class="table-scroll"><table class="list" id="onboard-problems"><thead><tr><th>${t('admin.onboard.line')}</th><th>${t('admin.onboard.column')}</th><th>${t('admin.onboard.problem')}</th></tr></thead><tbody>
${problems.map((e) => html`<tr><td>${e.line}</td><td>${e.column ? `${e.column} (${e.name})` : '—'}</td><td>${e.problem}</td></tr>`)}
</tbody></table></div></section>`
    : ''
}
${j.status === 'previewed' ? startForm(t('admin.onboard.start'), 'onboard-start-form') : ''}
${j.status === 'interrupted' || (j.status === 'failed' && !j.filesDeleted) ? startForm(t('admin.onboard.resume'), 'onboard-resume-form') : ''}
${
  j.status === 'previewed'
    ? html`<section class="card"><h2>${t('admin.onboard.sample', { shown: j.sample.length, total: j.totalRows })}</h2><div class="table-scroll"><table class="list wide" id="onboard-sample"><thead><tr><th>${t('admin.onboard.line')}</th><th>${t('admin.tenant')}</th><th>${t('admin.institutions')}</th><th>${t('admin.users')}</th><th>${t('admin.label')}</th></tr></thead><tbody>
${j.sample.map((s) => html`<tr><td>${s.line}</td><td>${s.tenantCode} ${s.tenantName}</td><td>${s.institutionNumber} ${s.institutionName}</td><td>${s.users.map((u) => `${u.loginId} (${u.role === 'admin' ? '管理者' : '一般ユーザ'})`).join(', ')}</td><td>${s.label ?? ''}</td></tr>`)}
</tbody></table></div></section>`
    : ''
}`,
    running ? { refreshSeconds: 2 } : {},
  );
}
