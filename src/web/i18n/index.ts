import { ja, type Catalog, type MessageKey } from './ja.js';
import { en } from './en.js';

export type Lang = 'ja' | 'en';
export const LANGS: Lang[] = ['ja', 'en'];
const catalogs: Record<Lang, Catalog> = { ja: ja as unknown as Catalog, en };

type Params<K extends MessageKey> = Catalog[K] extends (p: infer P) => string ? [P] : [];

/** A translator bound to one language: t('check.get') → 取得する. */
export type T = <K extends MessageKey>(key: K, ...params: Params<K>) => string;

export function translator(lang: Lang): T {
  const c = catalogs[lang];
  return ((key: MessageKey, p?: unknown) => {
    const v = c[key] as string | ((p: unknown) => string);
    return typeof v === 'function' ? v(p) : v;
  }) as T;
}

/** Japanese first: English only when asked for (?lang=en, remembered in a cookie). */
export function pickLang(query: string | undefined, cookie: string | undefined): Lang {
  if (query === 'en' || query === 'ja') return query;
  if (cookie === 'en' || cookie === 'ja') return cookie;
  return 'ja';
}
