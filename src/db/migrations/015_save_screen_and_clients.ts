import type { Kysely } from 'kysely';

/**
 * `sessions.revealed_renewal_id`: the renewal whose password this session chose to see
 * (「確認する」). The save screen is a GET that shows the password when set, so Back, reload and a
 * second tab of the same session show the same screen instead of a resubmitted POST.
 *
 * `renewals.client_fetched_at` / `client_agent`: the first time a desktop client (ORCA's monsiaj,
 * glclient: the certificate-only API) fetched the new package, and its User-Agent. Kenshin never
 * sees such a client present the new certificate to the portal, so this is what the portal and the
 * console can tell about it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sessions').addColumn('revealed_renewal_id', 'integer').execute();
  await db.schema.alterTable('renewals').addColumn('client_fetched_at', 'text').execute();
  await db.schema.alterTable('renewals').addColumn('client_agent', 'text').execute();
}
