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
// A key someone is waiting for is made on this thread (keys.ts, generateKeyPairOnThisThread):
// libuv's thread pool is the whole process's, first come first served, and every login hashes its
// password there — 40 renewals' keys queued on it had a login wait 2.7 s. Keys made ahead while
// idle (key-pool.ts; in this worker's memory only, gone when it is terminated) go through
// WebCrypto instead: one at a time per worker and only while it has nothing to do, so at most
// one key per worker is on the pool (with the default KENSHIN_MINT_WORKERS, at most 4, its size) and
// a login waits at most for one of them (~170 ms), not for a queue; and a mint that arrives meanwhile does not wait for the key in progress, as it would
// on this thread (the storm benchmark's p99 with the key pool: 151 ms that way, 34–38 ms this way).
// An EC key takes microseconds either way.
const forSomeoneWaiting = (type: AnyKeyType) => (isRsa(type) ? generateKeyPairOnThisThread(type) : generateKeyPair(type));
const keys = keyPool({ rsa2048: material.keyPoolSize ?? 0 }, forSomeoneWaiting, generateKeyPair);

// RSA mints one at a time, each to its end before the next begins. Started together, every
// request's key was made on this thread first, back to back, while the steps each mint then hands
// to the thread pool (key export, the PKCS#12 key derivation) waited: the first user of a burst got
// their certificate when the last one did. EC mints block nothing and run as they come.
let rsaQueue: Promise<void> = Promise.resolve();
parentPort!.on('message', (msg: { id: number; req: MintRequest }) => {
  const run = () =>
    keys.during(() => mintClientCertificate(authority, keys, msg.req)).then(
      (minted) =>
        parentPort!.postMessage({ id: msg.id, minted }, [minted.pkcs12.buffer as ArrayBuffer, ...minted.alternatives.map((a) => a.pkcs12.buffer as ArrayBuffer)]),
      (e: unknown) => parentPort!.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) }),
    );
  if (isRsa(msg.req.keyType)) rsaQueue = rsaQueue.then(run);
  else void run();
});
parentPort!.postMessage({ ready: true });
