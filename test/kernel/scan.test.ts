// The scan against the real kernel: worlds built for real, ids compared with the ids the
// test's own processes read from their fds, holders with the test's pids, names with bpftool.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { type World, type Agent, type DetachedNamespace, type Mount } from '../world/world.js';
import { pinleak, pinleakJson, bpftool } from '../helpers.js';
import { worldForFile, type FileWorld } from '../world/for-file.js';
import type { Pin, SnapshotDoc } from '../../src/model.js';
import { assertSnapshotDoc } from '../contract.js';

let world: World;
let db: FileWorld['db'];
let host: Mount;
let second: Mount;
let holder: Agent;
let isolated: Agent;
let detached: DetachedNamespace;
const ids: Record<string, number> = {};
let isolatedDev = '';
let doc: SnapshotDoc;

const pinAt = (dev: string, p: string): Pin => {
  const pin = doc.pins.find((x) => x.instance === dev && x.path === p);
  if (!pin) throw new Error(`no pin ${p} in ${dev}; have ${doc.pins.filter((x) => x.instance === dev).map((x) => x.path).join(', ')}`);
  return pin;
};

worldForFile(async (t) => {
  world = t.world;
  db = t.db;
  host = await world.mountBpffs('host-bpf');
  second = await world.bindMount(host.path, 'second-view');

  holder = await world.spawnAgent();
  const map = await holder.call({ op: 'map', name: 'held_map', type: 'hash' });
  ids.heldMap = map.id!;
  await holder.call({ op: 'pin', fd: map.fd!, path: path.join(host.path, 'app/nested/held map') });
  const usedMap = await holder.call({ op: 'map', name: 'used_map', type: 'array' });
  ids.usedMap = usedMap.id!;
  await holder.call({ op: 'pin', fd: usedMap.fd!, path: path.join(host.path, 'app/used_map') });
  const prog = await holder.call({ op: 'prog', name: 'pl_prog', mapFd: usedMap.fd! });
  ids.prog = prog.id!;
  await holder.call({ op: 'pin', fd: prog.fd!, path: path.join(host.path, 'app/prog') });
  const cg = await world.makeCgroup();
  const link = await holder.call({ op: 'link', progFd: prog.fd!, cgroup: cg });
  ids.link = link.id!;
  await holder.call({ op: 'pin', fd: link.fd!, path: path.join(host.path, 'app/link') });
  // Only the map stays held: the program and link live on through their pins.
  await holder.call({ op: 'close', fd: usedMap.fd! });
  await holder.call({ op: 'close', fd: prog.fd! });
  await holder.call({ op: 'close', fd: link.fd! });

  isolated = await world.spawnAgent({ unshareMount: true });
  const mnt = path.join(world.dir, 'private-bpf');
  const m = await isolated.call({ op: 'mountBpffs', path: mnt });
  isolatedDev = m.dev!;
  const pm = await isolated.call({ op: 'map', name: 'ns_map' });
  ids.nsMap = pm.id!;
  await isolated.call({ op: 'pin', fd: pm.fd!, path: path.join(mnt, 'ns_map') });
  await isolated.call({ op: 'close', fd: pm.fd! });

  detached = await world.namespaceWithoutProcess({ mapName: 'lonely_map' });

  doc = pinleakJson(['scan', '--label', 'kernel-test'], { db: db.db });
});

describe('scan on the real kernel', () => {
  it('prints the snapshot document of docs/schema/snapshot.json', () => {
    assertSnapshotDoc(doc);
    expect(doc.snapshot.label).toBe('kernel-test');
  });

  it('sees one instance mounted at two places', () => {
    const inst = doc.instances.find((i) => i.dev === host.dev)!;
    expect(inst).toBeDefined();
    const inHost = inst.mounts.filter((m) => m.mntNs === world.hostMntNs);
    expect(inHost.map((m) => m.mountPoint).sort()).toEqual([host.path, second.path].sort());
    // The namespaces unshared after it was mounted got copies of both mounts: same instance.
    expect(inst.mounts.filter((m) => m.mntNs === isolated.mntNs)).toHaveLength(2);
    expect(doc.instances.filter((i) => i.dev === host.dev)).toHaveLength(1);
    const pin = pinAt(host.dev, '/app/used_map');
    expect(pin.mountPaths.filter((m) => m.mntNs === world.hostMntNs).map((m) => m.path).sort())
      .toEqual([path.join(host.path, 'app/used_map'), path.join(second.path, 'app/used_map')].sort());
    expect(inst.pinCount).toBe(doc.pins.filter((p) => p.instance === host.dev).length);
  });

  it('reads a map pinned in a nested directory under a name with a space, and its holder', () => {
    const pin = pinAt(host.dev, '/app/nested/held map');
    expect(pin.object).toMatchObject({ kind: 'map', id: ids.heldMap, name: 'held_map', type: 'hash' });
    expect(pin.object!.memlockBytes).toBeGreaterThan(0);
    expect(pin.status).toBe('held');
    expect(pin.holders.map((h) => h.pid)).toEqual([holder.pid]);
    expect(pin.holders[0]!.fds.length).toBe(1);
    expect(pin.holders[0]!.mntNs).toBe(holder.mntNs);
    const oracle = bpftool(['map', 'show', 'id', String(ids.heldMap)]) as { name: string; bytes_memlock: number };
    expect(oracle.name).toBe('held_map');
    expect(pin.object!.memlockBytes).toBe(oracle.bytes_memlock);
  });

  it('reads a pinned program and its maps, and a pinned cgroup link named after its program', () => {
    const prog = pinAt(host.dev, '/app/prog');
    expect(prog.object).toMatchObject({ kind: 'prog', id: ids.prog, name: 'pl_prog', type: 'cgroup_skb' });
    expect(prog.usedBy).toEqual([{ kind: 'link', id: ids.link, via: expect.stringMatching(new RegExp(`^behind live cgroup link ${ids.link} \\(cgroup \\d+\\)$`)) }]);
    const link = pinAt(host.dev, '/app/link');
    expect(link.object).toMatchObject({ kind: 'link', id: ids.link, name: 'pl_prog', type: 'cgroup' });
    const map = pinAt(host.dev, '/app/used_map');
    expect(map.object).toMatchObject({ kind: 'map', id: ids.usedMap, name: 'used_map', type: 'array' });
    expect(map.usedBy).toEqual([{ kind: 'prog', id: ids.prog, via: `used by program ${ids.prog} (pl_prog)` }]);
    const oracle = bpftool(['prog', 'show', 'id', String(ids.prog)]) as { map_ids: number[] };
    expect(oracle.map_ids).toEqual([ids.usedMap]);
  });

  it('sees a bpffs in a private mount namespace through its process', () => {
    const ns = doc.namespaces.find((n) => n.mntNs === isolated.mntNs)!;
    expect(ns).toMatchObject({ reachedVia: 'process', error: null });
    expect(ns.pids).toContain(isolated.pid);
    const inst = doc.instances.find((i) => i.dev === isolatedDev)!;
    expect(inst.mounts).toHaveLength(1);
    expect(inst.mounts[0]).toMatchObject({ mntNs: isolated.mntNs, mountPoint: path.join(world.dir, 'private-bpf') });
    const pin = pinAt(isolatedDev, '/ns_map');
    expect(pin.object).toMatchObject({ kind: 'map', id: ids.nsMap, name: 'ns_map' });
    expect(pin.holders).toEqual([]);
  });

  it('enters a namespace no process is in, kept by an nsfs bind mount', () => {
    const ns = doc.namespaces.find((n) => n.mntNs === detached.mntNs)!;
    expect(ns).toBeDefined();
    expect(ns).toMatchObject({ reachedVia: 'nsfs', processCount: 0, pids: [], error: null });
    expect(ns.nsfsPaths).toContain(detached.nsfsPath);
    const inst = doc.instances.find((i) => i.dev === detached.bpffsDev)!;
    expect(inst.mounts[0]).toMatchObject({ mntNs: detached.mntNs, mountPoint: detached.bpffsMountPoint });
    const pins = doc.pins.filter((p) => p.instance === detached.bpffsDev && p.object?.kind === 'map');
    expect(pins.map((p) => p.object!.id)).toContain(detached.pinnedMapId);
  });

  it('recognises the kernel preload iterators of every instance', () => {
    for (const dev of [host.dev, isolatedDev, detached.bpffsDev]) {
      for (const name of ['/maps.debug', '/progs.debug']) {
        const pin = pinAt(dev, name);
        expect(pin.status).toBe('persistent');
        expect(pin.reasons.join(' ')).toMatch(/preload/);
      }
    }
  });

  it('stores the snapshot and reads it back whole', () => {
    expect(doc.snapshot.id).toBeGreaterThan(0);
    const back = pinleakJson(['pins', 'latest'], { db: db.db });
    expect(back).toEqual(doc);
  });

  it('writes the document compact, as JSON.stringify would, also when nothing changed since the last scan', () => {
    // the second scan finds the pins as the first stored them and prints the store's texts of them
    for (let i = 0; i < 2; i++) {
      const r = pinleak(['scan', '--json'], { db: db.db });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${JSON.stringify(JSON.parse(r.stdout))}\n`);
      expect(pinleakJson(['pins', 'latest'], { db: db.db })).toEqual(JSON.parse(r.stdout));
    }
  });
});
