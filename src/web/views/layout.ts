import { html, type Html } from '../html.js';
import type { Lang, T } from '../i18n/index.js';

/** What every page needs to draw its frame. */
export interface PageContext {
  t: T;
  lang: Lang;
  /** The current path, to build the language switch link. */
  path: string;
  /** Present when logged in: the user menu at the top right. */
  user?: { loginId: string; csrf: string; role?: string } | undefined;
}

/**
 * The path of a link back to this page, always on this site. The raw request path is the client's:
 * `//evil.example/x` (or `/\evil.example`, which browsers read the same way) would otherwise become
 * a link to another host, so a path not made of one slash and a segment is the home page.
 */
export function localPath(requestUrl: string): string {
  const p = requestUrl.split('?')[0]!.split('#')[0]!;
  return /^\/(?![/\\])[^\\\s]*$/.test(p) ? p : '/';
}

export function layout(ctx: PageContext, title: string, body: Html, opts: { notice?: Html | undefined } = {}): Html {
  const { t } = ctx;
  const other: Lang = ctx.lang === 'ja' ? 'en' : 'ja';
  return html`<!doctype html>
<html lang="${ctx.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} - ${t('app.name')}</title>
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">${t('app.name')} <span>${t('app.portal')}</span></a>
  <nav class="top-nav">
    <a class="lang" href="${localPath(ctx.path)}?lang=${other}">${t('lang.switch')}</a>
    ${
      ctx.user
        ? html`<details class="user-menu">
      <summary aria-label="${t('menu.label')}">${ctx.user.loginId}</summary>
      <div class="menu">
        <a href="/renewal/check" id="menu-renewal-check">${t('menu.renewalCheck')}</a>
        ${ctx.user.role === 'admin' ? html`<a href="/tenant" id="menu-tenant">${t('menu.tenantAdmin')}</a>` : ''}
        ${ctx.user.role === 'operator' ? html`<a href="/admin" id="menu-admin">${t('admin.title')}</a>` : ''}
        <a href="/help/import">${t('menu.help')}</a>
        <form method="post" action="/logout"><input type="hidden" name="_csrf" value="${ctx.user.csrf}"><button type="submit" class="link">${t('menu.logout')}</button></form>
      </div>
    </details>`
        : html`<a href="/help/import">${t('menu.help')}</a>`
    }
  </nav>
</header>
<main>
${opts.notice ?? ''}
<h1>${title}</h1>
${body}
</main>
</body>
</html>`;
}

export const notice = (kind: 'info' | 'warn' | 'ok' | 'error', text: string | Html, id?: string) => html`<p class="notice ${kind}" role="status"${id ? html` id="${id}"` : ''}>${text}</p>`;
