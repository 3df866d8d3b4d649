import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { displaySerial, normaliseSerial } from '../../src/ca/serial.js';
import { run } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import path from 'node:path';
import fs from 'node:fs';

/**
 * Serials are shown as the DER INTEGER's bytes, the way Firefox's certificate manager and Chromium's
 * viewer list them, so a clinic can find the one to delete. The stored form drops leading zeros:
 * a serial starting 0x0A was once shown with 31 hex digits.
 */
test('the stored serial shown as browsers show it: leading zero nibble kept, 00 before a high top bit', () => {
  assert.equal(displaySerial('a1b2c3d4e5f60718293a4b5c6d7e8f9'), '0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9');
  assert.equal(displaySerial('c3b2c3d4e5f60718293a4b5c6d7e8f90'), '00:C3:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90');
  assert.equal(displaySerial('7f'), '7F');
  assert.equal(displaySerial('00:C3:B2'), '00:C3:B2', 'idempotent on its own output');
  assert.equal(normaliseSerial(displaySerial('a1b2c3')), 'a1b2c3', 'what a user copies from the page finds the certificate');
});

test('the same bytes as the DER encoding of real certificates (openssl asn1parse)', () => {
  const dir = tempDir('kenshin-serial-');
  for (const serial of ['0x0a1b2c3d4e5f60718293a4b5c6d7e8f9', '0xc3b2c3d4e5f60718293a4b5c6d7e8f90']) {
    const crt = path.join(dir, 'c.pem');
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', crt, '-subj', '/CN=x', '-set_serial', serial, '-days', '1']);
    const stored = new X509Certificate(fs.readFileSync(crt)).serialNumber.toLowerCase().replace(/^0+/, '');
    // The serial is the second INTEGER in the TBS (after the version); asn1parse prints its DER content.
    const der = run('openssl', ['asn1parse', '-in', crt, '-strparse', '4']).split('\n').filter((l) => /prim: INTEGER/.test(l))[1]!;
    const contentHex = /INTEGER\s+:(-?[0-9A-F]+)/.exec(der)![1]!;
    const bytes = contentHex.length % 2 ? `0${contentHex}` : contentHex;
    const derBytes = parseInt(bytes.slice(0, 2), 16) >= 0x80 ? `00${bytes}` : bytes;
    assert.equal(displaySerial(stored), derBytes.match(/../g)!.join(':'));
  }
});
