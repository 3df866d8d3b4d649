import { x509 } from './x509.js';
import { invalidInput } from '../errors.js';

/**
 * The client certificate subject: CN=<tenant code>, O=<tenant name> [, OU=<terminal label>].
 * Users pick their certificate by this name in the browser, and a renewal keeps it byte for
 * byte, so we store the DER and copy it rather than rebuild it from (possibly renamed) tenants.
 * Japanese names are UTF8String, which every browser and OS in our user base displays.
 */
export interface SubjectParts {
  tenantCode: string;
  tenantName: string;
  label?: string | undefined;
}

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';
const OID_OU = '2.5.4.11';

export function buildSubject(parts: SubjectParts): x509.Name {
  // Names are checked when they are entered; a tenant named before that rule existed must be renamed
  // (`kenshin tenant edit`) rather than carry an invisible character into a certificate for years.
  assertPrintable('name', parts.tenantName);
  if (parts.label !== undefined) assertPrintable('label', parts.label);
  const rdns: x509.JsonNameParams = [
    { [OID_CN]: [{ utf8String: parts.tenantCode }] },
    { [OID_O]: [{ utf8String: parts.tenantName }] },
  ];
  if (parts.label) rdns.push({ [OID_OU]: [{ utf8String: parts.label }] });
  return new x509.Name(rdns);
}

export function subjectFromDer(der: Uint8Array): x509.Name {
  return new x509.Name(der as Uint8Array<ArrayBuffer>);
}

/**
 * What may not appear in a name that ends up in a subject or a friendlyName: controls (Cc: C0, DEL,
 * C1 such as U+0085), format characters (Cf: bidi overrides such as U+202E, which make
 * "ｸﾘﾆｯｸexe.p12" read as something else, and zero-width ones such as U+200B, which make two names
 * that look the same differ), line and paragraph separators (Zl U+2028, Zp U+2029), and lone
 * surrogates (Cs), which no UTF-8 or BMPString can carry.
 */
export const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

export function assertPrintable(field: string, s: string): void {
  const bad = INVISIBLE.exec(s);
  if (bad) {
    const cp = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw invalidInput(field, `must not contain control, format or separator characters (found U+${cp})`);
  }
}

/** Terminal labels end up in the subject: keep them short and printable. */
export function validateLabel(label: unknown): string | undefined {
  if (label === undefined || label === null) return undefined;
  if (typeof label !== 'string') throw invalidInput('label', 'must be a single text value');
  const t = label.normalize('NFC').trim();
  if (t.length === 0) return undefined;
  if ([...t].length > 64) throw invalidInput('label', 'must be at most 64 characters');
  assertPrintable('label', t);
  return t;
}
