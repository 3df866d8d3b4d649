import { randomBytes } from 'node:crypto';

/**
 * A 128-bit random serial number, as lowercase hex without leading zeros.
 * 128 bits makes collisions negligible (the database still enforces uniqueness) and is
 * twice the 64 bits the CA/Browser Forum asks for. A high top bit is fine: the DER encoder
 * prefixes a zero byte so the INTEGER stays positive (17 octets, within RFC 5280's 20).
 */
export function randomSerial(): string {
  let bytes = randomBytes(16);
  // An all-zero leading byte would shorten the serial; redraw rather than bias the value space.
  while (bytes[0] === 0) bytes = randomBytes(16);
  return bytes.toString('hex');
}

/**
 * Normalises user input (colons, case, leading zeros) to the stored form; anything that is not one
 * string of a plausible length (a repeated form field is an array) is simply not a serial.
 */
export function normaliseSerial(input: unknown): string | undefined {
  // 40 hex digits with a separator between every pair and some padding: nothing longer is a serial.
  if (typeof input !== 'string' || input.length > 128) return undefined;
  const hex = input.replace(/[:\s]/g, '').toLowerCase().replace(/^0+/, '');
  return /^[0-9a-f]{1,40}$/.test(hex) ? hex : undefined;
}

/**
 * A serial as browsers and operating systems show it, so a clinic can find the entry in its own
 * certificate list: the DER INTEGER's bytes, upper case, separated by colons — Firefox's certificate
 * manager and Chromium's viewer show exactly this ("0A:1B:…"; "00:C3:…" when the top bit is set,
 * because DER then prefixes a zero byte to keep the number positive). The stored form drops leading
 * zeros, so 31 hex digits become "0A:…" again here.
 */
export function displaySerial(stored: string): string {
  let hex = stored.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+/, '');
  if (hex.length % 2) hex = `0${hex}`;
  if (hex === '') hex = '00';
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  return hex.toUpperCase().match(/../g)!.join(':');
}
