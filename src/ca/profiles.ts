import { x509 } from './x509.js';
import { isRsa, type AnyKeyType } from './keys.js';

/**
 * Extension sets for each kind of certificate we sign. Kept apart from the signing code so the
 * profile a client certificate gets can be read in one screen and checked against RFC 5280.
 */

const { KeyUsageFlags } = x509;

export async function rootCaExtensions(publicKey: CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

export async function issuingCaExtensions(publicKey: CryptoKey, root: x509.X509Certificate): Promise<x509.Extension[]> {
  return [
    // pathLen 0: the issuing CA signs end-entity certificates only.
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(root, false),
  ];
}

/**
 * The extensions every client certificate of one key type shares. Built once per issuing CA and
 * key type: they are immutable values, and rebuilding them per certificate was a third of the
 * main-thread cost of issuance.
 */
export function fixedClientExtensions(opts: { keyType: AnyKeyType; issuerKeyId: string; crlUrl: string | undefined }): x509.Extension[] {
  // keyEncipherment only for RSA: with an EC key it is meaningless and some validators reject it.
  const usage = KeyUsageFlags.digitalSignature | (isRsa(opts.keyType) ? KeyUsageFlags.keyEncipherment : 0);
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    // clientAuth only: a leaked client certificate must not be usable as a server or for signing mail.
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
    new x509.AuthorityKeyIdentifierExtension(opts.issuerKeyId, false),
  ];
  if (opts.crlUrl) exts.push(new x509.CRLDistributionPointsExtension([opts.crlUrl]));
  return exts;
}

export async function serverExtensions(opts: {
  publicKey: CryptoKey;
  issuer: x509.X509Certificate;
  names: string[];
}): Promise<x509.Extension[]> {
  const san = opts.names.map((n) =>
    /^\d{1,3}(\.\d{1,3}){3}$/.test(n) || n.includes(':') ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
  );
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension(san, false),
    await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(opts.issuer, false),
  ];
}
