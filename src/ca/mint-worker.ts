import { parentPort, workerData } from 'node:worker_threads';
import { authorityFromMaterial } from './hierarchy.js';
import { mintClientCertificate, type MintRequest } from './mint.js';
import type { AuthorityMaterial } from './mint-pool.js';
import { keyPool } from './key-pool.js';
import { generateKeyPair, generateKeyPairOnThisThread, isRsa, type AnyKeyType } from './keys.js';

// One worker of the mint pool: holds the issuing key in memory (passed from the parent, never
// read from disk here) and answers mint requests with plain data.

const material = workerData as AuthorityMaterial;
const authority = await authorityFromMaterial(material);
// RSA keys are made on this thread (keys.ts, generateKeyPairOnThisThread: libuv's thread pool is
// the whole process's, and logins hash their passwords there); an EC key takes microseconds, and
// WebCrypto's thread pool job for it waits behind nothing long.
const generate = (type: AnyKeyType) => (isRsa(type) ? generateKeyPairOnThisThread(type) : generateKeyPair(type));
// Keys made ahead while idle (key-pool.ts): in this worker's memory only, gone when it is terminated.
const keys = keyPool({ rsa2048: material.keyPoolSize ?? 0 }, generate);

parentPort!.on('message', (msg: { id: number; req: MintRequest }) => {
  keys.during(() => mintClientCertificate(authority, keys, msg.req)).then(
    (minted) =>
      parentPort!.postMessage({ id: msg.id, minted }, [minted.pkcs12.buffer as ArrayBuffer, ...minted.alternatives.map((a) => a.pkcs12.buffer as ArrayBuffer)]),
    (e: unknown) => parentPort!.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
parentPort!.postMessage({ ready: true });
