import { displaySerial } from '../../ca/serial.js';
import { html } from '../html.js';
import type { CertificateRow } from '../../db/schema.js';
import type { PageContext } from './layout.js';
import type { Platform } from './steps.js';
import { browserDate } from './format.js';

/** The certificate before renewal and its successor, and which of the two this request presents. */
export interface CertificatePair {
  old: CertificateRow;
  new: CertificateRow;
  presenting: 'old' | 'new';
}

/**
 * Both certificates carry the same subject (the manual says so), and NSS even gives the new one the
 * old one's nickname, so the name cannot tell them apart in any store. Serial and expiry can: shown
 * here exactly as certificate managers show them (DER bytes with colons, the date in the browser's
 * language), with which one to delete and which to keep.
 */
export function certificatePairTable(ctx: PageContext, pair: CertificatePair, platform: Platform) {
  const { t } = ctx;
  const row = (kind: 'old' | 'new', c: CertificateRow) =>
    html`<tr id="pair-${kind}"><th scope="row">${t(kind === 'old' ? 'tell.old' : 'tell.new')}${pair.presenting === kind ? html` <span class="tag">${t('tell.current')}</span>` : ''}</th><td><code class="serial">${displaySerial(c.serial)}</code></td><td class="not-after">${browserDate(c.not_after, ctx.lang)}</td></tr>`;
  return html`<section class="card" id="tell-apart"><h2>${t('tell.title')}</h2>
<p>${t(platform === 'firefox' ? 'tell.lead.firefox' : 'tell.lead')}</p>
<table class="list pair"><thead><tr><th>${t('tell.which')}</th><th>${t('cert.serial')}</th><th>${t('cert.notAfter')}</th></tr></thead>
<tbody>${row('old', pair.old)}${row('new', pair.new)}</tbody></table></section>`;
}
