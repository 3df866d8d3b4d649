/**
 * The name a user sees for a certificate in Windows' and Firefox's certificate lists. Old and new
 * certificates share the same subject (the manual says so), so the expiry date in the name is
 * what tells a renewal apart from its predecessor. Dates are shown in Japan time.
 */
export function friendlyName(tenantName: string, notAfter: Date): string {
  return `${tenantName} 有効期限 ${formatDateJst(notAfter)}`;
}

// Built once: constructing an Intl.DateTimeFormat costs ~1 ms, more than signing a certificate.
// en-CA formats as YYYY-MM-DD.
const JST_DATE = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit' });

export function formatDateJst(d: Date): string {
  return JST_DATE.format(d);
}
