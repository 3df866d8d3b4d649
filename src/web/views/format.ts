import { formatDateJst } from '../../ca/friendly-name.js';

/** Dates as users in Japan read them: the calendar date in Japan time. */
export const date = (d: string | Date) => formatDateJst(new Date(d));

const DATE_TIME = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
export const dateTime = (d: string | Date) => DATE_TIME.format(new Date(d));

const BROWSER_DATE = {
  ja: new Intl.DateTimeFormat('ja-JP', { timeZone: 'Asia/Tokyo', dateStyle: 'long' }),
  en: new Intl.DateTimeFormat('en-US', { timeZone: 'Asia/Tokyo', dateStyle: 'long' }),
};
/**
 * An expiry date as certificate managers show it in that language (Firefox: 「2029年12月23日」,
 * "December 23, 2029"), so the user can match the line on screen to the line in the browser.
 */
export const browserDate = (d: string | Date, lang: 'ja' | 'en') => BROWSER_DATE[lang].format(new Date(d));
