import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { writeDeliverySheets, type Sheet } from '../../src/onboarding/delivery-sheets.js';
import { tempDir } from '../helpers/tmp.js';
import { turnCounter } from '../helpers/turns.js';

test('laying out the delivery sheets gives the event loop a turn after every sheet', async () => {
  // The console's onboarding job writes the PDF inside `kenshin serve`, and pdfkit lays out
  // synchronously (≈ 3 ms a sheet): a turn every 25 sheets held every other request of the process
  // up to 160 ms. Each sheet records the turn it was laid out in (its name is read while it is):
  // no two sheets may share one.
  const turns = turnCounter();
  const turnsOf: Set<number>[] = [];
  const sheets: Sheet[] = Array.from({ length: 30 }, (_, i) => {
    const seen = new Set<number>();
    turnsOf.push(seen);
    return {
      tenantCode: `T${String(i).padStart(4, '0')}`,
      get tenantName() {
        seen.add(turns.count);
        return '山田クリニック';
      },
      institutionNumber: String(1310000000 + i),
      institutionName: '山田健診センター',
      label: undefined,
      serial: `0A1B2C${i}`,
      notAfter: new Date(),
      p12File: `T${i}.p12`,
      password: 'ABCD-EFGH-IJKL-MNOP',
      users: [],
    };
  });
  const file = path.join(tempDir(), 'sheets.pdf');
  try {
    assert.equal((await writeDeliverySheets(file, sheets, { portalUrl: 'https://kenshin.example.jp/', operatorContact: undefined })).pages, 60);
  } finally {
    turns.stop();
  }
  assert.ok(fs.statSync(file).size > 0);
  for (const [i, seen] of turnsOf.entries()) assert.equal(seen.size, 1, `sheet ${i} was laid out in one turn`);
  const laidOutIn = turnsOf.map((s) => [...s][0]!);
  assert.equal(new Set(laidOutIn).size, sheets.length, `sheets shared turns: ${laidOutIn.join(' ')}`);
});
