import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyPool } from '../../src/ca/key-pool.js';
import { exportPkcs8, generateKeyPair } from '../../src/ca/keys.js';

const der = async (pair: CryptoKeyPair) => Buffer.from(await exportPkcs8(pair.privateKey)).toString('base64');

test('the pool fills while idle, hands each key out once, then makes fresh ones', async () => {
  const pool = keyPool({ rsa2048: 3 });
  await pool.idle();
  assert.equal(pool.ready('rsa2048'), 3);
  const taken = await Promise.all([1, 2, 3, 4, 5].map(() => pool.take('rsa2048')));
  const keys = await Promise.all(taken.map(der));
  assert.equal(new Set(keys).size, 5, 'no key is handed out twice');
  await pool.idle();
  assert.equal(pool.ready('rsa2048'), 3, 'refilled once the work was done');
  pool.close();
  assert.equal(pool.ready('rsa2048'), 0, 'close drops the keys');
});

test('no refill runs while a mint is in progress; a type without a pool is generated on demand', async () => {
  let made = 0;
  const pool = keyPool({ rsa2048: 2 }, async (type) => (made++, generateKeyPair(type)));
  await pool.idle();
  assert.equal(made, 2);
  let release!: () => void;
  const work = pool.during(async () => {
    await pool.take('rsa2048');
    await new Promise<void>((r) => (release = r));
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(made, 2, 'nothing was generated while the mint was running');
  assert.equal(pool.ready('rsa2048'), 1);
  release();
  await work;
  await new Promise((r) => setImmediate(r));
  await pool.idle();
  assert.equal(pool.ready('rsa2048'), 2);
  const p256 = await pool.take('p256');
  assert.equal(p256.privateKey.algorithm.name, 'ECDSA');
  pool.close();
});

test('a generator that blocks its thread (a mint worker making RSA keys) still lets a mint in between two keys', async () => {
  // The mint worker generates RSA keys synchronously on its own thread (keys.ts). Such a generator
  // resolves at once; the refill must still give the event loop a turn before each key, or it
  // would make every missing key before a mint request waiting in the queue was even read.
  const pair = await generateKeyPair('p256');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let made = 0;
  const pool = keyPool({ p256: 5 }, async () => {
    Atomics.wait(nap, 0, 0, 20); // 20 ms of a blocked thread, like an RSA key being made
    made++;
    return pair;
  });
  await new Promise((r) => setTimeout(r, 0));
  const madeWhenTheMintArrived = made;
  await pool.during(() => pool.take('p256'));
  assert.ok(madeWhenTheMintArrived < 5, `the refill made ${madeWhenTheMintArrived} of 5 keys before the mint got a turn`);
  pool.close();
  await pool.idle();
});

test('a key that cannot be made ahead leaves the pool empty, not the worker dead; a mint still gets its own', async () => {
  // An unhandled rejection from the refill ended the mint worker (Node's default), and with it
  // every mint it held.
  let attempts = 0;
  const pool = keyPool({ p256: 3 }, generateKeyPair, async () => {
    attempts++;
    throw new Error('no entropy today');
  });
  await new Promise((r) => setTimeout(r, 20));
  await pool.idle();
  assert.equal(pool.ready('p256'), 0);
  assert.equal(attempts, 1, 'no retry loop after a failure');
  const pair = await pool.during(() => pool.take('p256'));
  assert.equal(pair.privateKey.algorithm.name, 'ECDSA', 'the mint made its own key');
  await new Promise((r) => setTimeout(r, 20));
  await pool.idle();
  assert.equal(attempts, 2, 'the next refill came after the mint, once');
  pool.close();
});
