// How fast the database grows: builds the benchmark's large host (scripts/bench-world.mjs),
// stores --snapshots scans of it into a fresh database and reports the file size after
// each (WAL checkpointed first, so the main file holds everything). The per-snapshot
// figure in docs/fleet.md comes from here.
//
//   node scripts/bench-db.mjs [--pins 10000] [--instances 50] [--procs 1000] [--snapshots 10]
//
// Needs root and a built dist/. The world is torn down at the end, on failure and on signals.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { buildWorld, teardownAll } from './bench-world.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const CLI = fileURLToPath(new URL('../dist/pinleak.mjs', import.meta.url));

const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const pins = opt('pins', 10_000);
const instances = opt('instances', 50);
const procs = opt('procs', 1000);
const snapshots = opt('snapshots', 10);

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { teardownAll(); process.exit(130); });

const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-dbgrowth-'));
const db = path.join(dbDir, 'pinleak.db');
const sizeAfterCheckpoint = () => {
  const d = new Database(db);
  d.pragma('wal_checkpoint(TRUNCATE)');
  d.close();
  return fs.statSync(db).size;
};
let world;
try {
  world = await buildWorld({ pins, instances, procs, log: (m) => process.stderr.write(`${m}\n`) });
  const sizes = [];
  for (let i = 0; i < snapshots; i++) {
    execFileSync(process.execPath, [CLI, '--db', db, 'scan', '--quiet'], { stdio: 'inherit' });
    sizes.push(sizeAfterCheckpoint());
  }
  const stored = JSON.parse(execFileSync(process.execPath, [CLI, '--db', db, 'snapshots', '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 }));
  const hostPins = stored.snapshots.at(-1).pins;
  const perSnapshot = (sizes.at(-1) - sizes[0]) / Math.max(1, snapshots - 1);
  console.log(JSON.stringify({
    pinsOnHost: hostPins, snapshots, firstSnapshotBytes: sizes[0], bytesPerLaterSnapshot: Math.round(perSnapshot),
    bytesPerPinPerSnapshot: Math.round((perSnapshot / hostPins) * 10) / 10, sizes,
  }, null, 2));
} finally {
  teardownAll();
  fs.rmSync(dbDir, { recursive: true, force: true });
}
