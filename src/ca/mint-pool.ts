import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Minted, Minter, MintRequest } from './mint.js';

/**
 * A pool of worker threads that mint certificates (key, signature, PKCS#12). Signing with the
 * X.509 library and the PKCS#12 key derivation are JavaScript on the thread that runs them; here
 * that is a worker, so the event loop that serves the portal never stalls on issuance, and every
 * core works. The database write stays on the main thread (recordCertificate).
 */

/** What a worker needs to sign: the CA certificates and the issuing key as PKCS#8, in memory only. */
export interface AuthorityMaterial {
  rootDer: Uint8Array;
  issuingDer: Uint8Array;
  issuingKeyPkcs8: Uint8Array;
  keyType: string;
  crlUrl: string | undefined;
  /** RSA-2048 key pairs each worker keeps ready (KENSHIN_KEY_POOL_SIZE); 0 = none. */
  keyPoolSize?: number;
}

interface Slot {
  worker: Worker;
  inFlight: number;
  ready: Promise<void>;
  /** False once the worker thread exited (crash, out of memory): it gets no more work. */
  alive: boolean;
}

interface Pending {
  resolve(m: Minted): void;
  reject(e: Error): void;
}

// Workers load TypeScript through tsx like the main process does; an eval'd bootstrap registers it.
const WORKER_URL = new URL('./mint-worker.ts', import.meta.url).href;
const TSX_API = import.meta.resolve('tsx/esm/api');
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL)}); });`;

export function startMintPool(material: AuthorityMaterial, size = os.availableParallelism()): Minter & { ready: Promise<void> } {
  let nextId = 1;
  const pending = new Map<number, Pending>();
  let closed = false;

  const slots: Slot[] = Array.from({ length: Math.max(1, size) }, () => {
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: material });
    const slot: Slot = {
      worker,
      alive: true,
      inFlight: 0,
      ready: new Promise<void>((resolve, reject) => {
        worker.once('error', reject);
        worker.on('message', (msg: { ready?: true; id?: number; minted?: Minted; error?: string }) => {
          if (msg.ready) {
            if (slot.inFlight === 0) worker.unref();
            return resolve();
          }
          const p = pending.get(msg.id!);
          if (!p) return;
          pending.delete(msg.id!);
          if (--slot.inFlight === 0) worker.unref();
          if (msg.error !== undefined) p.reject(new Error(`mint worker: ${msg.error}`));
          else p.resolve(revive(msg.minted!));
        });
      }),
    };
    worker.on('error', (e) => {
      // A crashed worker fails what it held; the caller's transaction never started, so nothing is half-done.
      for (const [id, p] of pending) if (ownerOf.get(id) === slot) p.reject(e);
    });
    worker.on('exit', () => {
      slot.alive = false;
      for (const [id, p] of pending) if (ownerOf.get(id) === slot) p.reject(new Error('mint worker exited'));
    });
    // A booting or busy worker keeps the process alive; an idle one does not (see mint() and 'ready').
    return slot;
  });
  const ownerOf = new Map<number, Slot>();

  return {
    ready: Promise.all(slots.map((s) => s.ready)).then(() => undefined),
    async mint(req: MintRequest): Promise<Minted> {
      if (closed) throw new Error('mint pool is closed');
      const live = slots.filter((s) => s.alive);
      if (live.length === 0) throw new Error('every mint worker has exited');
      const slot = live.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
      const id = nextId++;
      if (slot.inFlight++ === 0) slot.worker.ref();
      ownerOf.set(id, slot);
      return new Promise<Minted>((resolve, reject) => {
        pending.set(id, {
          resolve: (m) => (ownerOf.delete(id), resolve(m)),
          reject: (e) => (ownerOf.delete(id), reject(e)),
        });
        slot.ready.then(
          () => slot.worker.postMessage({ id, req }),
          (e: unknown) => pending.get(id)?.reject(e instanceof Error ? e : new Error(String(e))),
        );
      });
    },
    healthy: () => !closed && slots.some((s) => s.alive),
    async close() {
      closed = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

/** Dates cross the thread boundary as Dates (structured clone), byte arrays as Uint8Array; nothing to revive but types. */
function revive(m: Minted): Minted {
  return { ...m, notBefore: new Date(m.notBefore), notAfter: new Date(m.notAfter) };
}
