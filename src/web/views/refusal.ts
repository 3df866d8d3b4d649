import { html } from '../html.js';
import { layout, type PageContext } from './layout.js';
import { date } from './format.js';
import type { RefusedIdentity } from '../../identity/peer.js';

/** One page per refusal class: what happened, and what to do next. */
export function refusalPage(ctx: PageContext, identity: RefusedIdentity, operatorContact: string) {
  const { t } = ctx;
  const contact = html`<p class="contact" id="operator-contact">${t('refusal.contact', { contact: operatorContact })}</p>`;
  const help = html`<p><a href="/help/import">${t('common.helpImport')}</a></p>`;
  const body = (() => {
    switch (identity.kind) {
      case 'expired':
        return t('refusal.expired.body', { notAfter: date(identity.cert.not_after) });
      case 'not_yet_valid':
        return t('refusal.not_yet_valid.body', { notBefore: date(identity.cert.not_before) });
      default:
        return t(`refusal.${identity.kind}.body`);
    }
  })();
  // Installing the certificate is the way out only when none (or someone else's) was presented.
  const showHelp = identity.kind === 'none' || identity.kind === 'foreign';
  return layout(ctx, t(`refusal.${identity.kind}.title`), html`<p id="refusal" data-reason="${identity.kind}">${body}</p>${showHelp ? help : ''}${contact}`);
}

export function errorPage(ctx: PageContext, message: string) {
  return layout(ctx, ctx.t('error.title'), html`<p id="error">${message}</p><p><a href="/">${ctx.t('common.back')}</a></p>`);
}
