import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { findTenant } from '../tenancy/service.js';
import { listCertificates } from '../certificates/service.js';
import type { TenantDetail } from './views.js';

/** A tenant with its 健診機関, users (and the institutions each may use) and certificates. */
export async function tenantDetail(db: Db, clock: Clock, code: string): Promise<TenantDetail> {
  const tenant = await findTenant(db, code);
  const institutions = await db.selectFrom('institutions').select(['number', 'name']).where('tenant_id', '=', tenant.id).orderBy('number').execute();
  const users = await db.selectFrom('users').select(['id', 'login_id', 'role', 'locked_at']).where('tenant_id', '=', tenant.id).orderBy('login_id').execute();
  const links = users.length
    ? await db.selectFrom('user_institutions as ui').innerJoin('institutions as i', 'i.id', 'ui.institution_id').select(['ui.user_id', 'i.number']).where('ui.user_id', 'in', users.map((u) => u.id)).execute()
    : [];
  return {
    tenant,
    institutions,
    users: users.map((u) => ({ ...u, institutions: links.filter((l) => l.user_id === u.id).map((l) => l.number).sort() })),
    certificates: await listCertificates({ db, clock }, { tenantCode: tenant.code }),
  };
}
