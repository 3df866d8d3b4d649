// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata
// polyfill loaded first, and it must be told to use Node's webcrypto. Import x509 from here only.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
