#!/usr/bin/env node
// The resident scan (issue 12): what a long-running pinleak pays per periodic scan, with
// its modules loaded, its iterators verified and its database open. Until `pinleak watch`
// exists this process stands in for it: it calls takeSnapshot + saveSnapshot --scans
// times into DB and prints, as JSON on stdout, the figures of every scan after the first.
//
//   node scripts/bench-resident.mjs --db DB [--scans 3]
import fs from 'node:fs';

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
const dist = new URL('../dist/', import.meta.url);
const { takeSnapshot } = await import(new URL('app/snapshot.js', dist).href);
const { openStore } = await import(new URL('store/db.js', dist).href);
const { saveSnapshot } = await import(new URL('store/save.js', dist).href);
const { loadConfig } = await import(new URL('analysis/config.js', dist).href);

const store = openStore(db);
const config = loadConfig(undefined);
const runs = [];
try {
  for (let i = 0; i < scans; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const { doc, scan, objects } = await takeSnapshot({ store, config });
    const t1 = performance.now();
    saveSnapshot(store, doc, objects);
    const t2 = performance.now();
    const c = process.cpuUsage(c0);
    runs.push({
      scanMs: t1 - t0, storeMs: t2 - t1, wallMs: t2 - t0, cpuMs: (c.user + c.system) / 1000,
      pins: doc.pins.length, timings: scan.timings,
    });
  }
} finally {
  store.close();
}
fs.writeSync(1, JSON.stringify({ first: runs[0], warm: runs.slice(1), rssMB: process.resourceUsage().maxRSS / 1024 }) + '\n');
