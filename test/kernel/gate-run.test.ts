// The CI uses: gate against a baseline, run -- CMD, and baselines from another boot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorld, type World, type Mount } from '../world/world.js';
import { CLI, pinleak, pinleakJson, tempDb } from '../helpers.js';
import type { DiffResult, GateResult } from '../../src/analysis/diff.js';
import type { RunResult } from '../../src/cli/run.js';
import type { SnapshotDoc } from '../../src/model.js';
import { assertMeta, assertPin } from '../contract.js';

const PIN_AND_EXIT = fileURLToPath(new URL('../world/pin-and-exit.mjs', import.meta.url));

let world: World;
let db: ReturnType<typeof tempDb>;
let bpffs: Mount;
let other: Mount;

beforeAll(async () => {
  world = createWorld();
  db = tempDb();
  bpffs = await world.mountBpffs('gate');
  other = await world.mountBpffs('gate2');
});
afterAll(async () => {
  await world.cleanup();
  db.remove();
});

async function leak(m: Mount, rel: string, name = 'gate_leak'): Promise<number> {
  const a = await world.spawnAgent();
  const map = await a.call({ op: 'map', name });
  await a.call({ op: 'pin', fd: map.fd!, path: path.join(m.path, rel) });
  await a.exit();
  return map.id!;
}

describe('gate', () => {
  it('passes with no new leak, fails on one, writes JUnit with one uniquely named case per leak', async () => {
    pinleakJson(['scan', '--label', 'before'], { db: db.db });
    const pass = pinleak(['gate', '--baseline', 'before', '--json'], { db: db.db });
    expect(pass.code, pass.stderr).toBe(0);
    const ok = JSON.parse(pass.stdout) as GateResult;
    expect(ok).toMatchObject({ schemaVersion: 1, passed: true, newLeaks: [], newLeakedBytes: 0, thresholds: { maxNewLeaks: 0, maxLeakedBytes: null } });
    assertMeta(ok.baseline);
    assertMeta(ok.current);
    expect(ok.current.label).toBe('gate');

    const id1 = await leak(bpffs, 'app/x');
    const id2 = await leak(other, 'app/x'); // same path in another instance: the names must still differ
    const junit = path.join(db.dir, 'junit.xml');
    const fail = pinleak(['gate', '--baseline', 'before', '--junit', junit, '--json'], { db: db.db });
    expect(fail.code, fail.stderr).toBe(1);
    const bad = JSON.parse(fail.stdout) as GateResult;
    expect(bad.passed).toBe(false);
    expect(bad.newLeaks.map((p) => p.object!.id).sort()).toEqual([id1, id2].sort());
    bad.newLeaks.forEach((p) => assertPin(p));
    expect(bad.newLeakedBytes).toBe(bad.newLeaks.reduce((n, p) => n + p.object!.memlockBytes, 0));
    const xml = fs.readFileSync(junit, 'utf8');
    const names = [...xml.matchAll(/<testcase classname="pinleak.leak" name="([^"]+)"/g)].map((m) => m[1]);
    expect(names).toHaveLength(2);
    expect(new Set(names).size).toBe(2);
    expect(xml).toMatch(/failures="2"/);

    const loose = pinleak(['gate', '--baseline', 'before', '--max-new-leaks', '2', '--no-store', '--quiet'], { db: db.db });
    expect(loose.code, loose.stderr).toBe(0);
    const bytes = pinleak(['gate', '--baseline', 'before', '--max-leaked-bytes', '1', '--no-store', '--quiet'], { db: db.db });
    expect(bytes.code).toBe(1);
  });

  it('exits 2 on an unknown baseline, before scanning', () => {
    const before = pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length;
    const r = pinleak(['gate', '--baseline', 'no-such-label'], { db: db.db });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^pinleak: unknown snapshot "no-such-label"/);
    expect(pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length).toBe(before);
    const f = pinleak(['gate', '--baseline', path.join(db.dir, 'missing.json')], { db: db.db });
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/missing\.json/);
  });

  it('never passes a partial scan: a pid namespace that hides the host exits 2 unless --allow-partial', () => {
    const inChild = (args: string[]) => spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, CLI, '--db', db.db, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    const r = inChild(['gate', '--baseline', 'before']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^pinleak: this scan \(not stored\) could not see the whole host: .*child pid namespace.*the gate does not judge it/);
    const allowed = inChild(['gate', '--baseline', 'latest', '--allow-partial', '--no-store', '--quiet']);
    expect([0, 1]).toContain(allowed.status);
  });
});

describe('run', () => {
  it('exits 1 with --fail-on-leak when the command left a pin, and names the command as creator', () => {
    const target = path.join(bpffs.path, 'run', 'left');
    // the command holds the map for 500 ms: the 50 ms sampler sees its process holding it
    // --no-record: the sampler, what run falls back to where the kernel refuses the pin recorder
    const r = pinleak(['run', '--no-record', '--fail-on-leak', '--interval', '50', '--json', '--', process.execPath, PIN_AND_EXIT, target, '0', '500'], { db: db.db });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as RunResult; // the command's own stdout went to stderr
    expect(r.stderr).toContain(`pinned ${target}`);
    expect(out).toMatchObject({ schemaVersion: 1, exitCode: 0, command: [process.execPath, PIN_AND_EXIT, target, '0', '500'] });
    expect(out.samples).toBeGreaterThan(0);
    // the sampler also puts down to the command whatever was pinned while it ran (a guess, on
    // a shared host other suites pin then too): this world's instance has only its pin
    const ours = (pins: typeof out.created) => pins.filter((p) => p.instance === bpffs.dev).map((p) => p.path);
    expect(ours(out.created)).toEqual(['/run/left']);
    expect(ours(out.leftBehind)).toEqual(['/run/left']);
    const p = out.leftBehind.find((x) => x.instance === bpffs.dev)!;
    assertPin(p);
    expect(p.status).toBe('leaked');
    expect(p.creator).toMatchObject({ alive: false, source: 'run' });
    expect(p.reasons.join(' ')).toMatch(/recorded by pinleak run has exited/);
    // the record outlives the run: a later scan still knows who made it
    const later = pinleakJson(['scan', '--no-store'], { db: db.db });
    const again = later.pins.find((x) => x.instance === bpffs.dev && x.path === '/run/left')!;
    expect(again.creator).toMatchObject({ pid: p.creator!.pid, source: 'run' });
    expect(again.status).toBe('leaked');
  });

  it('reports a pin made while the command ran but never seen held as weaker evidence, not recorded', () => {
    const target = path.join(bpffs.path, 'run', 'quick');
    // a long interval: the command pins and exits between two samples
    const r = pinleak(['run', '--no-record', '--fail-on-leak', '--interval', '60000', '--json', '--', process.execPath, PIN_AND_EXIT, target, '0'], { db: db.db });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as RunResult;
    const p = out.leftBehind.find((x) => x.path === '/run/quick')!;
    expect(p.creator).toMatchObject({ source: 'run-window', alive: false });
    expect(p.reasons.join(' ')).toMatch(/run by pinleak run while the pin was made, has exited/);
    // not stored as a creator record: a later scan does not claim to know who made it
    const later = pinleakJson(['scan', '--no-store'], { db: db.db });
    const again = later.pins.find((x) => x.instance === bpffs.dev && x.path === '/run/quick')!;
    expect(again.creator).toBeNull();
    expect(again.status).toBe('orphaned');
  });

  it('returns the command\'s own exit code when it failed, and 0 without --fail-on-leak', () => {
    const failed = pinleak(['run', '--quiet', '--', process.execPath, PIN_AND_EXIT, path.join(bpffs.path, 'run', 'failed'), '3'], { db: db.db });
    expect(failed.code).toBe(3);
    const lenient = pinleak(['run', '--', process.execPath, PIN_AND_EXIT, path.join(bpffs.path, 'run', 'lenient'), '0'], { db: db.db });
    expect(lenient.code, lenient.stderr).toBe(0);
    expect(lenient.stdout).toMatch(/left 1 behind/);
    const missing = pinleak(['run', '--', '/nonexistent/cmd'], { db: db.db });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^pinleak: cannot run \/nonexistent\/cmd: command not found/);
    const none = pinleak(['run'], { db: db.db });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/needs a command after --/);
  });
});

describe('baselines from another boot', () => {
  it('are diffed by mount point, path, kind and name, not by stale ids', async () => {
    await leak(bpffs, 'boot/a', 'boot_a');
    const now = pinleakJson(['scan'], { db: db.db });
    // the same host after a reboot: new boot id, new ids, new MAJ:MIN, new namespace inodes
    const old: SnapshotDoc = JSON.parse(JSON.stringify(now));
    old.snapshot.bootId = 'another-boot';
    old.snapshot.id = null;
    const devMap = new Map(old.instances.map((i, n) => [i.dev, `0:${900 + n}`]));
    for (const i of old.instances) {
      i.dev = devMap.get(i.dev)!;
      for (const m of i.mounts) m.mntNs += 7;
    }
    for (const p of old.pins) {
      p.instance = devMap.get(p.instance)!;
      if (p.object) p.object.id += 100000;
    }
    const file = path.join(db.dir, 'old-boot.json');
    fs.writeFileSync(file, JSON.stringify(old));
    const d = pinleakJson<DiffResult>(['diff', file, 'latest'], { db: db.db });
    expect(d.sameBoot).toBe(false);
    expect(d.added).toEqual([]);
    expect(d.removed).toEqual([]);
    expect(d.newlyLeaked).toEqual([]);
    const text = pinleak(['diff', file, 'latest'], { db: db.db });
    expect(text.stdout).toMatch(/across a reboot/);

    // the same within one boot would see every pin as replaced by another object
    const sameBoot = JSON.parse(JSON.stringify(old)) as SnapshotDoc;
    sameBoot.snapshot.bootId = now.snapshot.bootId;
    fs.writeFileSync(file, JSON.stringify(sameBoot));
    const d2 = pinleakJson<DiffResult>(['diff', file, 'latest'], { db: db.db });
    expect(d2.added.length).toBe(now.pins.length);
  });
});
