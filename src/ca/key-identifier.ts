import { createHash, KeyObject } from 'node:crypto';

/**
 * RFC 5280 §4.2.1.2 method (1): the SHA-1 of the subjectPublicKey BIT STRING contents. Computed
 * here with node:crypto because the library's async helper costs ~1 ms per certificate on the
 * main thread; tests compare both.
 */
export function keyIdentifier(publicKey: CryptoKey): string {
  const spki = KeyObject.from(publicKey).export({ type: 'spki', format: 'der' });
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest('hex');
}

/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING } */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  let pos = 0;
  const header = (expectedTag: number) => {
    if (spki[pos] !== expectedTag) throw new Error(`SPKI: expected tag ${expectedTag} at ${pos}`);
    pos++;
    let len = spki[pos++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = (len << 8) | spki[pos++]!;
    }
    return len;
  };
  header(0x30); // outer SEQUENCE
  const algorithmLength = header(0x30);
  pos += algorithmLength; // skip AlgorithmIdentifier
  const bitsLen = header(0x03);
  // First content octet is the count of unused bits (always 0 for keys); the key bits follow.
  return spki.subarray(pos + 1, pos + bitsLen);
}
