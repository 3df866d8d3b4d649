import type { Generated, Insertable, Selectable } from 'kysely';

/**
 * The tables, as Kysely sees them. Timestamps are ISO-8601 UTC strings ("2026-11-25T16:00:00.000Z")
 * in both SQLite and PostgreSQL: they sort correctly as text and read the same in both dialects.
 */

export type Role = 'admin' | 'user' | 'operator';
export type CertificateStatus = 'active' | 'revoked';
/** How a certificate came to be: by an operator, by self-renewal, or re-issued after expiry. */
export type IssuedVia = 'operator' | 'renewal' | 'reissue';

export interface TenantsTable {
  id: Generated<number>;
  code: string;
  name: string;
  contact_email: string | null;
  created_at: string;
}

export interface InstitutionsTable {
  id: Generated<number>;
  tenant_id: number;
  /** 機関番号: exactly 10 digits. */
  number: string;
  name: string;
  created_at: string;
}

export interface UsersTable {
  id: Generated<number>;
  tenant_id: number;
  login_id: string;
  password_hash: string;
  role: Role;
  locked_at: string | null;
  created_at: string;
}

export interface UserInstitutionsTable {
  user_id: number;
  institution_id: number;
}

export interface CertificatesTable {
  id: Generated<number>;
  /** Lowercase hex, no leading zeros. Unique: the database, not the random generator, guarantees it. */
  serial: string;
  tenant_id: number;
  /** RFC 4514-ish display form, e.g. "CN=T0001, O=テスト医院". */
  subject: string;
  /** The exact DER of the subject, copied verbatim into a renewal. Base64. */
  subject_der: string;
  label: string | null;
  key_type: string;
  fingerprint_sha256: string;
  not_before: string;
  not_after: string;
  status: CertificateStatus;
  revoked_at: string | null;
  revocation_reason: string | null;
  predecessor_id: number | null;
  /** 1 once a successor exists (set by a trigger on the successor's insert: migration 016). */
  has_successor: Generated<number>;
  issued_via: IssuedVia;
  issuer_fingerprint: string;
  pem: string;
  created_at: string;
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: string;
  /** "cli:root", "user:<id>", "cert:<serial>", "system" … */
  actor: string;
  action: string;
  tenant_id: number | null;
  /** What the event is about, e.g. "certificate:<serial>". */
  target: string | null;
  /** JSON object; never holds a password, key or token. */
  details: string;
  prev_hash: string;
  hash: string;
}

export interface RenewalsTable {
  id: Generated<number>;
  predecessor_id: number;
  successor_id: number;
  download_id: string;
  package_sealed: string | null;
  package_expires_at: string;
  created_at: string;
  taken_up_at: string | null;
  wiped_at: string | null;
  /** First fetch of the package by a desktop client over the certificate-only API, and its User-Agent. */
  client_fetched_at: string | null;
  client_agent: string | null;
}

export interface SessionsTable {
  id_hash: string;
  user_id: number;
  certificate_id: number;
  institution_id: number | null;
  csrf_token: string;
  renewal_deferred: number;
  /** The renewal whose password this session revealed (「確認する」): the save screen shows it on GET. */
  revealed_renewal_id: number | null;
  created_at: string;
  last_seen_at: string;
}

export interface LoginThrottleTable {
  key: string;
  /** Password checks in this window: failed ones, and those still running (a reservation). */
  failures: number;
  last_failure_at: string;
  locked_until: string | null;
  /** Start of the counting window; null only for rows from before migration 009. */
  window_started_at: string | null;
  /** Attempts refused during the current lock (audited once, with this count, when it ends). */
  refused: Generated<number>;
}

export interface CrlsTable {
  issuer_fingerprint: string;
  number: number;
  this_update: string;
  next_update: string;
  revoked_count: Generated<number>;
  der: string;
}

export interface RemindersTable {
  certificate_id: number;
  threshold: number;
  status: 'sending' | 'sent';
  recipient: string;
  claimed_at: string;
  sent_at: string | null;
}

export interface DeliveriesTable {
  id: Generated<number>;
  download_id: string;
  certificate_id: number;
  operator_user_id: number;
  package_sealed: string | null;
  expires_at: string;
  downloaded_at: string | null;
}

export interface HandoversTable {
  id: Generated<number>;
  certificate_id: number;
  output_file: string;
  /** The .p12 and its password (package vault) until handed over; null after. */
  package_sealed: string | null;
  created_at: string;
  handed_over_at: string | null;
}

export interface CertificateImportsTable {
  certificate_id: number;
  source: string;
  imported_at: string;
}

export interface OnboardingRowsTable {
  row_key: string;
  certificate_id: number;
  created_at: string;
}

export interface OnboardingUsersTable {
  user_id: number;
  password_sealed: string | null;
  created_at: string;
}

export interface OnboardingJobsTable {
  id: string;
  file_name: string;
  csv: string;
  /** 'interrupted': was running, its process's heartbeat stopped (db/migrations/017). */
  status: 'previewed' | 'running' | 'interrupted' | 'done' | 'failed';
  key_type: string;
  profile: string;
  created_by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  report: string;
  error: string | null;
  files_deleted_at: string | null;
  /** The process running it: host, pid and a random part. */
  runner: string | null;
  heartbeat_ms: number | null;
  run_started_ms: number | null;
  progress_done: Generated<number>;
  progress_total: Generated<number>;
}

export interface AuditHeadTable {
  id: number;
  hash: string;
  count: number;
}

export interface Schema {
  audit_head: AuditHeadTable;
  crls: CrlsTable;
  reminders: RemindersTable;
  deliveries: DeliveriesTable;
  handovers: HandoversTable;
  renewals: RenewalsTable;
  sessions: SessionsTable;
  login_throttle: LoginThrottleTable;
  tenants: TenantsTable;
  institutions: InstitutionsTable;
  users: UsersTable;
  user_institutions: UserInstitutionsTable;
  certificates: CertificatesTable;
  certificate_imports: CertificateImportsTable;
  onboarding_rows: OnboardingRowsTable;
  onboarding_users: OnboardingUsersTable;
  onboarding_jobs: OnboardingJobsTable;
  audit_events: AuditEventsTable;
}

export type Tenant = Selectable<TenantsTable>;
export type Institution = Selectable<InstitutionsTable>;
export type User = Selectable<UsersTable>;
export type CertificateRow = Selectable<CertificatesTable>;
export type NewCertificate = Insertable<CertificatesTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type Renewal = Selectable<RenewalsTable>;
export type Session = Selectable<SessionsTable>;
