import type { x509 } from './x509.js';
import type { AnyKeyType } from './keys.js';
import { IssuingAuthority } from './authority.js';

/**
 * The root in memory, for the one thing it signs routinely: its CRL, which lists revoked issuing
 * CAs (normally none). nginx's `ssl_crl` checks a CRL for every CA in the chain, the root
 * included, so without it no client certificate would pass.
 *
 * A CRL is signed the same way whoever the issuer is, so this delegates to IssuingAuthority's
 * signCrl over the root certificate (one code path, and a faster CRL signer speeds up both); only
 * the CRL operations are exposed, so nothing can sign an end-entity certificate with the root.
 */
export class RootAuthority {
  private readonly signer: IssuingAuthority;

  constructor(
    readonly certificate: x509.X509Certificate,
    signingKey: CryptoKey,
    readonly keyType: AnyKeyType,
  ) {
    this.signer = new IssuingAuthority(certificate, certificate, signingKey, keyType, undefined);
  }

  /** SHA-256 of the root certificate: the key of its row in `crls` (named like IssuingAuthority's for CRL code). */
  issuingFingerprint(): Promise<string> {
    return this.signer.issuingFingerprint();
  }

  signCrl(req: Parameters<IssuingAuthority['signCrl']>[0]): Promise<Uint8Array> {
    return this.signer.signCrl(req);
  }
}
