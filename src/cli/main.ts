#!/usr/bin/env node
// pinleak <command> [options]: parse, call, render. Errors a user can act on are one
// line on stderr and exit 2; a stack trace only with --debug.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PinleakError } from '../errors.js';
import { packageVersion } from '../package.js';
import { globalOptions } from './common.js';
import { scanCommand } from './scan.js';
import { pinsCommand } from './pins.js';
import { mountsCommand } from './mounts.js';
import { snapshotsCommand } from './snapshots.js';
import { leaksCommand } from './leaks.js';
import { diffCommand } from './diff.js';
import { gateCommand } from './gate.js';
import { runCommand } from './run.js';
import { cleanCommand } from './clean.js';
import { pruneCommand } from './prune.js';
import { demoCommand } from './demo.js';
import { exportCommand } from './export.js';
import { objectsCommand } from './objects.js';
import { reportCommand } from './report.js';


function fail(err: unknown, debug: boolean): never {
  if (err instanceof PinleakError) {
    process.stderr.write(`pinleak: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(err.exitCode);
  }
  const e = err as Error;
  process.stderr.write(`pinleak: internal error: ${e?.message ?? String(err)}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug && e?.stack) process.stderr.write(e.stack + '\n');
  process.exit(2);
}

/** yargs writes some messages over several lines ("Invalid values:\n  Argument: ..."): the contract is one. */
const oneLine = (text: string): string => text.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  // `pinleak leaks | head`: a reader that stops early is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    fail(e, debug);
  });
  const cli = yargs(argv)
    .scriptName('pinleak')
    .usage('$0 <command> [options]\n\nFind BPF objects kept alive only by a bpffs pin, in every mount namespace.')
    .options(globalOptions)
    .command(scanCommand as never)
    .command(mountsCommand as never)
    .command(pinsCommand as never)
    .command(objectsCommand as never)
    .command(leaksCommand as never)
    .command(snapshotsCommand as never)
    .command(diffCommand as never)
    .command(gateCommand as never)
    .command(runCommand as never)
    .command(cleanCommand as never)
    .command(pruneCommand as never)
    .command(exportCommand as never)
    .command(reportCommand as never)
    .command(demoCommand as never)
    .demandCommand(1, 'name a command: pinleak --help lists them')
    .strict()
    .version(packageVersion())
    .help()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // yargs' own errors (its validation, and a coerce function's throw, which it re-wraps
      // as a YError) are usage errors; anything else comes from a handler, as it was thrown
      if (err && err.name !== 'YError') throw err;
      throw new PinleakError(`${oneLine(msg ?? err.message)} (see pinleak --help)`);
    });
  try {
    await cli.parseAsync();
  } catch (err) {
    fail(err, debug);
  }
}

await main(hideBin(process.argv));
