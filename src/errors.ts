/**
 * The named refusals of the domain. Each carries the data a message needs; the CLI
 * (src/cli/errors.ts) and later the web layer map them to a line / page / JSON code.
 * Adding a refusal = one entry here plus one message per surface.
 */
export type RefusalCode =
  | 'invalid_input'
  | 'unknown_tenant'
  | 'duplicate_tenant'
  | 'unknown_institution'
  | 'duplicate_institution'
  | 'duplicate_login'
  | 'unknown_certificate'
  | 'certificate_already_revoked'
  | 'already_initialized'
  | 'not_initialized'
  | 'ca_key_unreadable'
  | 'ca_file_damaged'
  | 'database_unreadable'
  | 'ca_rotation_conflict'
  | 'data_dir_not_writable'
  | 'data_dir_exposed'
  | 'data_dir_locked'
  | 'output_not_writable'
  | 'nothing_to_recover'
  // Taking over a running service: external CAs and imported certificates
  | 'not_a_ca'
  | 'ca_expired'
  | 'chain_incomplete'
  | 'chain_invalid'
  | 'key_unreadable'
  | 'key_mismatch'
  | 'ca_known'
  | 'crl_invalid'
  | 'import_rejected'
  // Onboarding from the console
  | 'unknown_onboarding_job'
  | 'onboarding_busy'
  | 'onboarding_lost'
  | 'onboarding_closed'
  // Backup and restore
  | 'backup_damaged'
  // Renewal and the portal
  | 'certificate_expired'
  | 'certificate_revoked'
  | 'certificate_not_yet_valid'
  | 'not_in_window'
  | 'package_expired'
  | 'unknown_renewal'
  | 'not_your_package';

export class Refusal extends Error {
  readonly code: RefusalCode;
  /** Field or file the refusal is about, so the message can name it. */
  readonly field: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: RefusalCode, message: string, opts: { field?: string; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = 'Refusal';
    this.code = code;
    this.field = opts.field;
    this.details = opts.details ?? {};
  }
}

export const invalidInput = (field: string, message: string): Refusal =>
  new Refusal('invalid_input', `${field}: ${message}`, { field });

export function isRefusal(e: unknown): e is Refusal {
  return e instanceof Refusal;
}
