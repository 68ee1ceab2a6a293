// The objects of a snapshot in the store: written with it, read back exactly, the history
// of what nothing explains, and databases from before objects were recorded.
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { HostObject } from '../../src/model.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { DB_SCHEMA_VERSION, listSnapshots, loadObjects, openStore, pruneSnapshots, saveSnapshot, unexplainedSince } from '../../src/store/index.js';
import { doc, storeForEachTest } from './fixtures.js';

const fresh = storeForEachTest('pinleak-objects-');

const docker = { runtime: 'docker', id: 'b'.repeat(64), podUid: null, cgroup: '/docker/x' };
function objects(takenAt: string): HostObject[] {
  return [
    {
      kind: 'prog', id: 10, name: 'cil_from_netdev', type: 'sched_cls', memlockBytes: 4096, loadedAt: '2026-11-24T09:00:00.000Z', loaderUid: 0,
      pins: [{ instance: '0:39', path: '/tc/globals/p', status: 'held' }],
      holders: [{ pid: 5, startTime: 9, comm: 'cilium-agent', fds: [3, 4], mntNs: 1, container: docker, mmapped: false }],
      referencedBy: [{ kind: 'link', id: 20, via: 'behind live tcx link 20' }], references: [{ kind: 'map', id: 1, via: 'used by program 10 (cil_from_netdev)' }],
      owner: { tool: 'cilium', from: 'name', persistent: true, container: null, via: null }, unexplained: null, note: null,
    },
    {
      kind: 'map', id: 3, name: '', type: 'unknown', memlockBytes: null, loadedAt: null, loaderUid: null, pins: [], holders: [],
      referencedBy: [], references: [], owner: null, unexplained: { refs: null, users: null, since: takenAt, sinceSnapshot: null },
      note: 'not opened',
    },
  ];
}

describe('objects in the store', () => {
  it('are read back exactly as written, with the snapshot as the first sighting of what nothing explains', () => {
    const written = objects('2026-11-24T10:00:00.000Z');
    (written[0] as unknown as Record<string, unknown>).futureField = { a: 1 }; // a field added later survives
    const id = saveSnapshot(fresh.store, doc([]), written);
    expect(written[1]!.unexplained!.sinceSnapshot).toBe(id);
    const back = loadObjects(fresh.store, id);
    expect(back.snapshot.id).toBe(id);
    expect(back.objects).toEqual(JSON.parse(JSON.stringify(written)));
  });

  it('carry the first unexplained sighting of a boot over, also once that snapshot is pruned', () => {
    const first = saveSnapshot(fresh.store, doc([]), objects('2026-11-24T10:00:00.000Z'));
    saveSnapshot(fresh.store, doc([], { takenAt: '2026-11-24T11:00:00.000Z' }), []);
    const since = unexplainedSince(fresh.store, 'boot-a', [{ kind: 'map', id: 3 }, { kind: 'map', id: 4 }]);
    expect([...since]).toEqual([['map:3', { since: '2026-11-24T10:00:00.000Z', sinceSnapshot: first }]]);
    expect(unexplainedSince(fresh.store, 'boot-b', [{ kind: 'map', id: 3 }]).size).toBe(0); // ids mean nothing across boots

    const carried = objects('2026-11-24T12:00:00.000Z');
    Object.assign(carried[1]!.unexplained!, since.get('map:3'));
    const third = saveSnapshot(fresh.store, doc([], { takenAt: '2026-11-24T12:00:00.000Z' }), carried);
    pruneSnapshots(fresh.store, { keep: 1 });
    expect(listSnapshots(fresh.store).map((s) => s.id)).toEqual([third]);
    expect(unexplainedSince(fresh.store, 'boot-a', [{ kind: 'map', id: 3 }]).get('map:3')).toEqual({ since: '2026-11-24T10:00:00.000Z', sinceSnapshot: first });
    const rows = fresh.store.db.prepare('SELECT COUNT(*) AS n FROM host_objects').get() as { n: number };
    expect(rows.n).toBe(2); // the pruned snapshots' objects went with them
  });

  it('a snapshot saved without objects has none recorded (objects null), not an empty host', () => {
    const id = saveSnapshot(fresh.store, doc([]));
    expect(loadObjects(fresh.store, id).objects).toBeNull();
    const empty = saveSnapshot(fresh.store, doc([]), []);
    expect(loadObjects(fresh.store, empty).objects).toEqual([]);
  });

  it('migrates a schema 1 database forward, its snapshots kept, with no objects recorded for them', () => {
    const p = path.join(fresh.dir, 'v1.db');
    const raw = new Database(p);
    raw.pragma('auto_vacuum = INCREMENTAL');
    MIGRATIONS[0]!(raw);
    raw.pragma('user_version = 1');
    raw.prepare(`INSERT INTO snapshots (schema_version, taken_at, boot_id, pin_count, leak_count, leaked_bytes, summary_json)
      VALUES (1, '2026-11-24T10:00:00.000Z', 'boot-a', 0, 0, 0, '{}')`).run();
    raw.close();
    const s = openStore(p);
    try {
      expect(s.db.pragma('user_version', { simple: true })).toBe(DB_SCHEMA_VERSION);
      expect(loadObjects(s, 1).objects).toBeNull();
      const id = saveSnapshot(s, doc([]), objects('2026-11-24T11:00:00.000Z'));
      expect(loadObjects(s, id).objects).toHaveLength(2);
    } finally {
      s.close();
    }
  });
});
