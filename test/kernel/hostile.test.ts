// Names and shapes a hostile or careless container can give its bpffs: spaces, newlines,
// unicode and backslashes in pin names and mount points, a 4,096-byte path, 30 levels.
// Also: two scans at once, and a scan killed halfway.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createWorld, type World, type Mount, type Agent } from '../world/world.js';
import { CLI, pinleak, pinleakJson, start, tempDb } from '../helpers.js';
import type { CleanResult } from '../../src/cli/clean.js';

let world: World;
let db: ReturnType<typeof tempDb>;
let bpffs: Mount;
let agent: Agent;

const WEIRD = ['with space', 'new\nline', 'ünïcødé-🐝', 'back\\slash', 'tab\there'];
const deepRel = Array.from({ length: 30 }, (_, i) => `d${i}`).join('/') + '/deep_map';
// 16 components of 250 bytes: a path of about 4,096 bytes below the instance root
const longRel = Array.from({ length: 16 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(248)}`).join('/').slice(0, 4000) + '/long';

async function pinMap(rel: string, name = 'weird'): Promise<number> {
  const m = await agent.call({ op: 'map', name });
  await agent.call({ op: 'pin', fd: m.fd!, path: path.join(bpffs.path, rel) });
  await agent.call({ op: 'close', fd: m.fd! });
  return m.id!;
}

beforeAll(async () => {
  world = createWorld();
  db = tempDb();
  bpffs = await world.mountBpffs('mnt with space\nand newline ü \\ back');
  agent = await world.spawnAgent();
});
afterAll(async () => {
  await world.cleanup();
  db.remove();
});

describe('hostile names', () => {
  it('reports every pin under its exact name, and cleans one', async () => {
    const ids = new Map<string, number>();
    for (const w of WEIRD) ids.set(`/${w}/${w}`, await pinMap(path.join(w, w)));
    ids.set(`/${deepRel}`, await pinMap(deepRel, 'deep'));
    // with the mount point in front, just under PATH_MAX (4,096 bytes) for the pinning syscall
    ids.set(`/${longRel}`, await pinMap(longRel, 'long'));
    expect(Buffer.byteLength(longRel)).toBeGreaterThan(3990);

    const doc = pinleakJson(['scan'], { db: db.db });
    const inst = doc.instances.find((i) => i.dev === bpffs.dev)!;
    expect(inst.mounts.map((m) => m.mountPoint)).toContain(bpffs.path); // the mount point with \n and \ read back exactly
    for (const [p, id] of ids) {
      const pin = doc.pins.find((x) => x.instance === bpffs.dev && x.path === p);
      expect(pin, JSON.stringify(p)).toBeDefined();
      expect(pin!.object!.id).toBe(id);
      expect(pin!.mountPaths.find((m) => m.mntNs === world.hostMntNs)!.path).toBe(path.join(bpffs.path, p));
    }
    expect(doc.errors.filter((e) => e.scope === `instance ${bpffs.dev}`)).toEqual([]);
    // the human table never prints a raw newline from a name
    const table = pinleak(['pins', '--instance', bpffs.dev], { db: db.db });
    expect(table.stdout).toContain('new\\nline');
    expect(table.stdout.split('\n').every((l) => !l.startsWith('line'))).toBe(true);

    const r = pinleakJson<CleanResult>(['clean', '--status', 'orphaned', '--instance', bpffs.dev, '--path', '/new*line/**', '--yes'], { db: db.db });
    expect(r.removed.map((p) => p.path)).toEqual(['/new\nline/new\nline']);
    expect(r.removedDirectories).toEqual(['/new\nline']);
    const deep = pinleakJson<CleanResult>(['clean', '--status', 'orphaned', '--instance', bpffs.dev, '--path', '/d0/**/deep_map', '--yes'], { db: db.db });
    expect(deep.removed.map((p) => p.path)).toEqual([`/${deepRel}`]);
    expect(deep.removedDirectories).toHaveLength(30);
    expect(fs.existsSync(path.join(bpffs.path, 'd0'))).toBe(false);
  });
});

describe('concurrency and crashes', () => {
  it('two scans at the same moment against one database both succeed', async () => {
    const run = async () => (await start(process.execPath, [CLI, '--db', db.db, 'scan', '--quiet'], { stdio: 'ignore' }).ended).code ?? -1;
    const before = pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length;
    expect(await Promise.all([run(), run(), run()])).toEqual([0, 0, 0]);
    expect(pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length).toBe(before + 3);
  });

  it('a scan killed with SIGKILL halfway leaves the database readable with no partial snapshot', async () => {
    // enough pins that the scan takes a while
    for (let i = 0; i < 300; i++) await pinMap(`bulk/m${i}`, 'bulk');
    const count = () => pinleakJson<{ snapshots: unknown[] }>(['snapshots'], { db: db.db }).snapshots.length;
    const before = count();
    let killedMidway = 0;
    let completed = 0;
    for (const delay of [30, 80, 150, 250, 400]) {
      const { child, ended } = start(process.execPath, [CLI, '--db', db.db, 'scan', '--quiet'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL'); // a fast scan may be over by now: `ended` has it either way
      const { code: exitCode, signal } = await ended;
      const code = signal ?? exitCode;
      if (code === 'SIGKILL') killedMidway++;
      else if (code === 0) completed++;
    }
    expect(killedMidway).toBeGreaterThan(0);
    const d = new Database(db.db, { readonly: true });
    expect(d.pragma('integrity_check', { simple: true })).toBe('ok');
    // every stored snapshot is whole: its pin rows match its summary
    const snaps = pinleakJson<{ snapshots: { id: number; pins: number }[] }>(['snapshots'], { db: db.db }).snapshots;
    for (const s of snaps.slice(-6)) {
      const doc = pinleakJson(['pins', String(s.id)], { db: db.db });
      expect(doc.pins.length).toBe(doc.summary.pins);
    }
    // each scan that finished stored its snapshot; a killed one stored one at most (killed
    // after its commit), never a part of one (the whole-ness check above)
    const added = count() - before;
    expect(added).toBeGreaterThanOrEqual(completed);
    expect(added).toBeLessThanOrEqual(completed + killedMidway);
    d.close();
  }, 180_000);
});
