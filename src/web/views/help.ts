import { html } from '../html.js';
import { layout, withBackLink, type PageContext } from './layout.js';
import { deleteSteps, importSteps, type Platform } from './steps.js';
import { certificatePairTable, type CertificatePair } from './certificate-pair.js';

/** Where the help was opened from (checked to be on this site), for its 「前の画面に戻る」 link. */
export interface HelpModel {
  platform: Platform;
  back?: string | undefined;
  /** The logged-in user's own old and new certificate, when they have renewed. */
  pair?: CertificatePair | undefined;
}

const helpLink = (path: string, back: string | undefined) => (back ? `${path}?back=${encodeURIComponent(back)}` : path);

export function helpImportPage(ctx: PageContext, m: HelpModel) {
  const { t } = ctx;
  return layout(
    ctx,
    t('help.import.title'),
    withBackLink(
      ctx,
      m.back,
      html`<p>${t('help.import.lead')}</p>${importSteps(ctx, m.platform)}<p class="notice info" id="help-restart">${t(m.platform === 'firefox' ? 'help.restart.firefox' : 'help.restart')}</p>
<p><a href="${helpLink('/help/delete-old', m.back)}" id="help-delete-link">${t('common.helpDelete')}</a></p>`,
    ),
  );
}

export function helpDeletePage(ctx: PageContext, m: HelpModel) {
  const { t } = ctx;
  return layout(
    ctx,
    t('help.delete.title'),
    withBackLink(
      ctx,
      m.back,
      html`<p class="notice warn">${t('help.delete.lead')}</p>
${m.pair ? certificatePairTable(ctx, m.pair, m.platform) : ''}
${deleteSteps(ctx, m.platform)}
<p><a href="${helpLink('/help/import', m.back)}">${t('common.helpImport')}</a></p>`,
    ),
  );
}
