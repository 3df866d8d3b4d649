// Runs before `npm test`: the suite checks every PKCS#12 with the real tools, so say clearly
// which are missing and how to install them, instead of failing deep inside a test.
import { spawnSync } from 'node:child_process';

const tools = [
  ['openssl', ['version'], 'openssl'],
  ['pk12util', [], 'libnss3-tools'],
  ['certutil', ['-H'], 'libnss3-tools'],
  ['/usr/bin/chromium', ['--version'], 'chromium'],
  ['/usr/bin/firefox-esr', ['--version'], 'firefox-esr'],
  ['/usr/sbin/nginx', ['-v'], 'nginx'],
];
const missing = tools.filter(([cmd, args]) => spawnSync(cmd, args, { stdio: 'ignore' }).error);
if (missing.length) {
  const pkgs = [...new Set(missing.map(([, , pkg]) => pkg))].join(' ');
  console.error(`The tests need ${missing.map(([c]) => c).join(', ')}. Install them with:\n  sudo apt-get install -y ${pkgs}`);
  process.exit(1);
}
