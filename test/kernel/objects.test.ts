// pinleak objects on the real kernel: every object of the host with its owner, the ids
// bpftool lists (and nothing more), and what nothing explains.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { type Agent, type Mount } from '../world/world.js';
import { bpftool, pinleak, pinleakJson, NODE_COMM } from '../helpers.js';
import { worldForFile } from '../world/for-file.js';
import type { HostObject, ObjectsDoc, SnapshotDoc } from '../../src/model.js';

const t = worldForFile(async ({ world, db }) => {
  bpffs = await world.mountBpffs('objs');
  tool = await world.spawnAgent();

  // a "Cilium" agent: catalogued names, held; a map of its own name pinned where no rule looks
  const ciliumMap = await tool.call({ op: 'map', name: 'cilium_t_ct' });
  ids.ciliumMap = ciliumMap.id!;
  const usedMap = await tool.call({ op: 'map', name: 'pl_used' });
  ids.usedMap = usedMap.id!;
  await tool.call({ op: 'pin', fd: usedMap.fd!, path: path.join(bpffs.path, 'anywhere/pl_used') });
  const prog = await tool.call({ op: 'prog', name: 'cil_from_test', mapFd: usedMap.fd! });
  ids.ciliumProg = prog.id!;
  await tool.call({ op: 'close', fd: usedMap.fd! });

  // a process in a container-like cgroup: its program, and the unpinned map only that program uses
  const cg = await world.makeCgroup();
  containerId = crypto.randomBytes(32).toString('hex');
  const scope = path.join(cg, `docker-${containerId}.scope`);
  fs.mkdirSync(scope);
  world.onCleanup(`cgroup ${scope}`, async () => {
    for (let i = 0; fs.existsSync(scope); i++) {
      try {
        fs.rmdirSync(scope);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 50) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  contained = await world.spawnAgent();
  fs.writeFileSync(path.join(scope, 'cgroup.procs'), String(contained.pid));
  const innerMap = await contained.call({ op: 'map', name: 'pl_inner' });
  ids.innerMap = innerMap.id!;
  const innerProg = await contained.call({ op: 'prog', name: 'pl_ctr_prog', mapFd: innerMap.fd! });
  ids.innerProg = innerProg.id!;
  await contained.call({ op: 'close', fd: innerMap.fd! });

  // a map referenced only by an fd in flight: sent with SCM_RIGHTS, never received, closed
  const lost = await tool.call({ op: 'map', name: 'pl_in_flight' });
  ids.inFlight = lost.id!;
  await tool.call({ op: 'inFlight', fd: lost.fd! });
  await tool.call({ op: 'close', fd: lost.fd! });
  const lostProg = await tool.call({ op: 'prog', name: 'pl_lost_prog' });
  ids.lostProg = lostProg.id!;
  await tool.call({ op: 'inFlight', fd: lostProg.fd! });
  await tool.call({ op: 'close', fd: lostProg.fd! });

  before = { prog: bpftoolIds('prog'), map: bpftoolIds('map'), link: bpftoolIds('link') };
  scan = pinleakJson(['scan'], { db: db.db });
  after = { prog: bpftoolIds('prog'), map: bpftoolIds('map'), link: bpftoolIds('link') };
  doc = pinleakJson<ObjectsDoc>(['objects'], { db: db.db });
});

let bpffs: Mount;
let tool: Agent;
let contained: Agent;
let containerId: string;
let scan: SnapshotDoc;
let doc: ObjectsDoc;
type Kind = 'prog' | 'map' | 'link';
let before: Record<Kind, number[]>;
let after: Record<Kind, number[]>;
const ids: Record<string, number> = {};

function bpftoolIds(kind: Kind): number[] {
  return (bpftool([kind, 'show']) as { id: number }[]).map((o) => o.id);
}

const object = (kind: Kind, id: number): HostObject => {
  const o = doc.objects.find((x) => x.kind === kind && x.id === id);
  if (!o) throw new Error(`no ${kind} ${id} in objects`);
  return o;
};

describe('objects on the real kernel', () => {
  it('lists every id bpftool lists before and after the scan, and only ids bpftool could list', () => {
    for (const kind of ['prog', 'map', 'link'] as Kind[]) {
      const mine = doc.objects.filter((o) => o.kind === kind).map((o) => o.id);
      const listed = new Set(mine);
      const both = before[kind].filter((id) => after[kind].includes(id));
      expect(both.filter((id) => !listed.has(id)), `${kind}s bpftool listed before and after, missing from objects`).toEqual([]);
      // An id bpftool never listed must have been made (ids only grow) and freed between its two reads.
      const newest = Math.max(0, ...before[kind]);
      const seen = new Set([...before[kind], ...after[kind]]);
      expect(mine.filter((id) => !seen.has(id) && id <= newest), `${kind}s in objects bpftool never listed`).toEqual([]);
      expect(mine).toEqual([...listed]); // no duplicates
    }
    for (const [kind, id] of [['prog', ids.ciliumProg], ['prog', ids.innerProg], ['map', ids.ciliumMap], ['map', ids.usedMap],
      ['map', ids.innerMap], ['map', ids.inFlight], ['prog', ids.lostProg]] as [Kind, number][]) {
      expect(before[kind], `bpftool before: ${kind} ${id}`).toContain(id);
      expect(after[kind], `bpftool after: ${kind} ${id}`).toContain(id);
      object(kind, id);
    }
  });

  it('gives objects with a catalogued name prefix their tool, and counts memory per tool', () => {
    const prog = object('prog', ids.ciliumProg);
    expect(prog).toMatchObject({ name: 'cil_from_test', type: 'cgroup_skb', owner: { tool: 'cilium', from: 'name' }, unexplained: null });
    expect(prog.holders.map((h) => h.pid)).toEqual([tool.pid]);
    expect(prog.loaderUid).toBe(0);
    expect(Date.parse(prog.loadedAt!)).toBeGreaterThan(Date.now() - 600_000);
    expect(prog.memlockBytes).toBeGreaterThan(0);
    expect(prog.references).toEqual([{ kind: 'map', id: ids.usedMap, via: `used by program ${ids.ciliumProg} (cil_from_test)` }]);
    expect(object('map', ids.ciliumMap)).toMatchObject({ type: 'hash', owner: { tool: 'cilium', from: 'name' } });
    const cilium = doc.summary.byOwner.find((g) => g.owner === 'cilium')!;
    expect(cilium.progs).toBeGreaterThanOrEqual(1);
    expect(cilium.maps).toBeGreaterThanOrEqual(2);
    const text = pinleak(['objects', '--owner', 'cilium'], { db: t.db.db });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^cilium: \d+ programs?, \d+ maps, [\d.]+ (B|KiB|MiB)$/m);
    expect(text.stdout).toContain(`prog ${ids.ciliumProg} cil_from_test (cgroup_skb)`);
  });

  it('gives a pin no rule places the tool of the live program that uses it (pins and objects)', () => {
    const used = object('map', ids.usedMap);
    expect(used.owner).toMatchObject({ tool: 'cilium', from: 'referrer', via: `used by program ${ids.ciliumProg} (cil_from_test)` });
    expect(used.pins).toEqual([{ instance: bpffs.dev, path: '/anywhere/pl_used', status: 'in-use' }]);
    const pin = scan.pins.find((p) => p.instance === bpffs.dev && p.path === '/anywhere/pl_used')!;
    expect(pin.status).toBe('in-use');
    expect(pin.owner).toMatchObject({ tool: 'cilium', via: `used by program ${ids.ciliumProg} (cil_from_test)` });
  });

  it('gives unpinned objects the process holding them, with its container', () => {
    const prog = object('prog', ids.innerProg);
    expect(prog.owner).toMatchObject({ tool: NODE_COMM, from: 'holder', container: { runtime: 'docker', id: containerId } });
    const map = object('map', ids.innerMap);
    expect(map.pins).toEqual([]);
    expect(map.holders).toEqual([]);
    expect(map.owner).toMatchObject({ tool: NODE_COMM, from: 'referrer', container: { runtime: 'docker', id: containerId } });
    expect(map.unexplained).toBeNull();
    const group = pinleakJson<ObjectsDoc>(['objects', '--owner', containerId.slice(0, 12)], { db: t.db.db });
    expect(group.objects.map((o) => `${o.kind}:${o.id}`).sort()).toEqual([`map:${ids.innerMap}`, `prog:${ids.innerProg}`].sort());
    expect(group.summary.byOwner).toEqual([expect.objectContaining({ owner: `${NODE_COMM} (docker ${containerId.slice(0, 12)})`, progs: 1, maps: 1 })]);
  });

  it('shows an object kept only by an fd in flight as unexplained, since its first snapshot, and never cleanable', () => {
    const lost = object('map', ids.inFlight);
    expect(lost).toMatchObject({ pins: [], holders: [], referencedBy: [], owner: null });
    expect(lost.unexplained).toMatchObject({ since: scan.snapshot.takenAt, sinceSnapshot: scan.snapshot.id });
    // never opened by id: without the iterators it could be a prog array
    expect(lost).toMatchObject({ type: 'unknown', memlockBytes: null });
    expect(lost.note).toMatch(/prog array/);
    const lostProg = object('prog', ids.lostProg);
    expect(lostProg).toMatchObject({ name: 'pl_lost_prog', pins: [], holders: [], referencedBy: [], owner: null });
    expect(lostProg.unexplained).toMatchObject({ sinceSnapshot: scan.snapshot.id });
    expect(lostProg.memlockBytes).toBeGreaterThan(0);
    expect(scan.summary.objects!.unexplained).toBeGreaterThanOrEqual(2);
    expect(scan.summary.objects!.unexplainedBytes).toBeGreaterThanOrEqual(lostProg.memlockBytes!);

    const only = pinleakJson<ObjectsDoc>(['objects', '--unexplained'], { db: t.db.db });
    expect(only.objects.every((o) => o.unexplained)).toBe(true);
    expect(only.objects.map((o) => o.id)).toContain(ids.inFlight);

    // seen so again: still since the first snapshot
    const second = pinleakJson(['scan'], { db: t.db.db });
    const again = pinleakJson<ObjectsDoc>(['objects', '--unexplained', '--kind', 'map'], { db: t.db.db });
    expect(again.snapshot.id).toBe(second.snapshot.id);
    expect(again.objects.find((o) => o.id === ids.inFlight)!.unexplained).toMatchObject({ since: scan.snapshot.takenAt, sinceSnapshot: scan.snapshot.id });

    const summaryLine = pinleak(['scan', '--no-store'], { db: t.db.db }).stdout;
    expect(summaryLine).toMatch(/\d+ objects? nothing explains \([\d.]+ (B|KiB|MiB)\): pinleak objects --unexplained/);
    const metrics = pinleak(['export', 'prometheus'], { db: t.db.db }).stdout;
    const gauge = Number(/^pinleak_unexplained_bytes (\d+)$/m.exec(metrics)?.[1]);
    expect(gauge).toBeGreaterThanOrEqual(lostProg.memlockBytes!);

    const clean = pinleakJson<{ removed: { object: { id: number } | null }[]; skipped: { pin: { object: { id: number } | null } }[] }>(
      ['clean', '--status', 'leaked,orphaned'], { db: t.db.db });
    const offered = [...clean.removed.map((p) => p.object), ...clean.skipped.map((s) => s.pin.object)];
    expect(offered.some((o) => o?.id === ids.inFlight || o?.id === ids.lostProg)).toBe(false);
  });

  it('filters by kind and refuses an unknown kind', () => {
    const progs = pinleakJson<ObjectsDoc>(['objects', '--kind', 'prog'], { db: t.db.db });
    expect(progs.objects.length).toBeGreaterThan(0);
    expect(progs.objects.every((o) => o.kind === 'prog')).toBe(true);
    const bad = pinleak(['objects', '--kind', 'socket'], { db: t.db.db });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^pinleak: --kind socket: must be one of map, prog, link/);
  });
});
