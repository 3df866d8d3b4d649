import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from '../../src/tenancy/validation.js';
import { validateLabel, buildSubject } from '../../src/ca/subject.js';
import { normaliseSerial } from '../../src/ca/serial.js';
import { friendlyName } from '../../src/ca/friendly-name.js';
import { Refusal } from '../../src/errors.js';

const refused = (field: string, pattern?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof Refusal, `expected a Refusal, got ${String(e)}`);
  assert.equal(e.code, 'invalid_input');
  assert.equal(e.field, field);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

/** What a repeated form field (a=1&a=2) or a JSON body with the wrong types hands a validator. */
const NOT_TEXT: unknown[] = [['a', 'b'], 1234567890, { x: 1 }, true];

describe('field rules take whatever the edge lets through and refuse it by name', () => {
  test('arrays, numbers, objects and booleans are refusals, not TypeErrors', () => {
    for (const bad of NOT_TEXT) {
      assert.throws(() => v.tenantCode(bad), refused('code', /single text value/));
      assert.throws(() => v.displayName('name', bad), refused('name'));
      assert.throws(() => v.email(bad), refused('email'));
      assert.throws(() => v.institutionNumber(bad), refused('number'));
      assert.throws(() => v.institutionNumber(bad, 'institutions'), refused('institutions'));
      assert.throws(() => v.loginId(bad), refused('login'));
      assert.throws(() => v.role(bad), refused('role'));
      assert.throws(() => validateLabel(bad), refused('label'));
      assert.equal(normaliseSerial(bad), undefined);
    }
    assert.equal(v.role(undefined), 'user');
    assert.equal(validateLabel(undefined), undefined);
  });

  test('a huge value is refused with a short message, not echoed back', () => {
    const huge = 'a'.repeat(15_000);
    for (const f of [() => v.tenantCode(huge), () => v.loginId(huge), () => v.institutionNumber(huge), () => v.email(huge + '@x.jp')]) {
      assert.throws(f, (e: unknown) => e instanceof Refusal && e.message.length < 400);
    }
    assert.equal(normaliseSerial('0'.repeat(200) + '1'), undefined);
  });
});

describe('names carry no control, format (bidi, zero-width) or separator characters', () => {
  const sneaky = {
    'U+202E right-to-left override': '山田\u202Eクリニック',
    'U+200B zero-width space': '山田\u200Bクリニック',
    'U+0085 next line': '山田\u0085クリニック',
    'U+2028 line separator': '山田\u2028クリニック',
    'U+2029 paragraph separator': '山田\u2029クリニック',
    'U+FEFF byte order mark': '山田\uFEFFクリニック',
    'U+0000 NUL': '山田\u0000',
    'lone surrogate': '山田\uD800',
  };
  for (const [what, name] of Object.entries(sneaky)) {
    test(`${what} is refused in tenant and institution names, labels and e-mail`, () => {
      assert.throws(() => v.displayName('name', name), refused('name', /U\+[0-9A-F]{4}/));
      assert.throws(() => validateLabel(name), refused('label', /U\+[0-9A-F]{4}/));
      assert.throws(() => v.email(`a${name}@example.jp`), refused('email'));
    });
  }

  test('names are NFC-normalised, so a decomposed paste is the same name and the same length', () => {
    const nfd = 'ｸﾘﾆｯｸ・ガギグ'.normalize('NFD');
    assert.equal(v.displayName('name', nfd), 'ｸﾘﾆｯｸ・ガギグ'.normalize('NFC'));
    assert.equal(validateLabel('受付\u0301'), '受付\u0301'.normalize('NFC'));
    // 64 NFC characters whose NFD form is 128 code points: accepted.
    assert.equal([...v.displayName('name', 'ガ'.repeat(64).normalize('NFD'))].length, 64);
    assert.throws(() => validateLabel('ラ'.repeat(65)), refused('label', /64/));
  });

  test('the subject refuses such a name; the friendlyName of a tenant named before the rule drops them', () => {
    assert.throws(() => buildSubject({ tenantCode: 'T0001', tenantName: '山田\u202Eクリニック' }), refused('name'));
    const fn = friendlyName('山田\u202Eクリ\u200Bニック\u2028', new Date('2030-01-01T00:00:00Z'));
    assert.equal(fn, '山田クリニック 有効期限 2030-01-01');
  });
});
