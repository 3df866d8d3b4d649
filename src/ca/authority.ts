import { x509 } from './x509.js';
import { keyAlgorithm, type AnyKeyType } from './keys.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Extension as AsnExtension } from '@peculiar/asn1-x509';
import { fixedClientExtensions, serverExtensions } from './profiles.js';
import { randomSerial } from './serial.js';
import { ClientCertificateSigner, type SignedCertificate } from './client-certificate.js';
import { CrlSigner, type EncodedRevocations } from './crl-signer.js';
import { keyIdentifier } from './key-identifier.js';

/**
 * The issuing CA in memory: its certificate, its private key (non-extractable once loaded),
 * and the root it chains to. Everything that signs an end-entity certificate goes through here.
 */
export class IssuingAuthority {
  constructor(
    readonly root: x509.X509Certificate,
    readonly issuing: x509.X509Certificate,
    private readonly signingKey: CryptoKey,
    readonly keyType: AnyKeyType,
    private readonly crlUrl: string | undefined,
  ) {
    this.signer = new ClientCertificateSigner(issuing, signingKey, keyType);
  }

  private readonly signer: ClientCertificateSigner;
  private crlSigner: CrlSigner | undefined;
  private readonly fixedExtensions = new Map<AnyKeyType, AsnExtension[]>();

  /** The extensions all client certificates of a key type share, built once (see profiles.ts). */
  private extensionsFor(keyType: AnyKeyType): AsnExtension[] {
    let fixed = this.fixedExtensions.get(keyType);
    if (!fixed) {
      const ski = this.issuing.getExtension(x509.SubjectKeyIdentifierExtension);
      if (!ski) throw new Error('issuing CA certificate has no subject key identifier');
      fixed = fixedClientExtensions({ keyType, issuerKeyId: ski.keyId, crlUrl: this.crlUrl }).map((e) => AsnConvert.parse(e.rawData, AsnExtension));
      this.fixedExtensions.set(keyType, fixed);
    }
    return fixed;
  }

  /**
   * SHA-256 of the issuing CA certificate, recorded with every certificate it signs. Computed once:
   * the certificate never changes, and the CRL route asks for it on every request (a WebCrypto
   * digest each time was most of what serving a ready CRL cost).
   */
  issuingFingerprint(): Promise<string> {
    this.fingerprint ??= this.issuing.getThumbprint('SHA-256').then((t) => Buffer.from(t).toString('hex'));
    return this.fingerprint;
  }
  private fingerprint: Promise<string> | undefined;

  signClient(req: {
    subjectDer: Uint8Array;
    publicKey: CryptoKey;
    keyType: AnyKeyType;
    notBefore: Date;
    notAfter: Date;
    serial?: string;
  }): SignedCertificate {
    return this.signer.sign({
      serialHex: req.serial ?? randomSerial(),
      subjectDer: req.subjectDer,
      publicKey: req.publicKey,
      notBefore: req.notBefore,
      notAfter: req.notAfter,
      fixedExtensions: this.extensionsFor(req.keyType),
    });
  }

  async signServer(req: { names: string[]; publicKey: CryptoKey; notBefore: Date; notAfter: Date }): Promise<x509.X509Certificate> {
    return x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: new x509.Name([{ '2.5.4.3': [{ utf8String: req.names[0] ?? 'localhost' }] }]),
      issuer: this.issuing.subjectName,
      notBefore: req.notBefore,
      notAfter: req.notAfter,
      publicKey: req.publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: keyAlgorithm(this.keyType),
      extensions: await serverExtensions({ publicKey: req.publicKey, issuer: this.issuing, names: req.names }),
    });
  }

  /**
   * Signs a CRL for this issuing CA (RFC 5280 §5): AKI, cRLNumber, one entry per revoked serial; its
   * DER. Written directly (crl-signer.ts): the X.509 library could not build or even parse a CRL of
   * 100,000 entries.
   */
  async signCrl(req: { number: number; thisUpdate: Date; nextUpdate: Date; entries: { serial: string; revokedAt: Date; reason: x509.X509CrlReason }[] | EncodedRevocations }): Promise<Uint8Array> {
    if (!this.crlSigner) {
      // Kenshin's CAs carry a subject key identifier; an adopted CA from another system may not, and
      // then its CRL's authority key identifier is computed the way RFC 5280 suggests (method 1).
      const ski = this.issuing.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? keyIdentifier(await this.issuing.publicKey.export());
      this.crlSigner = new CrlSigner(this.issuing, this.signingKey, this.keyType, ski);
    }
    return this.crlSigner.sign(req);
  }

  /** PEM of the root, or root + issuing CA (for trust stores and reverse proxies). */
  pem(withChain: boolean): string {
    return withChain ? `${this.root.toString('pem')}\n${this.issuing.toString('pem')}\n` : `${this.root.toString('pem')}\n`;
  }
}
