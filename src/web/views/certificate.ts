import { displaySerial } from '../../ca/serial.js';
import { html } from '../html.js';
import type { T } from '../i18n/index.js';
import type { CertificateRow } from '../../db/schema.js';
import { date } from './format.js';
import { daysLeft, effectiveStatus } from '../../certificates/status.js';

/** The certificate as the user sees it on every screen: name, serial, expiry, days left, state. */
export function certificateCard(t: T, cert: CertificateRow, now: Date, id = 'certificate') {
  const status = effectiveStatus(cert, now);
  return html`<dl class="cert" id="${id}">
  <dt>${t('cert.name')}</dt><dd class="subject">${cert.subject}</dd>
  <dt>${t('cert.serial')}</dt><dd class="serial"><code>${displaySerial(cert.serial)}</code></dd>
  <dt>${t('cert.notAfter')}</dt><dd class="not-after">${date(cert.not_after)}</dd>
  <dt>${t('cert.daysLeft')}</dt><dd class="days-left">${t('cert.days', { days: Math.max(0, daysLeft(cert.not_after, now)) })}</dd>
  <dt>${t('cert.status')}</dt><dd class="status status-${status}">${t(`cert.status.${status}`)}</dd>
</dl>`;
}
