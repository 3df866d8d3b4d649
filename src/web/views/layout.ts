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

/** One slash, then no second slash or backslash (both make a browser go to another host), no whitespace. */
const LOCAL_PATH = /^\/(?![/\\])[^\\\s]*$/;

/**
 * The path of a link back to this page, always on this site. The raw request path is the client's:
 * `//evil.example/x` (or `/\evil.example`, which browsers read the same way) would otherwise become
 * a link to another host, so a path not made of one slash and a segment is the home page.
 */
export function localPath(requestUrl: string): string {
  const p = requestUrl.split('?')[0]!.split('#')[0]!;
  return LOCAL_PATH.test(p) ? p : '/';
}

/** Longest `rd` kept: a deep link with its query, not a place to store data. */
export const RETURN_PATH_MAX = 2048;

/**
 * Where to go back to after login (the gateway's `rd`), or undefined: a path with its query on
 * this site only. Scheme-relative (`//evil.example`), backslash (`/\evil.example`), absolute URLs,
 * control characters and anything longer than RETURN_PATH_MAX are dropped, not repaired: a
 * mistyped link lands on the home page, a crafted one nowhere else. Kenshin's own login and
 * forward-auth paths are dropped too (a loop, not a destination).
 */
export function returnPath(rd: unknown): string | undefined {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > RETURN_PATH_MAX) return undefined;
  for (let i = 0; i < rd.length; i++) if (rd.charCodeAt(i) < 0x20 || rd.charCodeAt(i) === 0x7f) return undefined;
  const [p, ...rest] = rd.split('#')[0]!.split('?');
  if (!LOCAL_PATH.test(p!) || rest.some((q) => /\s/.test(q))) return undefined;
  if (/^\/(login|logout|auth)(\/|$)/.test(p!)) return undefined;
  return rd.split('#')[0];
}

/** The path with `?rd=…` (or `&rd=…`) to carry the return path on to the next step; the path alone when there is none. */
export const withReturnPath = (path: string, rd: string | undefined) => (rd ? `${path}${path.includes('?') ? '&' : '?'}rd=${encodeURIComponent(rd)}` : path);

export function layout(ctx: PageContext, title: string, body: Html, opts: { notice?: Html | undefined; refreshSeconds?: number | undefined } = {}): Html {
  const { t } = ctx;
  const other: Lang = ctx.lang === 'ja' ? 'en' : 'ja';
  return html`<!doctype html>
<html lang="${ctx.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} - ${t('app.name')}</title>
${opts.refreshSeconds ? html`<meta http-equiv="refresh" content="${opts.refreshSeconds}">` : ''}
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

/** A page body with 「前の画面に戻る」 above and below it when the page was opened from another screen (`back`, checked by returnPath). */
export const withBackLink = (ctx: PageContext, back: string | undefined, body: Html) => {
  if (!back) return body;
  const link = html`<p class="back"><a href="${back}" class="back-link">${ctx.t('common.backTo')}</a></p>`;
  return html`${link}${body}${link}`;
};

export const notice = (kind: 'info' | 'warn' | 'ok' | 'error', text: string | Html, id?: string) => html`<p class="notice ${kind}" role="status"${id ? html` id="${id}"` : ''}>${text}</p>`;
