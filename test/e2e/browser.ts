import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/**
 * A real Chromium with its real NSS certificate store, for end-to-end tests of the certificate
 * loop. Everything a user does is real: Chromium's own TLS stack verifies our server certificate
 * against the roots trusted in NSS and presents a client certificate imported with pk12util.
 * Playwright's `clientCertificates` is deliberately not used: it does the client-auth handshake in
 * a Node-side proxy and turns off server-certificate checks (see ../shared/notes/real-browser-mtls.md).
 *
 * The only thing not real is the certificate picker: headless Chromium cannot show it and waits
 * for it forever, so an auto-select rule picks the certificate instead.
 */

// Debian's chromium package; no browser is ever downloaded (`playwright install` is not used).
const CHROMIUM = '/usr/bin/chromium';

const ARGS = [
  '--no-sandbox', // CI runs as root, where the sandbox refuses to start
  '--disable-gpu',
  '--no-first-run',
  // No traffic to outside hosts: the tests must not depend on (or wait for) the network.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The service speaks TCP+TLS only: no QUIC attempts or fallbacks between the browser and it.
  '--disable-quic',
];

// A missing or non-matching auto-select rule makes Chromium wait for a picker that never comes;
// short timeouts turn that hang into a failure that names the step.
const TIMEOUT_MS = 15_000;
const LAUNCH_TIMEOUT_MS = 30_000; // a launch cannot hang on a picker; only a loaded CI box makes it slow
const CLOSE_GRACE_MS = 10_000;

export interface ContextOptions {
  /** Playwright's default (true) when omitted. */
  acceptDownloads?: boolean;
  /** Grants clipboard-read and clipboard-write for the origin: granting only one denies the other. */
  clipboard?: boolean;
}

export interface BrowserWorld {
  /** Per-world HOME; Chromium on Linux always uses $HOME/.pki/nssdb, whatever its user-data-dir. */
  home: string;
  /** Trusts a CA for server certificates (certutil -t "C,,"). */
  trustCa(pemFile: string, nickname: string): void;
  /** pk12util import; throws with pk12util's stderr on failure, e.g. when the password does not fit the file. */
  importP12(file: string, password: string): void;
  /** A new browser context. Chromium keeps its client-certificate choice per context, so a newly
   *  imported certificate is used only by contexts created after the import (or after restart()). */
  newContext(opts?: ContextOptions): Promise<BrowserContext>;
  /** Closes and relaunches Chromium with the same HOME and profile; contexts from before are closed. */
  restart(): Promise<void>;
  /** Kills the browser (forcibly if it does not exit in time) and removes HOME. Idempotent. */
  close(): Promise<void>;
}

export async function startBrowserWorld(opts: { origin: string; issuerCn: string }): Promise<BrowserWorld> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM} (Debian: apt-get install chromium)`);
  const origin = new URL(opts.origin).origin; // the content-settings pattern and permissions need scheme://host:port exactly
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kenshin-e2e-'));
  const home = path.join(root, 'home');
  const userDataDir = path.join(root, 'profile');
  const nssdb = `sql:${path.join(home, '.pki', 'nssdb')}`;
  fs.mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true });
  fs.mkdirSync(path.join(userDataDir, 'Default'), { recursive: true });
  nss('certutil', ['-N', '-d', nssdb, '--empty-password']);

  let persistent: BrowserContext | undefined;
  let pid: number | undefined;
  let closed = false;

  async function launch(): Promise<void> {
    writeAutoSelectRule(userDataDir, origin, opts.issuerCn);
    // A persistent context because the auto-select rule lives in the profile's Preferences (no
    // root, nothing under /etc); contexts made with browser.newContext() inherit it.
    persistent = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      env: { ...process.env, HOME: home },
      timeout: LAUNCH_TIMEOUT_MS,
    });
    pid = browserPid(userDataDir);
  }

  async function shutdown(): Promise<void> {
    const ctx = persistent;
    persistent = undefined;
    if (ctx) {
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
      await Promise.race([ctx.close().catch(() => undefined), gaveUp]);
      clearTimeout(timer);
    }
    // Playwright's close has no timeout of its own; make sure nothing outlives the world.
    if (pid !== undefined) killIfOurs(pid, userDataDir);
    pid = undefined;
  }

  await launch().catch(async (e: unknown) => {
    await shutdown();
    fs.rmSync(root, { recursive: true, force: true });
    throw e;
  });

  return {
    home,
    trustCa(pemFile, nickname) {
      nss('certutil', ['-A', '-d', nssdb, '-t', 'C,,', '-n', nickname, '-i', pemFile]);
    },
    importP12(file, password) {
      nss('pk12util', ['-d', nssdb, '-i', file, '-W', password]);
    },
    async newContext(ctxOpts = {}) {
      const browser = persistent?.browser();
      if (!browser) throw new Error('browser world is closed');
      const ctx = await browser.newContext(ctxOpts.acceptDownloads === undefined ? {} : { acceptDownloads: ctxOpts.acceptDownloads });
      ctx.setDefaultTimeout(TIMEOUT_MS);
      ctx.setDefaultNavigationTimeout(TIMEOUT_MS);
      if (ctxOpts.clipboard) await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      return ctx;
    },
    async restart() {
      if (closed) throw new Error('browser world is closed');
      await shutdown();
      await launch();
    },
    async close() {
      if (closed) return;
      closed = true;
      await shutdown();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * The "auto_select_certificate" content setting, i.e. what the AutoSelectCertificateForUrls policy
 * sets, written into the profile instead of /etc/chromium/policies (which would need root and
 * would apply to every Chromium on the machine). Rewritten before every launch, as a policy would
 * be re-read at every start. The filter is on the issuing CA, as a deployment would configure it.
 */
function writeAutoSelectRule(userDataDir: string, origin: string, issuerCn: string): void {
  const prefs = {
    profile: {
      content_settings: {
        exceptions: {
          auto_select_certificate: { [`${origin},*`]: { setting: { filters: [{ ISSUER: { CN: issuerCn } }] } } },
        },
      },
    },
  };
  fs.writeFileSync(path.join(userDataDir, 'Default', 'Preferences'), JSON.stringify(prefs));
}

export function nss(tool: string, args: string[]): void {
  // No stdin: a tool that wants a password it was not given fails at once instead of waiting on a prompt.
  const r = spawnSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  if (r.error) throw new Error(`${tool}: ${r.error.message} (Debian: apt-get install libnss3-tools)`);
  const shown = args.map((a, i) => (args[i - 1] === '-W' ? '***' : a)); // keep .p12 passwords out of test logs
  if (r.status !== 0) throw new Error(`${tool} ${shown.join(' ')} exited with ${r.status ?? r.signal}: ${(r.stderr + r.stdout).trim()}`);
}

/** Chromium's SingletonLock in the profile is a symlink to "<hostname>-<pid>" of the browser process. */
function browserPid(userDataDir: string): number | undefined {
  try {
    const m = /-(\d+)$/.exec(fs.readlinkSync(path.join(userDataDir, 'SingletonLock')));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILLs the browser's process group, but only if that pid is still our Chromium (same profile dir). */
function killIfOurs(pid: number, userDataDir: string): void {
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // already gone
  }
  if (!cmdline.includes(userDataDir)) return;
  try {
    process.kill(-pid, 'SIGKILL'); // Playwright starts Chromium as a process-group leader: this takes its helpers too
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}
