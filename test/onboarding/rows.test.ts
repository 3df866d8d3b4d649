import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCsv, readRows } from '../../src/onboarding/rows.js';

const HEADER = 'tenant_code,tenant_name,contact_email,institution_number,institution_name,users,label';

test('a row that disagrees with an earlier one is reported and left out, so --continue-on-error never issues it', () => {
  const { rows, errors } = readRows('x.csv', [
    HEADER,
    'T1,医院A,a@example.jp,1300000001,健診所1,a:admin,',
    'T1,医院A,other@example.jp,1300000002,健診所2,a:admin,', // another contact for T1
    'T1,医院Aダッシュ,a@example.jp,1300000003,健診所3,a:admin,', // another name for T1
    'T2,医院B,,1300000001,健診所1,b:user,', // T1's 機関番号
    'T1,医院A,,1300000004,健診所4,a:user,', // a is admin on line 2
    'T1,医院A,,1300000005,健診所5,b:user,',
  ].join('\n'));
  assert.deepEqual(rows.map((r) => r.line), [2, 7]);
  assert.deepEqual(errors.map((e) => [e.line, e.name]), [[3, 'contact_email'], [4, 'tenant_name'], [5, 'institution_number'], [6, 'users']]);
});

test('CSV bytes: UTF-8 with or without BOM, Shift_JIS from Excel, anything else refused', () => {
  assert.deepEqual(decodeCsv(Buffer.from('\ufeff健診')), { text: '健診' });
  assert.deepEqual(decodeCsv(Buffer.from([0x8c, 0x92, 0x90, 0x66])), { text: '健診' });
  assert.ok('error' in decodeCsv(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x80])));
});
