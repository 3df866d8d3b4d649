#!/usr/bin/env node
// The `kenshin` command. TypeScript sources run through tsx's loader, so there is no build step
// between a change and a running service.
import { register } from 'tsx/esm/api';

register();
// Whatever the umask of the shell or unit that started us (0022 for `npm start`), nothing Kenshin
// creates is readable by others; files meant to be shared (nginx's bundles, the proxy socket) set
// their mode explicitly. src/private-files.ts sets the data directory's modes explicitly as well.
process.umask(0o077);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
// A `serve` process started by the primary (KENSHIN_PROCESSES) has a channel to it that would keep
// this process alive after the command ended, e.g. when it could not start; disconnecting it would
// exit with 0 (node:cluster), and the primary passes on this process's exit code.
if (process.connected) process.exit();
