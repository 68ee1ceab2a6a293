// clean on the real kernel: exactly the chosen leaks go, everything else stays, races and
// hostile containers are survived, every unlink is audited and the memory really freed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { createWorld, type World, type Mount } from '../world/world.js';
import { pinleak, pinleakJson, tempDb } from '../helpers.js';
import { assertPin } from '../contract.js';
import type { CleanResult } from '../../src/cli/clean.js';

let world: World;
let db: ReturnType<typeof tempDb>;
let bpffs: Mount;
const at = (...p: string[]) => path.join(bpffs.path, ...p);
const exists = (p: string) => fs.existsSync(p);
const mapAlive = (id: number) => spawnSync('bpftool', ['map', 'show', 'id', String(id)]).status === 0;

/** An OpenTelemetry-style leak: maps under <bpffs>/<pid>/ by a process that then exits. */
async function otelLeak(names: string[]): Promise<{ pid: number; ids: number[] }> {
  const a = await world.spawnAgent();
  const ids: number[] = [];
  for (const n of names) {
    const m = await a.call({ op: 'map', name: n });
    await a.call({ op: 'pin', fd: m.fd!, path: at(String(a.pid), n) });
    ids.push(m.id!);
  }
  await a.exit();
  return { pid: a.pid, ids };
}

beforeAll(async () => {
  world = createWorld();
  db = tempDb();
  bpffs = await world.mountBpffs('clean');
});
afterAll(async () => {
  await world.cleanup();
  db.remove();
});

describe('clean', () => {
  it('removes exactly the chosen leaked pins and the directory it emptied; never held, in-use or persistent ones', async () => {
    const leak = await otelLeak(['alloc_map', 'tracked_spans']);
    const keeper = await world.spawnAgent();
    const held = await keeper.call({ op: 'map', name: 'held' });
    await keeper.call({ op: 'pin', fd: held.fd!, path: at('held', 'm') });
    const used = await keeper.call({ op: 'map', name: 'used', type: 'array' });
    await keeper.call({ op: 'pin', fd: used.fd!, path: at('inuse', 'm') });
    await keeper.call({ op: 'prog', name: 'user', mapFd: used.fd! });
    await keeper.call({ op: 'close', fd: used.fd! });
    const cil = await keeper.call({ op: 'map', name: 'cilium_x' });
    await keeper.call({ op: 'pin', fd: cil.fd!, path: at('tc', 'globals', 'cilium_x') });
    await keeper.call({ op: 'close', fd: cil.fd! });
    const orph = await keeper.call({ op: 'map', name: 'orph' });
    await keeper.call({ op: 'pin', fd: orph.fd!, path: at('orph', 'm') });
    await keeper.call({ op: 'close', fd: orph.fd! });
    fs.mkdirSync(at('already-empty'));

    const doc = pinleakJson(['scan'], { db: db.db });
    expect(doc.pins.filter((p) => p.instance === bpffs.dev && p.status === 'leaked').map((p) => p.path))
      .toEqual([`/${leak.pid}/alloc_map`, `/${leak.pid}/tracked_spans`]);

    const dry = pinleakJson<CleanResult>(['clean', '--instance', bpffs.dev], { db: db.db });
    expect(dry.dryRun).toBe(true);
    expect(dry.removed.map((p) => p.path)).toEqual([`/${leak.pid}/alloc_map`, `/${leak.pid}/tracked_spans`]);
    dry.removed.forEach((p) => assertPin(p));
    expect(dry.freedBytes).toBe(dry.removed.reduce((n, p) => n + p.object!.memlockBytes, 0));
    expect(exists(at(String(leak.pid), 'alloc_map'))).toBe(true);

    const done = pinleakJson<CleanResult>(['clean', '--instance', bpffs.dev, '--yes'], { db: db.db });
    expect(done.dryRun).toBe(false);
    expect(done.removed.map((p) => p.object!.id).sort()).toEqual([...leak.ids].sort());
    expect(done.skipped).toEqual([]);
    expect(done.notFreed).toEqual([]);
    expect(done.freedBytes).toBe(dry.freedBytes);
    expect(done.removedDirectories).toEqual([`/${leak.pid}`]);
    expect(exists(at(String(leak.pid)))).toBe(false);
    for (const id of leak.ids) expect(mapAlive(id)).toBe(false); // the kernel really let go
    for (const p of ['held/m', 'inuse/m', 'tc/globals/cilium_x', 'orph/m', 'already-empty', 'maps.debug']) expect(exists(at(p)), p).toBe(true);

    const audit = new Database(db.db, { readonly: true }).prepare('SELECT * FROM actions ORDER BY id').all() as { path: string; object_id: number; bytes: number; actor: string; instance: string }[];
    expect(audit.map((r) => r.path)).toEqual([`/${leak.pid}/alloc_map`, `/${leak.pid}/tracked_spans`]);
    expect(audit.every((r) => r.bytes > 0 && r.instance === bpffs.dev && /uid 0/.test(r.actor))).toBe(true);

    // however the filters are written, only leaks go
    const refused = pinleak(['clean', '--status', 'held,leaked', '--yes'], { db: db.db });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^pinleak: clean never removes held pins/);
    pinleakJson(['scan'], { db: db.db });
    const wide = pinleakJson<CleanResult>(['clean', '--status', 'orphaned,leaked', '--path', '**', '--instance', bpffs.dev, '--yes'], { db: db.db });
    expect(wide.removed.map((p) => p.path)).toEqual(['/orph/m']);
    for (const p of ['held/m', 'inuse/m', 'tc/globals/cilium_x', 'maps.debug', 'progs.debug']) expect(exists(at(p)), p).toBe(true);
    await keeper.exit();
  });

  it('skips a pin that became held since the snapshot, and one replaced by another object', async () => {
    const leak = await otelLeak(['a', 'b', 'c']);
    pinleakJson(['scan'], { db: db.db });
    const late = await world.spawnAgent();
    await late.call({ op: 'open', path: at(String(leak.pid), 'a') }); // someone picked it up
    fs.unlinkSync(at(String(leak.pid), 'b'));
    const other = await late.call({ op: 'map', name: 'b' });
    await late.call({ op: 'pin', fd: other.fd!, path: at(String(leak.pid), 'b') });
    await late.call({ op: 'close', fd: other.fd! });

    const r = pinleakJson<CleanResult>(['clean', '--instance', bpffs.dev, '--path', `/${leak.pid}/*`, '--yes'], { db: db.db });
    expect(r.removed.map((p) => p.path)).toEqual([`/${leak.pid}/c`]);
    const why = Object.fromEntries(r.skipped.map((s) => [s.pin.path, s.why]));
    expect(why[`/${leak.pid}/a`]).toMatch(new RegExp(`held now|it is held now: held by pid ${late.pid}`));
    expect(why[`/${leak.pid}/b`]).toMatch(/now holds map \d+, not map|replaced/);
    expect(exists(at(String(leak.pid), 'a'))).toBe(true);
    expect(exists(at(String(leak.pid), 'b'))).toBe(true);
    expect(exists(at(String(leak.pid)))).toBe(true); // not empty: not removed
    await late.exit();
  });

  it('survives a hostile container: symlinks out of the bpffs are never followed, read or removed', async () => {
    const host = path.join(world.dir, 'host-files');
    fs.mkdirSync(path.join(host, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(host, 'x'), 'precious');
    fs.writeFileSync(path.join(host, 'sub', 'x'), 'precious');
    fs.symlinkSync(host, at('evil'));
    const leak = await otelLeak(['x']);
    const doc = pinleakJson(['scan'], { db: db.db });
    expect(doc.pins.filter((p) => p.instance === bpffs.dev && p.path.startsWith('/evil'))).toEqual([]);
    expect(doc.pins.some((p) => p.path === `/${leak.pid}/x` && p.status === 'leaked')).toBe(true);

    // between the scan and the clean, the container swaps the pin's directory for a symlink to host files
    fs.renameSync(at(String(leak.pid)), at(`${leak.pid}old`));
    fs.symlinkSync(host, at(String(leak.pid)));
    const r = pinleakJson<CleanResult>(['clean', '--instance', bpffs.dev, '--status', 'leaked,orphaned', '--path', '**', '--yes'], { db: db.db });
    expect(r.removed.filter((p) => p.path === `/${leak.pid}/x`)).toEqual([]);
    expect(r.skipped.find((s) => s.pin.path === `/${leak.pid}/x`)?.why).toBeTruthy();
    expect(fs.readFileSync(path.join(host, 'x'), 'utf8')).toBe('precious');
    expect(fs.readFileSync(path.join(host, 'sub', 'x'), 'utf8')).toBe('precious');
    expect(fs.lstatSync(at('evil')).isSymbolicLink()).toBe(true);
    fs.unlinkSync(at(String(leak.pid)));
    fs.unlinkSync(at('evil'));
  });

  it('a database another process keeps locked stops clean with that reason; nothing is unpinned until it is free', async () => {
    const leak = await otelLeak(['locked_map']);
    const pinPath = at(String(leak.pid), 'locked_map');
    const id = String(pinleakJson(['scan'], { db: db.db }).snapshot.id);
    const place = ['--instance', bpffs.dev, '--path', `/${leak.pid}/**`];
    const other = new Database(db.db);
    other.exec('BEGIN IMMEDIATE'); // another writer, mid-transaction
    try {
      const r = pinleak(['clean', id, ...place, '--yes'], { db: db.db });
      expect(r.code, r.stdout).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^pinleak: .*pinleak\.db is locked by another process/);
      expect(exists(pinPath)).toBe(true); // its audit row could not be written, so it was not unpinned
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    const done = pinleakJson<CleanResult>(['clean', id, ...place, '--yes'], { db: db.db });
    expect(done.removed.map((p) => p.path)).toEqual([`/${leak.pid}/locked_map`]);
    expect(exists(pinPath)).toBe(false);
  }, 60_000);
});
