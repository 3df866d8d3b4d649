import type { Command } from 'commander';
import { runCommand, type CliIo, type ExitBox } from '../context.js';
import { addInstitution, addTenant, addUser, resetPassword, setUserInstitutions, setUserLocked, updateTenant } from '../../tenancy/service.js';
import { table } from '../output.js';
import { invalidInput } from '../../errors.js';

const ACTOR = 'cli';

export function registerTenancy(program: Command, io: CliIo, exit: ExitBox): void {
  const tenant = program.command('tenant').description('tenants (contracting organisations; the certificate subject)');
  tenant
    .command('add')
    .description('add a tenant: CN=<code>, O=<name> in its certificates')
    .requiredOption('--code <CODE>', 'tenant code (ASCII, becomes the certificate CN)')
    .requiredOption('--name <NAME>', 'tenant name (becomes the certificate O)')
    .option('--email <ADDR>', 'contact e-mail for expiry reminders')
    .option('--json', 'JSON output')
    .action(async (o: { code: string; name: string; email?: string; json?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const t = await addTenant({ db: rt.database.db, clock: rt.clock }, o, ACTOR);
        out.result({ code: t.code, name: t.name, email: t.contact_email }, () => `tenant ${t.code} (${t.name}) added`);
      }),
    );
  tenant
    .command('list')
    .description('list tenants')
    .option('--json', 'JSON output')
    .action(async (_o: unknown, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const rows = await rt.database.db.selectFrom('tenants').select(['code', 'name', 'contact_email']).orderBy('code').execute();
        out.result(
          rows.map((r) => ({ code: r.code, name: r.name, email: r.contact_email })),
          () => table(['CODE', 'NAME', 'EMAIL'], rows.map((r) => [r.code, r.name, r.contact_email ?? ''])),
        );
      }),
    );

  tenant
    .command('edit')
    .description('change a tenant’s name or contact e-mail (issued certificates keep their subject)')
    .requiredOption('--code <CODE>', 'tenant code')
    .option('--name <NAME>', 'new name (used for new certificates)')
    .option('--email <ADDR>', 'new contact e-mail for reminders')
    .option('--json', 'JSON output')
    .action(async (o: { code: string; name?: string; email?: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const t = await updateTenant({ db: rt.database.db, clock: rt.clock }, o.code, { name: o.name, email: o.email }, ACTOR);
        out.result({ code: t.code, name: t.name, email: t.contact_email }, () => `tenant ${t.code} updated`);
      }),
    );

  const inst = program.command('institution').description('健診機関 (10-digit 機関番号)');
  inst
    .command('add')
    .description('add a 健診機関 to a tenant')
    .requiredOption('--tenant <CODE>', 'tenant code')
    .requiredOption('--number <NNNNNNNNNN>', '10-digit 機関番号')
    .requiredOption('--name <NAME>', 'institution name')
    .option('--json', 'JSON output')
    .action(async (o: { tenant: string; number: string; name: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const i = await addInstitution({ db: rt.database.db, clock: rt.clock }, { tenantCode: o.tenant, number: o.number, name: o.name }, ACTOR);
        out.result({ tenant: o.tenant, number: i.number, name: i.name }, () => `健診機関 ${i.number} (${i.name}) added to ${o.tenant}`);
      }),
    );

  const user = program.command('user').description('portal users (login ID + password)');
  user
    .command('add')
    .description('add a user; the password is read from standard input')
    .requiredOption('--tenant <CODE>', 'tenant code')
    .requiredOption('--login <ID>', 'login ID')
    .option('--institutions <N1,N2>', 'comma-separated 機関番号 the user may use', '')
    .option('--role <admin|user>', '管理者 (admin) or 一般ユーザ (user)', 'user')
    .option('--password-stdin', 'read the password from standard input (required: passwords never go on the command line)')
    .option('--json', 'JSON output')
    .action(async (o: { tenant: string; login: string; institutions: string; role: string; passwordStdin?: boolean }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        // Command-line arguments are visible to every local user in `ps`: refuse to take a password there.
        if (!o.passwordStdin) throw invalidInput('password-stdin', 'is required: pipe the password on standard input');
        const password = (await io.readStdin()).replace(/\r?\n$/, '');
        const numbers = o.institutions.split(',').map((s) => s.trim()).filter(Boolean);
        const rt = await runtime();
        const u = await addUser({ db: rt.database.db, clock: rt.clock }, { tenantCode: o.tenant, loginId: o.login, password, role: o.role, institutionNumbers: numbers }, ACTOR);
        out.result({ tenant: o.tenant, login: u.login_id, role: u.role, institutions: u.institutions }, () => `user ${u.login_id} (${u.role}) added to ${o.tenant}`);
      }),
    );

  for (const [name, description] of [
    ['lock', 'lock a user (ends the user’s sessions)'],
    ['unlock', 'unlock a user'],
    ['reset-password', 'give a user a new generated password (printed once)'],
  ] as const) {
    user
      .command(name)
      .description(description)
      .requiredOption('--tenant <CODE>', 'tenant code')
      .requiredOption('--login <ID>', 'login ID')
      .option('--json', 'JSON output')
      .action(async (o: { tenant: string; login: string }, cmd: Command) =>
        runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
          const rt = await runtime();
          const deps = { db: rt.database.db, clock: rt.clock };
          if (name === 'reset-password') {
            const password = await resetPassword(deps, o.tenant, o.login, ACTOR);
            out.result({ tenant: o.tenant, login: o.login, password }, () => `new password for ${o.login}: ${password}`);
          } else {
            await setUserLocked(deps, o.tenant, o.login, name === 'lock', ACTOR);
            out.result({ tenant: o.tenant, login: o.login, locked: name === 'lock' }, () => `user ${o.login} ${name === 'lock' ? 'locked' : 'unlocked'}`);
          }
        }),
      );
  }
  user
    .command('institutions')
    .description('set the 健診機関 a user may use')
    .requiredOption('--tenant <CODE>', 'tenant code')
    .requiredOption('--login <ID>', 'login ID')
    .requiredOption('--institutions <N1,N2>', 'comma-separated 機関番号 (empty for none)')
    .option('--json', 'JSON output')
    .action(async (o: { tenant: string; login: string; institutions: string }, cmd: Command) =>
      runCommand(io, exit, cmd.optsWithGlobals(), {}, async ({ out, runtime }) => {
        const rt = await runtime();
        const numbers = o.institutions.split(',').map((s) => s.trim()).filter(Boolean);
        await setUserInstitutions({ db: rt.database.db, clock: rt.clock }, o.tenant, o.login, numbers, ACTOR);
        out.result({ tenant: o.tenant, login: o.login, institutions: numbers }, () => `user ${o.login} may use ${numbers.join(', ') || 'no institution'}`);
      }),
    );
}
