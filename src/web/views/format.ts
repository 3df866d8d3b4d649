import { formatDateJst } from '../../ca/friendly-name.js';

/** Dates as users in Japan read them: the calendar date in Japan time. */
export const date = (d: string | Date) => formatDateJst(new Date(d));

const DATE_TIME = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
export const dateTime = (d: string | Date) => DATE_TIME.format(new Date(d));
