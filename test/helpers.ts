// Running the built CLI the way users do, and reading its JSON back.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import type { SnapshotDoc } from '../src/model.js';

// the shipped command: the bundle that package.json's bin names
export const CLI = fileURLToPath(new URL('../dist/pinleak.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function pinleak(args: string[], opts: SpawnSyncOptions & { db?: string } = {}): CliResult {
  const full = opts.db ? ['--db', opts.db, ...args] : args;
  // a busy host's snapshot document can be tens of megabytes
  const r = spawnSync(process.execPath, [CLI, ...full], { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 30, ...opts, env: { ...process.env, NO_COLOR: '1', ...opts.env } });
  return { code: r.status ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

export interface Started<C extends ChildProcess = ChildProcess> {
  child: C;
  /** how it ended; made at spawn, so a child that ends before anyone waits is still seen */
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * spawn() with the child's end as a promise made at once. Listening for 'exit' only when
 * about to wait misses a child that has already gone, and the test hangs.
 */
export function start(command: string, args: string[], opts: SpawnOptions = {}): Started {
  const child = spawn(command, args, opts);
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', reject); // it could not be started
  });
  ended.catch(() => { /* seen by whoever awaits it */ });
  return { child, ended };
}

/** Runs a command that must succeed with --json and parses stdout. */
export function pinleakJson<T = SnapshotDoc>(args: string[], opts: SpawnSyncOptions & { db?: string } = {}, expectCode = 0): T {
  const r = pinleak([...args, '--json'], opts);
  if (r.code !== expectCode) throw new Error(`pinleak ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function tempDb(): { db: string; dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-db-'));
  return { db: path.join(dir, 'pinleak.db'), dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** bpftool as an independent witness (tests only; pinleak never runs it). */
export function bpftool(args: string[]): unknown {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8', maxBuffer: 1 << 30 }); // a busy host lists megabytes
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('bpftool is missing: run the tests with `bash .ci/run` (it installs bpftool)');
  }
  if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Whether bpftool lists a program and a link with these ids (both gone: the kernel frees them after an RCU grace period). */
export function bpftoolSees(progId: number, linkId: number): { prog: boolean; link: boolean } {
  return {
    prog: (bpftool(['prog', 'show']) as { id: number }[]).some((x) => x.id === progId),
    link: (bpftool(['link', 'show']) as { id: number }[]).some((x) => x.id === linkId),
  };
}

/** Polls `check` every 50 ms until it returns true or `ms` have passed; the last result. */
export async function eventually(check: () => boolean, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The command name (/proc/<pid>/comm) of a process running this Node.js: `node`, but Node.js
 * 24 names its main thread `MainThread`, and the main thread's name is the process's comm.
 */
export const NODE_COMM = spawnSync(process.execPath, ['-e', "process.stdout.write(require('fs').readFileSync('/proc/self/comm', 'utf8').trim())"], { encoding: 'utf8' }).stdout;

/** The checkout these tests run from. */
export const REPO = fileURLToPath(new URL('../', import.meta.url));

/** A scratch directory for a test file, removed after it; read `.dir` inside tests. */
export function scratchForFile(prefix: string): { dir: string } {
  const scratch = { dir: '' };
  beforeAll(() => {
    scratch.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => fs.rmSync(scratch.dir, { recursive: true, force: true }));
  return scratch;
}
