#!/usr/bin/env node
// The resident scan (issue 12): what `pinleak watch` pays per periodic scan, with its
// modules loaded, its iterators verified, its database open and its pin recorder attached.
// Runs `pinleak watch --db DB --scan-every 1s --timings` until it has printed --scans
// timing lines, ends it with SIGTERM (by pid), and prints, as JSON on stdout, the figures
// of every scan after the first, as watch itself measured them.
//
//   node scripts/bench-resident.mjs --db DB [--scans 3]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const db = opt('--db');
const scans = Number(opt('--scans', '3'));
if (!db || !Number.isInteger(scans) || scans < 2) {
  process.stderr.write('usage: node scripts/bench-resident.mjs --db DB [--scans N>=2]\n');
  process.exit(2);
}
const CLI = fileURLToPath(new URL('../dist/pinleak.mjs', import.meta.url));

/** "timings (ms): counts 40.6, processes 54.7, ..." -> { counts: 40.6, ... } */
function parseTimings(line) {
  const out = {};
  for (const part of line.replace(/^timings \(ms\): /, '').split(', ')) {
    const sp = part.lastIndexOf(' ');
    out[part.slice(0, sp)] = Number(part.slice(sp + 1));
  }
  return out;
}

const child = spawn(process.execPath, [CLI, 'watch', '--db', db, '--scan-every', '1s', '--timings'], { stdio: ['ignore', 'ignore', 'pipe'] });
const runs = [];
let stderr = '';
let peakKiB = 0;
let buffered = '';
const done = new Promise((resolve, reject) => {
  // a watch that hangs must not hang the bench: 60 s per scan is far beyond any figure here
  const limit = setTimeout(() => {
    child.kill('SIGKILL');
    reject(new Error(`watch printed ${runs.length} of ${scans} timing lines in ${60 * scans} s`));
  }, 60_000 * scans);
  child.stderr.on('data', (d) => {
    stderr += d;
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('timings (ms): ')) continue;
      const t = parseTimings(line);
      const { store, total, cpu, ...timings } = t;
      runs.push({ wallMs: total, scanMs: total - store, storeMs: store, cpuMs: cpu, timings: { ...timings, store } });
      // the peak so far, read while it runs (VmHWM: the kernel's high-water mark of its RSS)
      const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
      if (runs.length === scans) child.kill('SIGTERM');
    }
  });
  child.on('exit', (code, signal) => {
    clearTimeout(limit);
    if (runs.length >= scans && code === 0) resolve();
    else reject(new Error(`watch ended (${code ?? signal}) after ${runs.length} of ${scans} scans: ${stderr.trim().slice(-1000)}`));
  });
});
try {
  await done;
} catch (e) {
  process.stderr.write(`bench-resident: ${e.message}\n`);
  process.exit(1);
}
fs.writeSync(1, JSON.stringify({ first: runs[0], warm: runs.slice(1), rssMB: peakKiB / 1024 }) + '\n');
