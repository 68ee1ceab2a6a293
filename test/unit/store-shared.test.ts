// Rows shared across snapshots (issue 12): an unchanged pin or object writes no row, and
// every snapshot still reads back exactly as it was saved, before and after prune.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostObject, Pin, SnapshotDoc } from '../../src/model.js';
import { historySeries, loadObjects, loadSnapshot, openStore, pinObjectCache, pruneSnapshots, saveSnapshot, type Store } from '../../src/store/index.js';
import { comparePins, objectCacheOf, sortPins } from '../../src/model.js';
import { rememberedSnapshot } from '../../src/store/shared.js';
import { isLeak } from '../../src/analysis/summary.js';
import { doc, storeForEachTest } from './fixtures.js';

const fresh = storeForEachTest('pinleak-shared-');

const count = (table: string): number => (fresh.store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

/** `n` pins in canonical order (instance, then path); every 4th held by a process, every 3rd leaked. */
function pins(n: number): Pin[] {
  const out: Pin[] = [];
  for (let i = 0; i < n; i++) {
    const held = i % 4 === 0;
    out.push({
      instance: '0:40', path: `/app/map_${String(i).padStart(4, '0')}`, mountPaths: [{ mntNs: 1, path: `/sys/fs/bpf/app/map_${i}` }],
      inode: 100 + i, createdAt: '2026-11-24T20:00:00.000Z', uid: 0, gid: 0, mode: '0600',
      object: { kind: 'map', id: 500 + i, name: `map_${i}`, type: 'hash', memlockBytes: 1000 + i },
      holders: held ? [{ pid: 70 + i, startTime: 9 + i, comm: 'agent', fds: [3], mntNs: 1, container: null }] : [],
      usedBy: [], status: held ? 'held' : i % 3 === 0 ? 'leaked' : 'persistent', reasons: [held ? 'held by agent' : 'only pinned'],
      owner: { tool: null, persistent: false, pathPid: null, pathPidAlive: null }, creator: null,
    });
  }
  return out;
}

function objectsOf(list: Pin[], takenAt: string): HostObject[] {
  return list.map((p) => ({
    kind: 'map' as const, id: p.object!.id, name: p.object!.name, type: 'hash', memlockBytes: p.object!.memlockBytes, loadedAt: null,
    loaderUid: 0, pins: [{ instance: p.instance, path: p.path, status: p.status }], holders: p.holders, referencedBy: [], references: [],
    owner: null, unexplained: p.status === 'leaked' ? { refs: null, users: null, since: takenAt, sinceSnapshot: null } : null, note: null,
  }));
}

function snap(list: Pin[], takenAt: string): SnapshotDoc {
  return doc(structuredClone(list), { takenAt });
}

/** Save, then check that what the store gives back is exactly what was saved. */
function save(d: SnapshotDoc, objects?: HostObject[]): { id: number; doc: SnapshotDoc; objects?: HostObject[] } {
  const id = saveSnapshot(fresh.store, d, objects);
  return { id, doc: structuredClone(d), objects: objects && structuredClone(objects) };
}

function expectExact(saved: { id: number; doc: SnapshotDoc; objects?: HostObject[] }): void {
  expect(loadSnapshot(fresh.store, saved.id)).toEqual(saved.doc);
  if (saved.objects) expect(loadObjects(fresh.store, saved.id).objects).toEqual(saved.objects);
}

describe('rows shared across snapshots', () => {
  it('an unchanged pin writes no row; each snapshot reads back exactly as saved', () => {
    const base = pins(40);
    const s1 = save(snap(base, '2026-11-24T21:00:00.000Z'));
    expect(count('pins')).toBe(40);
    expect(count('objects')).toBe(40);
    const s2 = save(snap(base, '2026-11-24T21:05:00.000Z'));
    expect(count('pins')).toBe(40); // nothing changed: nothing written
    expect(count('holders')).toBe(10);

    const next = structuredClone(base);
    next[1]!.status = 'orphaned'; // a verdict changes
    next[4]!.holders[0]!.fds = [3, 7]; // a holder opens a second fd
    next.splice(10, 1); // a pin goes
    next.push({ ...structuredClone(base[0]!), path: '/app/map_9999', inode: 9999 }); // one comes
    const s3 = save(snap(next, '2026-11-24T21:10:00.000Z'));
    expect(count('pins')).toBe(43);

    const s4 = save(snap(base, '2026-11-24T21:15:00.000Z')); // back as at first: the changed rows are new again
    expect(count('pins')).toBe(46);
    for (const s of [s1, s2, s3, s4]) expectExact(s);
  });

  it('a resident save (remember) writes the same rows as one that reads digests, also when another writer came between', () => {
    const base = pins(40);
    const next = structuredClone(base);
    next[1]!.status = 'orphaned';
    next[4]!.holders[0]!.fds = [3, 7];
    next.splice(10, 1);
    next.push({ ...structuredClone(base[0]!), path: '/app/map_9999', inode: 9999, object: { ...base[0]!.object!, id: 9999 } });
    const t = (m: number) => `2026-11-24T21:${String(m).padStart(2, '0')}:00.000Z`;
    const saveR = (d: SnapshotDoc, objects?: HostObject[]) => {
      const id = saveSnapshot(fresh.store, d, objects, { remember: true });
      return { id, doc: structuredClone(d), objects: objects && structuredClone(objects) };
    };
    const s1 = saveR(snap(base, t(0)), objectsOf(base, t(0)));
    const s2 = saveR(snap(base, t(5)), s1.objects);
    expect([count('pins'), count('host_objects')]).toEqual([40, 40]);
    expect([rememberedSnapshot(fresh.store.db, 'pins'), rememberedSnapshot(fresh.store.db, 'host_objects')]).toEqual([s2.id, s2.id]);
    const s3 = saveR(snap(next, t(10)), objectsOf(next, t(10)));
    expect(count('pins')).toBe(43);
    expect(rememberedSnapshot(fresh.store.db, 'pins')).toBe(s3.id);
    // what s3 remembers (changed keys now name their new rows): the same pins again write nothing
    const s3b = saveR(snap(next, t(12)), s3.objects);
    expect(count('pins')).toBe(43);
    expect(count('pins WHERE last_snapshot_id IS NULL')).toBe(40);
    expectExact(s3b);
    // another connection stores a snapshot: the remembered rows are no longer the open ones
    const other = openStore(path.join(fresh.dir, 'p.db'));
    const o4 = saveSnapshot(other, snap(base, t(15)));
    other.close();
    const s5 = saveR(snap(base, t(20)), objectsOf(base, t(20)));
    const s6 = saveR(snap(next, t(25)), objectsOf(next, t(25)));
    for (const s of [s1, s2, s3, s5, s6]) expectExact(s);
    expect(loadSnapshot(fresh.store, o4).pins).toHaveLength(40);
    // what the same saves write through digests alone
    const plain = openStore(path.join(fresh.dir, 'plain.db'));
    try {
      for (const [list, m, objs] of [[base, 0, true], [base, 5, true], [next, 10, true], [base, 15, false], [base, 20, true], [next, 25, true]] as const) {
        saveSnapshot(plain, snap(list, t(m)), objs ? objectsOf(list, t(m)) : undefined);
      }
      const n = (s: Store, table: string) => (s.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
      expect([n(fresh.store, 'pins'), n(fresh.store, 'objects'), n(fresh.store, 'holders')]).toEqual([n(plain, 'pins'), n(plain, 'objects'), n(plain, 'holders')]);
    } finally {
      plain.close();
    }
  });

  it('prune keeps every row a remaining snapshot stands for, with its object, holders and processes', () => {
    const base = pins(30);
    const changed = structuredClone(base);
    changed[2]!.reasons = ['only pinned, 5 minutes'];
    changed[8]!.holders = [{ pid: 999, startTime: 1, comm: 'other', fds: [4], mntNs: 1, container: null }];
    const saved = [
      save(snap(base, '2026-11-24T21:00:00.000Z')),
      save(snap(base, '2026-11-24T21:05:00.000Z')),
      save(snap(changed, '2026-11-24T21:10:00.000Z')),
      save(snap(changed, '2026-11-24T21:15:00.000Z')),
    ];
    expect(pruneSnapshots(fresh.store, { keep: 2 })).toEqual({ removed: 2 });
    expectExact(saved[2]!);
    expectExact(saved[3]!);
    // only the two rows no remaining snapshot stands for went
    expect(count('pins')).toBe(30);
    expect(count('processes')).toBe(8);
    expect(fresh.store.db.prepare('SELECT MIN(snapshot_id) AS a, MAX(snapshot_id) AS b FROM pins').get()).toEqual({ a: saved[2]!.id, b: saved[2]!.id });
  });

  it('prune of a snapshot in the middle leaves the ones on both sides exact', () => {
    const base = pins(12);
    const other = structuredClone(base);
    other[5]!.status = 'orphaned';
    const s1 = save(snap(base, '2026-11-24T21:00:00.000Z'));
    save(snap(other, '2026-11-20T00:00:00.000Z')); // taken long before the others
    const s3 = save(snap(base, '2026-11-24T21:10:00.000Z'));
    expect(pruneSnapshots(fresh.store, { olderThanMs: 3600_000, now: new Date('2026-11-24T21:30:00.000Z') })).toEqual({ removed: 1 });
    expectExact(s1);
    expectExact(s3);
  });

  it('a document in another order reads back in its own order and takes over no row', () => {
    const base = pins(10);
    const s1 = save(snap(base, '2026-11-24T21:00:00.000Z'));
    const s2 = save(snap([...base].reverse(), '2026-11-24T21:05:00.000Z'));
    expect(count('pins')).toBe(20);
    const s3 = save(snap(base, '2026-11-24T21:10:00.000Z'));
    // the reversed snapshot closed every row of the first; the third goes on with its rows,
    // which it reads back in canonical order while the second reads them in its own
    expect(count('pins')).toBe(20);
    for (const s of [s1, s2, s3]) expectExact(s);
    expect(loadSnapshot(fresh.store, s2.id).pins[0]!.path).toBe('/app/map_0009');
  });

  it('host objects are shared the same way and survive prune', () => {
    const base = pins(20);
    const t = ['2026-11-24T21:00:00.000Z', '2026-11-24T21:05:00.000Z', '2026-11-24T21:10:00.000Z'];
    const s1 = save(snap(base, t[0]!), objectsOf(base, t[0]!));
    // the second scan carries the first's unexplained "since" over, as takeSnapshot does
    const o2 = objectsOf(base, t[1]!).map((o, i) => ({ ...o, unexplained: s1.objects![i]!.unexplained }));
    const s2 = save(snap(base, t[1]!), o2);
    expect(count('host_objects')).toBe(20);
    const o3 = structuredClone(o2);
    o3[3]!.note = 'changed';
    const s3 = save(snap(base, t[2]!), o3);
    expect(count('host_objects')).toBe(21);
    for (const s of [s1, s2, s3]) expectExact(s);
    pruneSnapshots(fresh.store, { keep: 1 });
    expectExact(s3);
    expect(count('host_objects')).toBe(20);
    // a snapshot stored without objects ends the rows: the next one with objects writes them anew
    save(snap(base, '2026-11-24T21:20:00.000Z'));
    const s5 = save(snap(base, '2026-11-24T21:25:00.000Z'), o3);
    expect(count('host_objects')).toBe(40);
    expectExact(s5);
  });

  it('the object cache a resident watch keeps (objectCacheOf) is the one the store gives the next scan', () => {
    const base = pins(30);
    base[7]!.object = null; // an unreadable pin has no object to cache
    const d = snap(base, '2026-11-24T21:00:00.000Z');
    saveSnapshot(fresh.store, d);
    saveSnapshot(fresh.store, snap(base, '2026-11-24T21:05:00.000Z'));
    const fromStore = pinObjectCache(fresh.store, d.snapshot.bootId);
    expect(fromStore.size).toBe(29);
    expect(objectCacheOf(d.pins)).toEqual(fromStore);
    // read back from the rows when the save kept no entries (or kept them for an older snapshot)
    fresh.store.db.prepare('DELETE FROM object_cache').run();
    expect(pinObjectCache(fresh.store, d.snapshot.bootId)).toEqual(fromStore);
    saveSnapshot(fresh.store, snap(base, '2026-11-24T21:10:00.000Z'));
    const changed = structuredClone(base);
    changed[3]!.object!.memlockBytes = 77;
    saveSnapshot(fresh.store, snap(changed, '2026-11-24T21:15:00.000Z'), undefined, { remember: true });
    expect(pinObjectCache(fresh.store, d.snapshot.bootId)).toEqual(objectCacheOf(changed));
  });

  it('the leak history per owner matches each snapshot computed on its own, with an object pinned twice by two owners', () => {
    const base = pins(30);
    // pin 3's object pinned again under another owner's path, and a third time without owner
    const twice = (list: Pin[], owner: string | null, at: string) => [...list, { ...structuredClone(list[3]!), path: at, owner: { ...list[3]!.owner, tool: owner } }];
    const docs = [
      snap(twice(base, 'cilium', '/app/map_0003b'), '2026-11-24T21:00:00.000Z'),
      snap(twice(twice(base, 'cilium', '/app/map_0003b'), null, '/app/map_0003c'), '2026-11-24T21:05:00.000Z'),
      snap(twice(base, null, '/app/map_0003c'), '2026-11-24T21:10:00.000Z'),
      snap(base.filter((_, i) => i % 5), '2026-11-24T21:15:00.000Z'),
      snap(base, '2026-11-24T21:20:00.000Z'),
    ];
    for (const d of docs) d.pins.sort((a, b) => a.path.localeCompare(b.path));
    const ids = docs.map((d) => saveSnapshot(fresh.store, d));
    // the definition: per snapshot, each leaked object once (smallest owner name, NULL only
    // when none; largest size), summed per status and owner
    const expected = docs.flatMap((d, i) => {
      const objects = new Map<string, { status: string; owner: string | null | undefined; bytes: number }>();
      for (const p of d.pins.filter(isLeak)) {
        const k = `${p.status}:${p.object!.id}`;
        const o = objects.get(k) ?? { status: p.status, owner: undefined, bytes: 0 };
        const owner = p.owner.tool;
        if (o.owner === undefined || (owner !== null && (o.owner === null || owner < o.owner))) o.owner = owner;
        o.bytes = Math.max(o.bytes, p.object!.memlockBytes);
        objects.set(k, o);
      }
      const sums = new Map<string, { snapshotId: number; status: string; owner: string | null; bytes: number }>();
      for (const o of objects.values()) {
        const k = `${o.status}:${o.owner}`;
        const e = sums.get(k) ?? { snapshotId: ids[i]!, status: o.status, owner: o.owner ?? null, bytes: 0 };
        e.bytes += o.bytes;
        sums.set(k, e);
      }
      return [...sums.values()];
    });
    const key = (l: { snapshotId: number; status: string; owner: string | null }) => `${l.snapshotId} ${l.status} ${l.owner}`;
    const got = historySeries(fresh.store).leakBytes;
    expect(new Map(got.map((l) => [key(l), l.bytes]))).toEqual(new Map(expected.map((l) => [key(l), l.bytes])));
    expect(got).toHaveLength(expected.length);
  });

  it('the leak history counts every snapshot a shared row stands for', () => {
    const base = pins(24);
    const fewer = structuredClone(base).filter((p) => p.status !== 'leaked' || p.object!.id % 2 === 0);
    const docs = [snap(base, '2026-11-24T21:00:00.000Z'), snap(base, '2026-11-24T21:05:00.000Z'), snap(fewer, '2026-11-24T21:10:00.000Z')];
    const ids = docs.map((d) => saveSnapshot(fresh.store, d));
    const series = historySeries(fresh.store);
    for (const [i, d] of docs.entries()) {
      const expected = d.pins.filter(isLeak).reduce((s, p) => s + p.object!.memlockBytes, 0);
      const got = series.leakBytes.filter((l) => l.snapshotId === ids[i]).reduce((s, l) => s + l.bytes, 0);
      expect(got).toBe(expected);
    }
  });
});

describe('sections found as the latest snapshot stored them', () => {
  const digestsOff = (table: string) => fresh.store.db.prepare(`UPDATE ${table} SET digest = NULL WHERE last_snapshot_id IS NULL`).run();

  it('keep every open row without looking at one, and each snapshot reads back exactly', () => {
    const base = pins(30);
    const t = ['2026-11-24T21:00:00.000Z', '2026-11-24T21:05:00.000Z', '2026-11-24T21:10:00.000Z'];
    const s1 = save(snap(base, t[0]!), objectsOf(base, t[0]!));
    // with the rows' own digests gone, only the sections' digests can tell them unchanged
    digestsOff('pins');
    digestsOff('host_objects');
    const s2 = save(snap(base, t[1]!), s1.objects);
    expect([count('pins'), count('host_objects')]).toEqual([30, 30]);
    // the same pins in the same boot: the sightings, and the object cache, stand for s2 now
    expect(count('sightings')).toBe(8);
    expect(fresh.store.db.prepare('SELECT snapshot_id AS s FROM object_cache').get()).toEqual({ s: s2.id });
    expect(pinObjectCache(fresh.store, s2.doc.snapshot.bootId)).toEqual(objectCacheOf(s2.doc.pins));
    const changed = structuredClone(base);
    changed[5]!.reasons = ['changed'];
    const s3 = save(snap(changed, t[2]!), s1.objects);
    // one pin changed: the pins are compared row by row, and no row has a digest left
    expect([count('pins'), count('host_objects')]).toEqual([60, 30]);
    for (const s of [s1, s2, s3]) expectExact(s);
  });

  it('are not taken after a document in another order, a resident save, or prune, and stay exact', () => {
    const base = pins(12);
    const s1 = save(snap(base, '2026-11-24T21:00:00.000Z'));
    const s2 = save(snap([...base].reverse(), '2026-11-24T21:05:00.000Z'));
    const s3 = save(snap(base, '2026-11-24T21:10:00.000Z'));
    expect(count('pins')).toBe(24);
    const s4id = saveSnapshot(fresh.store, snap(base, '2026-11-24T21:15:00.000Z'), undefined, { remember: true });
    const s5 = save(snap(base, '2026-11-24T21:20:00.000Z'));
    expect(count('pins')).toBe(24);
    pruneSnapshots(fresh.store, { keep: 1 });
    const s6 = save(snap(base, '2026-11-24T21:25:00.000Z'));
    expect(count('pins')).toBe(12);
    for (const s of [s5, s6]) expectExact(s);
    expect([s1, s2, s3].every((s) => s.id < s4id)).toBe(true);
  });
});

describe('sortPins', () => {
  it('puts pins in comparePins order, instance by instance', () => {
    const paths = ['/b', '/a-c', '/a/b', '/A', '/a_b', '/ä', '/10', '/9', '/a.b', '/a b', '/Z', '/z'];
    const pins = ['0:41', '0:40', '0:100', '0:9'].flatMap((instance) => paths.map((path) => ({ instance, path })));
    // a fixed shuffle, so that a failure reproduces
    const shuffled = pins.map((p, i) => ({ p, k: (i * 7919) % 101 })).sort((a, b) => a.k - b.k).map(({ p }) => p);
    expect(sortPins([...shuffled])).toEqual([...shuffled].sort(comparePins));
  });
});
