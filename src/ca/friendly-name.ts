// Cc, Cf, Zl, Zp and lone surrogates: the same set as ca/subject.ts refuses.
const INVISIBLE_G = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * The name a user sees for a certificate in Windows' and Firefox's certificate lists. Old and new
 * certificates share the same subject (the manual says so), so the expiry date in the name is
 * what tells a renewal apart from its predecessor. Dates are shown in Japan time.
 */
export function friendlyName(tenantName: string, notAfter: Date): string {
  // Names are refused with such characters when entered (ca/subject.ts#assertPrintable); a tenant
  // named before that rule is renewed unattended, so here they are dropped rather than refused: a
  // bidi override must not make the name in the certificate list read backwards.
  return `${tenantName.normalize('NFC').replace(INVISIBLE_G, '')} 有効期限 ${formatDateJst(notAfter)}`;
}

// Built once: constructing an Intl.DateTimeFormat costs ~1 ms, more than signing a certificate.
// en-CA formats as YYYY-MM-DD.
const JST_DATE = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit' });

export function formatDateJst(d: Date): string {
  return JST_DATE.format(d);
}
