import { KeyObject, sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import type { x509 } from './x509.js';
import type { AnyKeyType } from './keys.js';
import { keyIdentifier } from './key-identifier.js';

/**
 * Signs end-entity certificates from a template: the parts every client certificate of one CA
 * shares (issuer, signature algorithm, fixed extensions) are parsed into @peculiar/asn1-x509
 * objects once, and each certificate adds its serial, validity, subject, key and SKI, then is
 * signed synchronously with node:crypto. @peculiar/x509's generic generator re-parses every input
 * and its own output; skipping that halves the CPU of issuance (4.7 → 2.0 ms per certificate).
 * The CA hierarchy and server certificates, signed rarely, still use the generator.
 */

export interface SignedCertificate {
  der: Uint8Array;
  /** Lowercase hex, no leading zeros: the stored form. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Signature AlgorithmIdentifier and digest for each CA key type (RFC 5758, RFC 4055). */
export function signatureAlgorithm(caKeyType: AnyKeyType): { id: asn.AlgorithmIdentifier; hash: string } {
  switch (caKeyType) {
    case 'p256':
      return { id: new asn.AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }), hash: 'sha256' };
    case 'p384':
      return { id: new asn.AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.3' }), hash: 'sha384' };
    case 'rsa2048':
    case 'rsa3072':
      // sha256WithRSAEncryption carries explicit NULL parameters.
      return { id: new asn.AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.11', parameters: new Uint8Array([0x05, 0x00]).buffer }), hash: 'sha256' };
  }
}

export class ClientCertificateSigner {
  private readonly issuer: asn.Name;
  private readonly algorithm: { id: asn.AlgorithmIdentifier; hash: string };
  private readonly key: KeyObject;

  constructor(issuingCa: x509.X509Certificate, signingKey: CryptoKey, caKeyType: AnyKeyType) {
    this.issuer = AsnConvert.parse(issuingCa.subjectName.toArrayBuffer(), asn.Name);
    this.algorithm = signatureAlgorithm(caKeyType);
    this.key = KeyObject.from(signingKey);
  }

  sign(req: { serialHex: string; subjectDer: Uint8Array; publicKey: CryptoKey; notBefore: Date; notAfter: Date; fixedExtensions: asn.Extension[] }): SignedCertificate {
    const spki = KeyObject.from(req.publicKey).export({ type: 'spki', format: 'der' });
    const ski = new asn.Extension({
      extnID: asn.id_ce_subjectKeyIdentifier,
      critical: false,
      extnValue: new OctetString(AsnConvert.serialize(new asn.SubjectKeyIdentifier(Buffer.from(keyIdentifier(req.publicKey), 'hex')))),
    });
    // A serial whose top bit is set gets a 0x00 pad so the INTEGER stays positive.
    const serialBytes = Buffer.from(req.serialHex.length % 2 ? '0' + req.serialHex : req.serialHex, 'hex');
    const serialNumber = serialBytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), serialBytes]) : serialBytes;
    const tbs = new asn.TBSCertificate({
      version: asn.Version.v3,
      serialNumber: new Uint8Array(serialNumber).buffer,
      signature: this.algorithm.id,
      issuer: this.issuer,
      validity: new asn.Validity({ notBefore: req.notBefore, notAfter: req.notAfter }),
      subject: AsnConvert.parse(req.subjectDer, asn.Name),
      subjectPublicKeyInfo: AsnConvert.parse(spki, asn.SubjectPublicKeyInfo),
      extensions: new asn.Extensions([...req.fixedExtensions, ski]),
    });
    const signature = sign(this.algorithm.hash, Buffer.from(AsnConvert.serialize(tbs)), this.key);
    const cert = new asn.Certificate({ tbsCertificate: tbs, signatureAlgorithm: this.algorithm.id, signatureValue: new Uint8Array(signature).buffer });
    return {
      der: new Uint8Array(AsnConvert.serialize(cert)),
      serial: req.serialHex.toLowerCase().replace(/^0+/, ''),
      notBefore: req.notBefore,
      notAfter: req.notAfter,
    };
  }
}
