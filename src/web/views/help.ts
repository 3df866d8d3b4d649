import { html } from '../html.js';
import { layout, type PageContext } from './layout.js';
import { importSteps, type Platform } from './portal.js';

export function helpImportPage(ctx: PageContext, platform: Platform) {
  const { t } = ctx;
  return layout(
    ctx,
    t('help.import.title'),
    html`<p>${t('help.import.lead')}</p>${importSteps(ctx, platform)}<p class="notice info">${t('help.restart')}</p>
<p><a href="/help/delete-old">${t('common.helpDelete')}</a></p>`,
  );
}

export function helpDeletePage(ctx: PageContext) {
  const { t } = ctx;
  return layout(
    ctx,
    t('help.delete.title'),
    html`<p class="notice warn">${t('help.delete.lead')}</p>
<section class="steps"><h3>${t('steps.windows')}</h3><ol><li>${t('help.delete.windows1')}</li><li>${t('help.delete.windows2')}</li><li>${t('help.delete.windows3')}</li><li>${t('help.delete.windows4')}</li></ol></section>
<section class="steps"><h3>${t('steps.firefox')}</h3><ol><li>${t('help.delete.firefox1')}</li><li>${t('help.delete.firefox2')}</li></ol></section>
<section class="steps"><h3>${t('steps.mac')}</h3><ol><li>${t('help.delete.mac1')}</li><li>${t('help.delete.mac2')}</li></ol></section>
<p><a href="/help/import">${t('common.helpImport')}</a></p>`,
  );
}
