import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { loadConfig } from '../../src/config.js';
import { parseConfigText } from '../../src/config-file.js';
import { SETTINGS } from '../../src/config.js';

/** The settings file + environment, and `kenshin config check` against a real installation. */
describe('configuration file and kenshin config check', async () => {
  const dir = tempDir();
  const dataDir = path.join(dir, 'data');
  const base = { KENSHIN_DATA_DIR: dataDir, KENSHIN_CA_PASSPHRASE: 'config-test', KENSHIN_LOG_LEVEL: 'silent' };
  assert.equal((await kenshin(['init'], { env: base })).code, 0);
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  test('the file sets values, the environment overrides single ones', () => {
    const file = write('a.conf', '# Kenshin\nKENSHIN_MODE=proxy\nKENSHIN_LISTEN="unix:/run/kenshin/kenshin.sock"\nexport KENSHIN_RENEWAL_WINDOW_DAYS=60\n\nKENSHIN_OPERATOR_CONTACT=\'窓口 03-1234-5678\'\n');
    const c = loadConfig({}, { KENSHIN_CONFIG: file, KENSHIN_RENEWAL_WINDOW_DAYS: '45' });
    assert.equal(c.mode, 'proxy');
    assert.deepEqual(c.listen, { socket: '/run/kenshin/kenshin.sock' });
    assert.equal(c.renewalWindowDays, 45);
    assert.equal(c.operatorContact, '窓口 03-1234-5678');
    assert.equal(c.configFile, file);
  });

  test('the shipped example (deploy/kenshin.conf.example) is a valid proxy-mode configuration', () => {
    const example = path.resolve(import.meta.dirname, '../../deploy/kenshin.conf.example');
    const c = loadConfig({}, { KENSHIN_CONFIG: example });
    assert.equal(c.mode, 'proxy');
    assert.deepEqual(c.listen, { socket: '/run/kenshin/kenshin.sock' });
    assert.equal(c.dataDir, '/var/lib/kenshin');
    assert.match(c.databaseUrl ?? '', /^postgres:\/\//);
    assert.deepEqual(c.trustedProxies, ['127.0.0.1', '::1']);
  });

  test('mistakes name the key, the file and the line', () => {
    const err = (text: string) => {
      try {
        parseConfigText(text, 'k.conf', SETTINGS);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    assert.equal(err('KENSHIN_LISTN=1'), 'KENSHIN_LISTN: unknown setting in k.conf line 1 (did you mean KENSHIN_LISTEN?)');
    assert.equal(err('\nlisten 443'), 'k.conf line 2: expected KEY=value, got "listen 443"');
    assert.equal(err('KENSHIN_MODE=proxy\nKENSHIN_MODE=direct'), 'KENSHIN_MODE: set twice in k.conf (lines 1 and 2)');
    assert.equal(err('KENSHIN_MODE="proxy'), 'KENSHIN_MODE: unterminated quote in k.conf line 1');
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig({}, env);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    assert.equal(bad({ KENSHIN_MODE: 'reverse' }), 'KENSHIN_MODE: expected one of direct, proxy, got "reverse"');
    assert.match(bad({ KENSHIN_TRUSTED_PROXIES: '127.0.0.1, nginx.local' }), /^KENSHIN_TRUSTED_PROXIES: "nginx.local" is not an IP address or CIDR/);
    assert.match(bad({ KENSHIN_TLS_CERT: '/etc/ssl/a.pem' }), /^KENSHIN_TLS_KEY: KENSHIN_TLS_CERT and KENSHIN_TLS_KEY are set together/);
    assert.match(bad({ KENSHIN_LISTEN: 'unix:/tmp/k.sock' }), /^KENSHIN_LISTEN: a unix socket is for proxy mode/);
    assert.match(bad({ KENSHIN_LISTEN: 'unix:relative.sock', KENSHIN_MODE: 'proxy' }), /^KENSHIN_LISTEN: expected unix:\/absolute\/path/);
    assert.match(bad({ KENSHIN_CONFIG: path.join(dir, 'missing.conf') }), /^KENSHIN_CONFIG: cannot read .*missing\.conf: ENOENT/);
  });

  test('config check on a good installation: ok, settings with their source, secrets hidden', async () => {
    const file = write('good.conf', `KENSHIN_DATA_DIR=${dataDir}\nKENSHIN_CA_PASSPHRASE=config-test\nKENSHIN_CRL_URL=https://kenshin.example.jp/crl/issuing.crl\n`);
    const r = await kenshin(['--config', file, 'config', 'check'], { env: { KENSHIN_LOG_LEVEL: 'silent' } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}CA: issuing CA CN=Kenshin Cloud Issuing CA 1/m);
    assert.match(r.stdout, /^ok {4}database: sqlite reachable; (\d+) of \1 migrations applied/m);
    assert.match(r.stdout, /KENSHIN_CA_PASSPHRASE\s+\(set\)\s+file/);
    assert.match(r.stdout, /KENSHIN_LOG_LEVEL\s+silent\s+environment/);
    assert.doesNotMatch(r.stdout, /config-test/);
    assert.match(r.stdout, /configuration OK/);
  });

  test('config check finds a wrong passphrase, an unreadable TLS pair and a typo in the environment', async () => {
    const r = await kenshin(['config', 'check', '--json'], { env: { ...base, KENSHIN_CA_PASSPHRASE: 'wrong', KENSHIN_TLS_CERT: path.join(dir, 'none.pem'), KENSHIN_TLS_KEY: path.join(dir, 'none.key'), KENSHIN_RENEWAL_WINDOW: '60' } });
    assert.equal(r.code, 2);
    const report = r.json<{ ok: boolean; findings: { severity: string; subject: string; message: string }[] }>();
    assert.equal(report.ok, false);
    const find = (subject: string) => report.findings.find((f) => f.subject === subject);
    assert.equal(find('KENSHIN_CA_PASSPHRASE')?.severity, 'error');
    assert.equal(find('KENSHIN_TLS_CERT')?.severity, 'error');
    assert.match(find('KENSHIN_TLS_CERT')!.message, /none\.pem/);
    assert.equal(find('KENSHIN_RENEWAL_WINDOW')?.severity, 'warn');
  });

  test('config check in proxy mode warns about plain HTTP off loopback and the missing public URL', async () => {
    const r = await kenshin(['config', 'check'], { env: { ...base, KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: '0.0.0.0:8080' } });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^warn {2}KENSHIN_LISTEN: proxy mode speaks plain HTTP on 0\.0\.0\.0:8080/m);
    assert.match(r.stdout, /^warn {2}KENSHIN_PUBLIC_URL: unset/m);
  });

  test('config check names the application Kenshin fronts, and warns when the assertion issuer is a guess', async () => {
    const r = await kenshin(['config', 'check'], { env: { ...base, KENSHIN_UPSTREAM_URL: 'http://127.0.0.1:3000' } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}KENSHIN_UPSTREAM_URL: fronting the application at http:\/\/127\.0\.0\.1:3000 \(assertion aud kenshin-gateway\)/m);
    assert.match(r.stdout, /^warn {2}KENSHIN_PUBLIC_URL: unset while fronting an application/m);
  });

  test('config check on an empty data dir says to run init', async () => {
    const r = await kenshin(['config', 'check'], { env: { KENSHIN_DATA_DIR: path.join(dir, 'empty') } });
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^error KENSHIN_DATA_DIR: no CA in .*empty: run `kenshin init`/m);
  });

  test('a bad setting stops every command with the key named', async () => {
    const r = await kenshin(['tenant', 'list'], { env: { ...base, KENSHIN_SESSION_IDLE_MINUTES: 'ten' } });
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), 'kenshin: KENSHIN_SESSION_IDLE_MINUTES: expected a whole number from 1 to 1440, got "ten"');
  });
});
