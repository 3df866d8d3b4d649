import type { Platform } from './views/steps.js';

/** Which import steps to show first. A hint from the User-Agent, never a decision. */
export function platformOf(userAgent: string | undefined): Platform {
  const ua = userAgent ?? '';
  if (/Firefox\//.test(ua)) return 'firefox';
  if (/Macintosh|Mac OS X/.test(ua)) return 'mac';
  if (/Windows/.test(ua)) return 'windows';
  return 'other';
}
