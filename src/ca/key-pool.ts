import { generateKeyPair, type AnyKeyType } from './keys.js';
import type { KeySource } from './mint.js';

/**
 * Key pairs made ahead, for a renewal storm (many clinics pressing 「開始する」 the morning after a
 * reminder mail): RSA-2048 generation is ~170 ms of CPU, most of what a renewal costs, so with a
 * few keys ready the first wave waits only for signing and packing.
 *
 * The keys live in this process's memory only, never written anywhere, and are dropped with it
 * (a mint worker's pool ends when the worker is terminated at shutdown). Each key is handed out
 * once. Refilling happens only when the pool is idle (nothing being minted), one key at a time,
 * so it never competes with a user who is waiting.
 */
export interface KeyPool extends KeySource {
  /** Runs a whole mint (key, signature, packing) as work: no refill competes with it. */
  during<T>(work: () => Promise<T>): Promise<T>;
  /** Keys ready now, per type (for tests and metrics). */
  ready(type: AnyKeyType): number;
  /** Resolves once no refill is running (tests; shutdown does not need to wait). */
  idle(): Promise<void>;
  /** Drops every pooled key and stops refilling. */
  close(): void;
}

/**
 * `generate` makes the keys someone is waiting for; `makeAhead` (by default the same) the keys the
 * pool makes while idle — the mint worker makes the first on its own thread and the second through
 * WebCrypto (see mint-worker.ts).
 */
export function keyPool(
  sizes: Partial<Record<AnyKeyType, number>>,
  generate: (type: AnyKeyType) => Promise<CryptoKeyPair> = generateKeyPair,
  makeAhead: (type: AnyKeyType) => Promise<CryptoKeyPair> = generate,
): KeyPool {
  const ready = new Map<AnyKeyType, CryptoKeyPair[]>();
  let busy = 0;
  let refilling: Promise<void> | undefined;
  let failed = false;
  let closed = false;

  const wanted = () => (Object.entries(sizes) as [AnyKeyType, number][]).find(([type, size]) => (ready.get(type)?.length ?? 0) < size)?.[0];

  const refill = () => {
    if (refilling || closed || busy > 0 || wanted() === undefined) return;
    refilling = (async () => {
      let type: AnyKeyType | undefined;
      // Stop as soon as someone is waiting for a key: their fresh one must not queue behind ours.
      for (;;) {
        // A turn of the event loop before each key: a generator that blocks its thread (as
        // generateKeyPairOnThisThread does) resolves at once, and without this turn the loop would
        // make every missing key before the worker read the mint request that arrived meanwhile.
        // The mint worker makes ahead through WebCrypto, which yields anyway; this keeps any
        // generator safe.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (closed || busy > 0 || (type = wanted()) === undefined) break;
        let pair: CryptoKeyPair;
        try {
          pair = await makeAhead(type);
        } catch {
          // A key that could not be made ahead is simply not there: the next mint makes its own
          // (and reports an error if that fails too). No retry here, which could spin; the next
          // mint's end starts a refill again. Unhandled, the rejection would end the worker.
          failed = true;
          break;
        }
        if (closed) break;
        const list = ready.get(type) ?? [];
        list.push(pair);
        ready.set(type, list);
      }
    })().finally(() => {
      refilling = undefined;
      // Work may have ended while the last key was being made; after a failure, wait for work.
      if (failed) failed = false;
      else refill();
    });
  };

  refill();
  return {
    async take(type) {
      busy++;
      try {
        const pooled = ready.get(type)?.shift();
        return pooled ?? (await generate(type));
      } finally {
        busy--;
        queueMicrotask(refill);
      }
    },
    async during(work) {
      busy++;
      try {
        return await work();
      } finally {
        busy--;
        queueMicrotask(refill);
      }
    },
    ready: (type) => ready.get(type)?.length ?? 0,
    async idle() {
      while (refilling) await refilling;
    },
    close() {
      closed = true;
      ready.clear();
    },
  };
}
