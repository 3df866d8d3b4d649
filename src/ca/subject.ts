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

/** Terminal labels end up in the subject: keep them short and printable. */
export function validateLabel(label: string | undefined): string | undefined {
  if (label === undefined) return undefined;
  const t = label.trim();
  if (t.length === 0) return undefined;
  if (t.length > 64) throw invalidInput('label', 'must be at most 64 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(t)) throw invalidInput('label', 'must not contain control characters');
  return t;
}
