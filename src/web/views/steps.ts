import { html } from '../html.js';
import type { PageContext } from './layout.js';

/** Which store the user's steps are for: a hint from the User-Agent (web/platform.ts). */
export type Platform = 'windows' | 'mac' | 'firefox' | 'other';

/** How to import the .p12, one block per store, the user's own first. */

export function importSteps(ctx: PageContext, platform: Platform) {
  const { t } = ctx;
  const block = (key: 'windows' | 'mac' | 'firefox', steps: string[]) =>
    html`<section class="steps${platform === key ? ' yours' : ''}" id="steps-${key}"><h3>${t(`steps.${key}`)}${platform === key ? html` <span class="tag">${t('save.forYou')}</span>` : ''}</h3><ol>${steps.map((s) => html`<li>${s}</li>`)}</ol></section>`;
  const sections = {
    windows: block('windows', [t('steps.windows1'), t('steps.windows2'), t('steps.windows3'), t('steps.windows4')]),
    mac: block('mac', [t('steps.mac1'), t('steps.mac2'), t('steps.mac3')]),
    firefox: block('firefox', [t('steps.firefox1'), t('steps.firefox2'), t('steps.firefox3'), t('steps.firefox4')]),
  };
  // The user's own platform first.
  const order: ('windows' | 'mac' | 'firefox')[] = platform === 'mac' ? ['mac', 'windows', 'firefox'] : platform === 'firefox' ? ['firefox', 'windows', 'mac'] : ['windows', 'mac', 'firefox'];
  return html`${order.map((k) => sections[k])}`;
}

/** How to delete the old certificate, one block per store, the user's own first. */
export function deleteSteps(ctx: PageContext, platform: Platform, opts: { onlyYours?: boolean } = {}) {
  const { t } = ctx;
  const block = (key: 'windows' | 'mac' | 'firefox', steps: string[], after = '') =>
    html`<section class="steps${platform === key ? ' yours' : ''}" id="delete-${key}"><h3>${t(`steps.${key}`)}${platform === key ? html` <span class="tag">${t('save.forYou')}</span>` : ''}</h3><ol>${steps.map((s) => html`<li>${s}</li>`)}</ol>${after ? html`<p class="muted">${after}</p>` : ''}</section>`;
  const sections = {
    windows: block('windows', [t('help.delete.windows1'), t('help.delete.windows2'), t('help.delete.windows3'), t('help.delete.windows4')]),
    firefox: block('firefox', [t('help.delete.firefox1'), t('help.delete.firefox2'), t('help.delete.firefox3'), t('help.delete.firefox4'), t('help.delete.firefox5')], t('help.delete.firefoxAsk')),
    mac: block('mac', [t('help.delete.mac1'), t('help.delete.mac2')]),
  };
  const order: ('windows' | 'mac' | 'firefox')[] = platform === 'mac' ? ['mac', 'windows', 'firefox'] : platform === 'firefox' ? ['firefox', 'windows', 'mac'] : ['windows', 'firefox', 'mac'];
  return html`${(opts.onlyYours && platform !== 'other' ? [platform] : order).map((k) => sections[k])}`;
}

