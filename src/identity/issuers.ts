import { x509 } from '../ca/x509.js';

/**
 * Is this certificate signed by one of these CAs? Only the signature: dates and revocation are
 * Kenshin's own decision (its clock, its database). Asked on the rare path only, when a presented
 * certificate is not in our database, to tell "ours but unknown here" from "not ours at all".
 *
 * Not OpenSSL's verdict: in direct mode OpenSSL reports one error per chain, and for an expired
 * certificate from a foreign CA that is CERT_HAS_EXPIRED, which says nothing about who signed it.
 */
export async function signedByOneOf(der: Uint8Array, issuers: readonly x509.X509Certificate[]): Promise<boolean> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(new Uint8Array(der));
  } catch {
    return false;
  }
  for (const issuer of issuers) {
    if (cert.issuer !== issuer.subject) continue;
    if (await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }).catch(() => false)) return true;
  }
  return false;
}
