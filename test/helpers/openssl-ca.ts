import fs from 'node:fs';
import path from 'node:path';
import { run } from './openssl.js';

/**
 * The old system, made the way many are: a CA run with the `openssl ca` command, its database an
 * index.txt with a newcerts/ directory. Client certificates carry `CN=<tenant code>, O=<name>`
 * and clientAuth; one can be revoked. Built at the real now (openssl reads the real clock).
 */
export interface OpensslCa {
  dir: string;
  certFile: string;
  keyFile: string;
  /** The CA's key encrypted with this passphrase (keyFile is the plain one). */
  encryptedKeyFile: string;
  keyPassphrase: string;
  index: string;
  conf: string;
  crlFile(): string;
  issue(name: { cn: string; o: string }, opts?: { days?: number; eku?: string }): { serial: string; certFile: string; keyFile: string; p12: string; p12Password: string };
  revoke(certFile: string, reason?: string): void;
}

export function makeOpensslCa(dir: string, opts: { name?: string; keyType?: 'ec' | 'rsa' } = {}): OpensslCa {
  fs.mkdirSync(path.join(dir, 'newcerts'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'clients'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'index.txt'), '');
  fs.writeFileSync(path.join(dir, 'serial'), '1000\n');
  fs.writeFileSync(path.join(dir, 'crlnumber'), '0100\n');
  const conf = path.join(dir, 'openssl.cnf');
  fs.writeFileSync(
    conf,
    `[ ca ]
default_ca = old
[ old ]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = none
utf8 = yes
string_mask = utf8only
[ anything ]
commonName = supplied
organizationName = optional
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ req ]
distinguished_name = dn
[ dn ]
`,
  );
  const keyFile = path.join(dir, 'ca.key');
  const certFile = path.join(dir, 'ca.crt');
  const keyArgs = opts.keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  run('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=${opts.name ?? 'Old Kenshin-like CA'}/O=旧システム`, '-utf8', '-config', conf, '-extensions', 'v3_ca']);
  const keyPassphrase = 'old system passphrase';
  const encryptedKeyFile = path.join(dir, 'ca.enc.key');
  run('openssl', ['pkey', '-in', keyFile, '-out', encryptedKeyFile, '-aes256', '-passout', `pass:${keyPassphrase}`]);
  let n = 0;
  return {
    dir,
    certFile,
    keyFile,
    encryptedKeyFile,
    keyPassphrase,
    index: path.join(dir, 'index.txt'),
    conf,
    crlFile() {
      const out = path.join(dir, 'crl.pem');
      run('openssl', ['ca', '-config', conf, '-gencrl', '-out', out, '-batch']);
      return out;
    },
    issue(name, o = {}) {
      n++;
      const base = path.join(dir, 'clients', `c${n}`);
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${name.cn}/O=${name.o}`, '-utf8', '-config', conf]);
      run('openssl', ['ca', '-config', conf, '-batch', '-in', `${base}.csr`, '-out', `${base}.crt`, '-extensions', o.eku === 'serverAuth' ? 'server' : 'client', '-days', String(o.days ?? 365), '-notext', '-utf8']);
      const serial = run('openssl', ['x509', '-in', `${base}.crt`, '-noout', '-serial']).trim().replace(/^serial=/, '');
      const p12Password = `pw-${n}`;
      run('openssl', ['pkcs12', '-export', '-in', `${base}.crt`, '-inkey', `${base}.key`, '-out', `${base}.p12`, '-passout', `pass:${p12Password}`]);
      return { serial, certFile: `${base}.crt`, keyFile: `${base}.key`, p12: `${base}.p12`, p12Password };
    },
    revoke(file, reason = 'keyCompromise') {
      run('openssl', ['ca', '-config', conf, '-revoke', file, '-crl_reason', reason, '-batch']);
    },
  };
}
