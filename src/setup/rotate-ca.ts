import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { DataPaths } from '../config.js';
import type { AnyKeyType } from '../ca/keys.js';
import { prepareRotation, type CaSummary } from '../ca/rotate.js';
import { crlUrlForGeneration } from '../ca/generations.js';
import { appendAudit } from '../audit/log.js';

export interface RotationResult {
  previous: CaSummary;
  current: CaSummary;
  /** The CRL distribution point new certificates carry (undefined without KENSHIN_CRL_URL). */
  crlDistributionPoint: string | undefined;
  /** A crashed earlier rotation was completed first. */
  finishedInterrupted: boolean;
}

/**
 * `kenshin ca rotate`: a new issuing CA under the same root, audited as `ca.rotated`. The new CA
 * becomes current at the commit point inside the audit transaction, so the event exists exactly
 * when the rotation does; the audit append also serialises two operators rotating at once (the
 * second is refused, see ca/rotate.ts). Processes that already loaded the CA (a running
 * `kenshin serve`) keep issuing with the previous one until restarted.
 */
export async function rotateIssuingCa(
  deps: { db: Db; clock: Clock; paths: DataPaths; passphraseFromEnv: string | undefined; crlUrl: string | undefined },
  req: { actor: string; keyType?: AnyKeyType | undefined },
): Promise<RotationResult> {
  const now = deps.clock.now();
  const prepared = await prepareRotation({ paths: deps.paths, passphraseFromEnv: deps.passphraseFromEnv, keyType: req.keyType, now });
  const { previous, next } = prepared;
  const crlDistributionPoint = crlUrlForGeneration(deps.crlUrl, next.generation);
  try {
    await deps.db.transaction().execute(async (trx) => {
      await appendAudit(trx, now, {
        actor: req.actor,
        action: 'ca.rotated',
        target: `ca:issuing-${next.generation}`,
        details: {
          previous: { generation: previous.generation, fingerprint: previous.fingerprint, subject: previous.subject, notAfter: previous.notAfter },
          current: { generation: next.generation, fingerprint: next.fingerprint, subject: next.subject, notAfter: next.notAfter, keyType: next.keyType },
          crlDistributionPoint: crlDistributionPoint ?? null,
        },
      });
      prepared.commit();
    });
  } catch (e) {
    prepared.abort();
    throw e;
  }
  prepared.finish();
  const current: CaSummary = { generation: next.generation, fingerprint: next.fingerprint, subject: next.subject, notAfter: next.notAfter, crl: next.crl };
  return { previous, current, crlDistributionPoint, finishedInterrupted: prepared.finishedInterrupted };
}
