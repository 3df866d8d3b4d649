import type { Config } from '../config.js';

/**
 * The absolute base URL of links Kenshin hands out (the API's package `uri`, which ORCA's desktop
 * clients fetch as given). Never the raw Host header, which the client chooses: KENSHIN_PUBLIC_URL
 * when it is set; otherwise the Host only when it names this server (one of the server
 * certificate's names, KENSHIN_SERVER_NAMES), else the URL guessed from the listener.
 */
export function publicBase(config: Pick<Config, 'publicUrl' | 'publicUrlConfigured' | 'serverNames'>, host: string | undefined): string {
  if (config.publicUrlConfigured) return config.publicUrl.replace(/\/$/, '');
  if (host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)) {
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    if (config.serverNames.some((n) => n.toLowerCase() === name.toLowerCase())) return `https://${host}`;
  }
  return config.publicUrl.replace(/\/$/, '');
}

/** The origins a same-site browser request may carry: this site's public origin and the Host it reached. */
export function isOwnOrigin(config: Pick<Config, 'publicUrl' | 'publicUrlConfigured' | 'serverNames'>, host: string | undefined, origin: string): boolean {
  let o: string;
  try {
    o = new URL(origin).origin;
  } catch {
    return false;
  }
  return o === new URL(config.publicUrl).origin || o === new URL(publicBase(config, host)).origin || (host !== undefined && o === `https://${host}`);
}
