import { html } from '../html.js';
import { layout, type PageContext } from './layout.js';
import { date } from './format.js';
import type { RefusedIdentity } from '../../identity/peer.js';

/** One page per refusal class: what happened, and what to do next. */
export function refusalPage(ctx: PageContext, identity: RefusedIdentity, operatorContact: string) {
  const { t } = ctx;
  const contact = html`<p class="contact" id="operator-contact">${t('refusal.contact', { contact: operatorContact })}</p>`;
  const help = html`<p><a href="/help/import">${t('common.helpImport')}</a></p>`;
  switch (identity.kind) {
    case 'none':
      return layout(ctx, t('refusal.none.title'), html`<p id="refusal" data-reason="none">${t('refusal.none.body')}</p>${help}${contact}`);
    case 'foreign':
      return layout(ctx, t('refusal.foreign.title'), html`<p id="refusal" data-reason="foreign">${t('refusal.foreign.body')}</p>${help}${contact}`);
    case 'unknown':
      return layout(ctx, t('refusal.unknown.title'), html`<p id="refusal" data-reason="unknown">${t('refusal.unknown.body')}</p>${contact}`);
    case 'expired':
      return layout(ctx, t('refusal.expired.title'), html`<p id="refusal" data-reason="expired">${t('refusal.expired.body', { notAfter: date(identity.cert.not_after) })}</p>${contact}`);
    case 'not_yet_valid':
      return layout(ctx, t('refusal.not_yet_valid.title'), html`<p id="refusal" data-reason="not_yet_valid">${t('refusal.not_yet_valid.body', { notBefore: date(identity.cert.not_before) })}</p>${contact}`);
    case 'revoked':
      return layout(ctx, t('refusal.revoked.title'), html`<p id="refusal" data-reason="revoked">${t('refusal.revoked.body')}</p>${contact}`);
  }
}

export function errorPage(ctx: PageContext, message: string) {
  return layout(ctx, ctx.t('error.title'), html`<p id="error">${message}</p><p><a href="/">${ctx.t('common.back')}</a></p>`);
}
