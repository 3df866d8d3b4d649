import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { jwksAt, loadGatewayKeys, rotateGatewayKey, RETIRED_KEEP_MS } from '../../src/gateway/signing-key.js';
import { signAssertion } from '../../src/gateway/assertion.js';
import type { GatewayIdentity } from '../../src/gateway/identity.js';
import { tempDir } from '../helpers/tmp.js';
import { T0 } from '../helpers/dates.js';
import { kenshin } from '../helpers/cli.js';
import { loadConfig } from '../../src/config.js';

const now = new Date(T0);
const identity: GatewayIdentity = {
  tenant: { code: 'T0001', name: '山田クリニック' },
  institution: { number: '1312345678', name: '山田クリニック本院' },
  user: { loginId: 'solo', role: 'user' },
  certificate: { serial: '1f', notAfter: T0, daysLeft: 60, thumbprint: 'x' },
  renewal: { daysLeft: 60, windowStart: now, windowEnd: now, inWindow: true, eligible: true, reason: null, renewed: false, deferred: true },
};
const settings = { issuer: 'https://app.example.test/', audience: 'kenshin-gateway' };

describe('the gateway signing key (data/secrets/gateway-signing-key)', () => {
  test('generated on first use, 0600 in a 0700 directory, the same key on every later load', async () => {
    const file = path.join(tempDir(), 'secrets', 'gateway-signing-key');
    const a = await loadGatewayKeys(file, now);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    const b = await loadGatewayKeys(file, now);
    assert.equal(a.kid, b.kid);
    const jwks = jwksAt(a, now);
    assert.equal(jwks.keys.length, 1);
    assert.deepEqual(Object.keys(jwks.keys[0]!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
  });

  test('instances starting at once on a fresh data directory end up with one key', async () => {
    const file = path.join(tempDir(), 'secrets', 'gateway-signing-key');
    const kids = new Set((await Promise.all(Array.from({ length: 8 }, () => loadGatewayKeys(file, now)))).map((k) => k.kid));
    assert.equal(kids.size, 1);
  });

  test('rotation: the old public key stays in the JWKS for a day, so its last assertions still verify', async () => {
    const file = path.join(tempDir(), 'gateway-signing-key');
    const old = await loadGatewayKeys(file, now);
    const lastOld = await signAssertion({ ...settings, keys: old }, identity, now);
    const r = await rotateGatewayKey(file, now);
    assert.equal(r.previousKid, old.kid);
    assert.notEqual(r.kid, old.kid);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const fresh = await loadGatewayKeys(file, now);
    assert.equal(fresh.kid, r.kid);
    assert.deepEqual(jwksAt(fresh, now).keys.map((k) => k.kid), [r.kid, old.kid]);
    await jwtVerify(lastOld, createLocalJWKSet(jwksAt(fresh, now)), { ...settings, currentDate: now });
    const first = await signAssertion({ ...settings, keys: fresh }, identity, now);
    await jwtVerify(first, createLocalJWKSet(jwksAt(fresh, now)), { ...settings, currentDate: now });
    // A day later the retired key is gone from the JWKS (an instance running since), and from the file at the next rotation.
    const later = new Date(now.getTime() + RETIRED_KEEP_MS + 1000);
    assert.deepEqual(jwksAt(fresh, later).keys.map((k) => k.kid), [r.kid]);
    await rotateGatewayKey(file, later);
    assert.equal((await loadGatewayKeys(file, later)).retired.length, 1, 'only the key just retired');
  });

  test('a damaged key file is refused without its content in the message', async () => {
    const file = path.join(tempDir(), 'gateway-signing-key');
    const secret = 'SECRET-d-VALUE-xyz';
    fs.writeFileSync(file, `{"current": {"kty":"EC","d":"${secret}"`, { mode: 0o600 });
    await assert.rejects(loadGatewayKeys(file, now), (e: Error) => !e.message.includes(secret) && /not valid JSON/.test(e.message));
    fs.writeFileSync(file, JSON.stringify({ current: { kty: 'RSA', d: secret } }));
    await assert.rejects(loadGatewayKeys(file, now), (e: Error) => !e.message.includes(secret));
  });

  test('`kenshin gateway rotate-key` rotates, audits and says what to do next', async () => {
    const dir = tempDir();
    const env = { KENSHIN_CA_PASSPHRASE: 'gateway-cli-pass' };
    assert.equal((await kenshin(['--data-dir', dir, 'init'], { env })).code, 0);
    const file = path.join(dir, 'secrets', 'gateway-signing-key');
    const before = await loadGatewayKeys(file, new Date());
    const r = await kenshin(['--data-dir', dir, 'gateway', 'rotate-key', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = r.json<{ kid: string; previousKid: string }>();
    assert.equal(out.previousKid, before.kid);
    assert.equal((await loadGatewayKeys(file, new Date())).kid, out.kid);
    const human = await kenshin(['--data-dir', dir, 'gateway', 'rotate-key'], { env });
    assert.match(human.stdout, /SIGHUP/);
    const audit = await kenshin(['--data-dir', dir, 'audit', 'list', '--action', 'gateway.key_rotated', '--json'], { env });
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, new RegExp(out.kid));
  });
});

describe('KENSHIN_GATEWAY_AUDIENCE', () => {
  test('defaults to kenshin-gateway; spaces, control characters or too long are refused, naming the key', () => {
    assert.equal(loadConfig({ dataDir: tempDir() }, {}).gatewayAudience, 'kenshin-gateway');
    assert.equal(loadConfig({ dataDir: tempDir() }, { KENSHIN_GATEWAY_AUDIENCE: 'https://app.example.jp/' }).gatewayAudience, 'https://app.example.jp/');
    for (const bad of ['two words', 'x'.repeat(201), 'tab\there', 'ｱプリ'])
      assert.throws(() => loadConfig({ dataDir: tempDir() }, { KENSHIN_GATEWAY_AUDIENCE: bad }), /KENSHIN_GATEWAY_AUDIENCE/);
  });
});
