// The commands that manage stored history, from the command line: prune, the retention a
// stored scan applies, their bad durations, a reader that stops early (EPIPE), and a
// baseline file written by another schema.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, pinleak, pinleakJson, start, tempDb } from '../helpers.js';
import { openStore, saveSnapshot } from '../../src/store/index.js';
import { classifyPins } from '../../src/analysis/classify.js';
import { ctx, doc, facts, map } from '../unit/fixtures.js';

let tmp: ReturnType<typeof tempDb>;
beforeEach(() => {
  tmp = tempDb();
});
afterEach(() => tmp.remove());

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const HOUR = 3600_000;

/** Stores one snapshot per `takenAt` (of `pins` classified fixture pins each); returns their ids. */
function storeSnapshots(takenAt: string[], pins = 3): number[] {
  const store = openStore(tmp.db, { access: 'write', create: true });
  try {
    const classified = classifyPins(Array.from({ length: pins }, (_, i) => facts(`/app/m${i}`, map(100 + i))), ctx());
    return takenAt.map((t) => saveSnapshot(store, doc(classified, { id: null, takenAt: t })));
  } finally {
    store.close();
  }
}

const storedIds = () => pinleakJson<{ snapshots: { id: number; label: string | null }[] }>(['snapshots'], { db: tmp.db }).snapshots;

function expectOneLineError(r: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(/^pinleak: /);
  expect(r.stderr).toMatch(pattern);
}

describe('prune', () => {
  it('drops by count and by age, never the latest, and says what it freed', () => {
    const now = Date.now();
    const ids = storeSnapshots([3, 2, 1, 0].map((h) => new Date(now - h * 24 * HOUR).toISOString()));
    const byAge = pinleakJson<{ removed: number; bytesBefore: number; bytesAfter: number }>(['prune', '--older-than', '36h'], { db: tmp.db });
    expect(byAge.removed).toBe(2); // 3 and 2 days old
    expect(storedIds().map((s) => s.id)).toEqual(ids.slice(2));
    expect(byAge.bytesBefore).toBeGreaterThan(0);
    const byCount = pinleak(['prune', '--keep', '0'], { db: tmp.db });
    expect(byCount.code, byCount.stderr).toBe(0);
    expect(byCount.stdout).toMatch(/^removed 1 snapshot; .* went from /);
    expect(storedIds().map((s) => s.id)).toEqual([ids[3]]); // the latest always stays
  });

  it('refuses a missing or bad limit before touching the database', () => {
    storeSnapshots([new Date().toISOString()]);
    const before = sha(tmp.db);
    expectOneLineError(pinleak(['prune'], { db: tmp.db }), /prune needs --keep N or --older-than DUR/);
    expectOneLineError(pinleak(['prune', '--older-than', '3 days'], { db: tmp.db }), /bad duration "3 days"/);
    expectOneLineError(pinleak(['prune', '--older-than', '2y'], { db: tmp.db }), /bad duration "2y"/);
    expectOneLineError(pinleak(['prune', '--keep', '1.5'], { db: tmp.db }), /--keep 1\.5: must be a whole number >= 0/);
    expect(sha(tmp.db)).toBe(before);
  });
});

describe('bad durations elsewhere', () => {
  it('clean --older-than and report --since say which value is wrong, before anything runs', () => {
    expectOneLineError(pinleak(['clean', '--older-than', 'soon'], { db: tmp.db }), /bad duration "soon"/);
    expectOneLineError(pinleak(['report', '--since', '7 days'], { db: tmp.db }), /bad duration "7 days"/);
    expect(fs.existsSync(tmp.db)).toBe(false);
  });
});

describe('retention', () => {
  it('a stored scan applies the config retention: the oldest go, the new scan stays', () => {
    const ids = storeSnapshots([3, 2, 1].map((h) => new Date(Date.now() - h * HOUR).toISOString()));
    const cfg = path.join(tmp.dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ retention: { keep: 2 } }));
    const r = pinleak(['scan', '--quiet', '--label', 'retained', '--config', cfg], { db: tmp.db });
    expect(r.code === 0 || r.code === 1, r.stderr).toBe(true); // 1: the host has leaks of its own
    const left = storedIds();
    expect(left.map((s) => s.id)).toEqual([ids[2], ids[2]! + 1]);
    expect(left[1]!.label).toBe('retained');
  });
});

describe('a reader that stops early', () => {
  it('pins --json | head: pinleak ends quietly with exit 0 (EPIPE is no error)', async () => {
    storeSnapshots([new Date().toISOString()], 5_000); // megabytes of JSON: far more than a pipe holds
    const { child, ended } = start(process.execPath, [CLI, '--db', tmp.db, 'pins', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    child.stdout!.destroy(); // what head does after its lines
    expect((await ended).code).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('baseline files', () => {
  it('a scan --json document of another schemaVersion is refused, naming both versions', () => {
    storeSnapshots([new Date().toISOString()]);
    const file = path.join(tmp.dir, 'baseline.json');
    const base = pinleakJson<Record<string, unknown>>(['pins'], { db: tmp.db });
    fs.writeFileSync(file, JSON.stringify({ ...base, schemaVersion: 2 }));
    expectOneLineError(pinleak(['diff', file, 'latest'], { db: tmp.db }), /baseline .*baseline\.json has schemaVersion 2, this pinleak reads 1/);
    fs.writeFileSync(file, JSON.stringify({ ...base, schemaVersion: 1 }));
    expect(pinleak(['diff', file, 'latest'], { db: tmp.db }).code).toBe(0);
  });
});
