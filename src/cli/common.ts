// What every command shares: global options, the database, the config file, privileges,
// progress on stderr, and output (JSON on stdout stays clean).
import { effectiveCapabilities } from '../kernel/procfs.js';
import { Capability } from '../kernel/abi.js';
import { PinleakError } from '../errors.js';
import { openStore, resolveSnapshot, loadSnapshot, type Store } from '../store/index.js';
import { loadConfig, parseDuration, type Config } from '../analysis/config.js';
import { pinText, type SnapshotDoc } from '../model.js';
import { styleFor, type Style } from '../report/format.js';
import type { Progress } from '../scan/host.js';
import fs from 'node:fs';
import { partialBanner, partialReasonsOf, snapshotRef } from '../report/text.js';
import type { SnapshotMeta } from '../model.js';

export const DEFAULT_DB = '/var/lib/pinleak/pinleak.db';

export interface GlobalArgs {
  db?: string;
  json: boolean;
  config?: string;
  quiet: boolean;
  debug: boolean;
}

export const globalOptions = {
  db: { type: 'string', describe: `database file (env PINLEAK_DB, default ${DEFAULT_DB})` },
  json: { type: 'boolean', default: false, describe: 'machine output on stdout (schemaVersion 1; the documents: docs/json.md, their JSON Schemas: docs/schema/)' },
  config: { type: 'string', describe: 'config file (default /etc/pinleak/config.json when present)' },
  quiet: { type: 'boolean', default: false, describe: 'no progress, and no summary from scan, gate, run, clean, prune and export --output (errors still print)' },
  debug: { type: 'boolean', default: false, describe: 'stack traces with errors; scan also prints its phase timings' },
} as const;

export function dbPath(a: GlobalArgs): string {
  return a.db ?? process.env.PINLEAK_DB ?? DEFAULT_DB;
}

/**
 * read: never writes (pins, leaks, mounts, snapshots, diff, export, history for --no-store);
 * write: an existing database (clean, prune); create: made when missing (scan, gate, run).
 */
export function openDb(a: GlobalArgs, access: 'read' | 'write' | 'create'): Store {
  return openStore(dbPath(a), { access: access === 'read' ? 'read' : 'write', create: access === 'create' });
}

export function userConfig(a: GlobalArgs): Config {
  return loadConfig(a.config);
}

const CAPS: [number, string][] = [[Capability.SYS_ADMIN, 'CAP_SYS_ADMIN'], [Capability.BPF, 'CAP_BPF'], [Capability.SYS_PTRACE, 'CAP_SYS_PTRACE']];

/** Scanning reads every process and opens every pin: root or these capabilities. */
export function requirePrivileges(what: string): void {
  const eff = effectiveCapabilities();
  const missing = CAPS.filter(([bit]) => !(eff & (1n << BigInt(bit)))).map(([, n]) => n);
  if (missing.length) {
    throw new PinleakError(`${what} needs root: missing ${missing.join(', ')} (run it with sudo, or grant these capabilities)`);
  }
}

/** Progress on stderr, only when stderr is a terminal and never with --quiet (stdout stays clean for --json). */
export function progressReporter(a: GlobalArgs): Progress | undefined {
  if (a.quiet || !process.stderr.isTTY) return undefined;
  let last = 0;
  return (phase, done, total) => {
    const now = Date.now();
    if (now - last < 80 && done !== total) return;
    last = now;
    const n = done !== undefined && total ? ` ${done}/${total}` : '';
    process.stderr.write(`\r\x1b[2Kscanning: ${phase}${n}`);
  };
}

export function endProgress(a: GlobalArgs): void {
  if (!a.quiet && process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
}

/** `--timings`: the time of each phase of a scan, one line on stderr (the bench reads it). */
export function printTimings(timings: Record<string, number>): void {
  process.stderr.write(`timings (ms): ${Object.entries(timings).map(([k, v]) => `${k} ${Math.round(v * 10) / 10}`).join(', ')}\n`);
}

/** Indented for a person at a terminal; compact for a pipe or file (a 10,000-pin document is megabytes). */
export function emitJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, process.stdout.isTTY ? 2 : undefined) + '\n');
}

/**
 * A snapshot document, as emitJson writes it. Compact, its pins are the texts the store
 * took for its digests (pinText), copied into one reused buffer rather than joined into
 * one more copy of them all (10,000 pins: 8 MB, as a string and again as bytes).
 */
export function emitSnapshot(doc: SnapshotDoc): void {
  if (process.stdout.isTTY) return emitJson(doc);
  const out = bufferedWriter(process.stdout);
  let first = true;
  for (const [k, v] of Object.entries(doc)) {
    if (v === undefined) continue;
    out.put(`${first ? '{' : ','}${JSON.stringify(k)}:`);
    first = false;
    if (k !== 'pins') {
      out.put(JSON.stringify(v));
      continue;
    }
    out.put('[');
    doc.pins.forEach((p, i) => out.put(i ? `,${pinText(p)}` : pinText(p)));
    out.put(']');
  }
  out.put(first ? '{}\n' : '}\n');
  out.flush();
}

/** Text into a buffer, written out when full; a new buffer only while the stream still holds the last (a socket). */
function bufferedWriter(stream: NodeJS.WritableStream & { writableLength: number }): { put(s: string): void; flush(): void } {
  const SIZE = 1 << 20;
  let buf = Buffer.allocUnsafe(SIZE);
  let n = 0;
  const flush = () => {
    if (n === 0) return;
    stream.write(buf.subarray(0, n));
    // a file or a pipe took it already (written synchronously on Linux); else it is the stream's now
    if (stream.writableLength > 0) buf = Buffer.allocUnsafe(SIZE);
    n = 0;
  };
  return {
    put(s: string) {
      // at most 3 bytes of UTF-8 per UTF-16 unit
      if (n + s.length * 3 > SIZE) flush();
      if (s.length * 3 > SIZE) stream.write(s);
      else n += buf.write(s, n);
    },
    flush,
  };
}

/** Human text: stdout normally; with --json it would pollute the document, so stderr (unless --quiet). */
export function say(a: GlobalArgs, text: string): void {
  if (a.json) {
    if (!a.quiet) process.stderr.write(text + '\n');
  } else {
    process.stdout.write(text + '\n');
  }
}

/** The human summary of a command that acts (scan, gate, run, clean, prune): --quiet silences it. */
export function summary(a: GlobalArgs, text: string): void {
  if (!a.quiet) say(a, text);
}

export function outStyle(a: GlobalArgs): Style {
  return styleFor(a.json ? process.stderr : process.stdout);
}

/** SNAPSHOT argument (id, label, latest, latest~N) -> stored document. */
export function loadStored(store: Store, spec: string | undefined): SnapshotDoc {
  return loadSnapshot(store, resolveSnapshot(store, spec ?? 'latest'));
}

// Option values yargs checks and converts (coerce) before a handler runs: a bad one is a
// usage error, one line, and the handler gets the value it needs (a list, milliseconds).

/** A comma-separated list of some of `allowed`; `accepted`: what this command takes, when fewer (the message names only those). */
export const listOf = <T extends string>(allowed: readonly T[], flag: string, accepted: readonly T[] = allowed) => (value: string): T[] => {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i as T)) throw new PinleakError(`--${flag} ${i}: must be one of ${accepted.join(', ')}`);
  }
  return items as T[];
};

/** A duration (90s, 15m, 12h, 7d, 2w), in milliseconds. */
export const durationOption = (value: string): number => parseDuration(value);

/** --instance names a bpffs instance by its superblock MAJ:MIN. */
export const instanceOption = (dev: string): string => {
  if (!/^\d+:\d+$/.test(dev)) {
    throw new PinleakError(`--instance ${dev}: name an instance by its MAJ:MIN, as \`pinleak mounts\` lists them (e.g. 0:39)`);
  }
  return dev;
};

/** --output FILE: a file name, not an empty string. */
export const outputOption = (file: string): string => {
  if (file.trim() === '') throw new PinleakError('--output needs a file name');
  return file;
};

/** Runs a scan with the progress line on, and clears the line however the scan ends. */
export async function withProgress<T>(a: GlobalArgs, scan: (onProgress: Progress | undefined) => Promise<T>): Promise<T> {
  try {
    return await scan(progressReporter(a));
  } finally {
    endProgress(a);
  }
}

/** A whole number option, from the text the user typed (yargs would have turned `abc` into NaN). */
export function wholeNumber(flag: string, min: number): (raw: unknown) => number | undefined {
  return (raw) => {
    if (raw === undefined) return undefined;
    const text = String(Array.isArray(raw) ? raw.at(-1) : raw);
    const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new PinleakError(`--${flag} ${text}: must be a whole number >= ${min}`);
    return n;
  };
}

// A store opened only to read history (scan --no-store): absent is fine, broken is an error.

export function openHistory(a: GlobalArgs): Store | null {
  return fs.existsSync(dbPath(a)) ? openDb(a, 'read') : null;
}

// What commands do with a partial snapshot (one that could not see the whole host): say
// so first, and never judge or act on it.

/** The banner at the top of a command's text (on stderr with --json); with --quiet, one warning line. */
export function announcePartial(a: GlobalArgs, m: SnapshotMeta): void {
  const banner = partialBanner(m, outStyle(a));
  if (!banner) return;
  if (a.quiet) process.stderr.write(`pinleak: warning: ${snapshotRef(m)} is partial: ${partialReasonsOf(m).join('; ')}\n`);
  else say(a, banner);
}

/** A PinleakError (exit 2) when `m` is partial: `what` says what is not done, e.g. "--fail-on-leak does not judge it". */
export function refusePartial(m: SnapshotMeta, what: string): void {
  const why = partialReasonsOf(m);
  if (why.length) throw new PinleakError(`${snapshotRef(m)} could not see the whole host: ${why.join('; ')}; ${what}`);
}
