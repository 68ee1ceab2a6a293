#!/usr/bin/env node
// pinleak <command> [options]: parse, call, render. Errors a user can act on are one
// line on stderr and exit 2; a stack trace only with --debug.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PinleakError } from '../errors.js';
import { packageVersion, schemaDir } from '../package.js';
import { globalOptions, type GlobalArgs } from './common.js';
import { loadConfig } from '../analysis/config.js';
import { scanCommand } from './scan.js';
import { pinsCommand } from './pins.js';
import { mountsCommand } from './mounts.js';
import { snapshotsCommand } from './snapshots.js';
import { leaksCommand } from './leaks.js';
import { diffCommand } from './diff.js';
import { gateCommand } from './gate.js';
import { runCommand } from './run.js';
import { watchCommand } from './watch.js';
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

const COMMANDS = [
  scanCommand, mountsCommand, pinsCommand, objectsCommand, leaksCommand, snapshotsCommand, diffCommand, gateCommand, runCommand,
  watchCommand, cleanCommand, pruneCommand, exportCommand, reportCommand, demoCommand,
];
const COMMAND_NAMES = COMMANDS.map((c) => c.command.split(' ')[0]!);

/** The command word: the first argument that is not an option or a global option's value. */
function commandWord(argv: string[]): { word: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--db' || a === '--config') i++;
    else if (!a.startsWith('-')) return { word: a, rest: argv.slice(i + 1) };
  }
  return { word: undefined, rest: [] };
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** What yargs would only call an "unknown argument": a mistyped command, or run's command without `--`. */
function checkCommandLine(argv: string[]): void {
  const { word, rest } = commandWord(argv);
  if (word === undefined) return;
  if (!COMMAND_NAMES.includes(word)) {
    const best = Math.min(...COMMAND_NAMES.map((n) => distance(word, n)));
    const near = best <= 2 ? COMMAND_NAMES.filter((n) => distance(word, n) === best) : [];
    throw new PinleakError(`unknown command "${word}"${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}: pinleak --help lists the commands`);
  }
  if (word === 'run') {
    const dashes = rest.indexOf('--');
    const before = dashes < 0 ? rest : rest.slice(0, dashes);
    // run's own options: --interval takes a value, the others are flags
    const stray = before.filter((a, i) => !a.startsWith('-') && before[i - 1] !== '--interval' && before[i - 1] !== '--db' && before[i - 1] !== '--config');
    if (stray.length) {
      const cmd = dashes < 0 ? before.slice(before.indexOf(stray[0]!)) : stray;
      throw new PinleakError(`run takes the command after --: pinleak run -- ${cmd.join(' ')}`);
    }
  }
}

/**
 * Every command validates the config file, also those that do not use it, so a broken file
 * never passes silently. A default file this user cannot read is left to the commands that
 * need it (reading snapshots must work for any user who can read the database).
 */
function checkConfig(a: GlobalArgs): void {
  try {
    loadConfig(a.config);
  } catch (e) {
    if (a.config === undefined && e instanceof PinleakError && e.message.endsWith('permission denied')) return;
    throw e;
  }
}

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
    .command(COMMANDS as never)
    .middleware((a) => checkConfig(a as unknown as GlobalArgs))
    .demandCommand(1, 'name a command: pinleak --help lists them')
    .strict()
    .version(packageVersion())
    .help()
    .epilogue(`--json prints schemaVersion 1 documents (docs/json.md); a JSON Schema (draft 2020-12) of each is in ${schemaDir()}`)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // yargs re-wraps what an option's coerce threw (our PinleakError) in its own YError;
      // its own validation comes as a message only, sometimes over several lines
      if (err) throw err.name === 'YError' ? new PinleakError(oneLine(err.message)) : err;
      throw new PinleakError(`${oneLine(msg)} (see pinleak --help)`);
    });
  // yargs renders the command's whole help text right after starting its handler, to show
  // it should the handler fail; ours never shows help on failure (fail() above), and that
  // rendering (string-width's Unicode tables, wrapping every line) cost 25 ms of each scan.
  (cli as unknown as { getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } } })
    .getInternalMethods().getUsageInstance().cacheHelpMessage = () => {};
  try {
    checkCommandLine(argv);
    await cli.parseAsync();
  } catch (err) {
    fail(err, debug);
  }
}

await main(hideBin(process.argv));
// The command is done: leave now instead of through Node's teardown of the heap (~20 ms
// after a 10,000-pin scan). Output to a socket (a child's stdio made by libuv) is written
// asynchronously, so each stream's writes are waited for first.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((done) => s.write('', () => done()))));
process.exit();
