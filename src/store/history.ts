// Who held or created an object before: the history behind creator evidence #1 and #2
// (SPEC section 2). Object ids, pids and start times only mean something within one
// boot, so every query is scoped by boot id.
import { objectKey, type BpfObject, type Container, type ObjectRef } from '../model.js';
import { guarded, type Store } from './db.js';
import { fromJson, stmt, toJson } from './codec.js';
import { standsFor } from './shared.js';

export interface HolderSighting {
  pid: number;
  startTime: number;
  comm: string;
  /** the first snapshot it was seen in (the sighting outlives the snapshot's pruning) */
  snapshotId: number;
  container: Container | null;
}

export interface CreatorRecord {
  kind: string;
  id: number;
  pid: number;
  startTime: number;
  comm: string;
  container: Container | null;
  source: string;
  snapshotId: number | null;
}


/** Distinct objects as a JSON array of [kind, id] pairs, for json_each(). */
function objectsParam(objects: readonly ObjectRef[]): { json: string; keys: string[] } {
  const seen = new Set<string>();
  const pairs: [string, number][] = [];
  for (const o of objects) {
    const k = objectKey(o.kind, o.id);
    if (seen.has(k)) continue;
    seen.add(k);
    pairs.push([o.kind, o.id]);
  }
  return { json: JSON.stringify(pairs), keys: [...seen] };
}

/**
 * For each object, every distinct (pid, startTime) that held it in any stored snapshot
 * of boot `bootId`, with the first snapshot it was seen in, ordered by that snapshot's
 * id. One indexed query however many objects (a json_each() list joined on the primary
 * key of `sightings`). Every requested object has an entry, empty when never held.
 */
/** earliestHolders' query, exported so that a test explains this very statement. Parameters: objectsParam's json, the boot id. */
export const EARLIEST_HOLDERS_SQL = `
    SELECT h.kind, h.obj_id, h.pid, h.start_time, h.comm, h.container_json, h.first_snapshot_id
    FROM json_each(?) AS j
    CROSS JOIN sightings AS h
      ON h.boot_id = ? AND h.kind = json_extract(j.value, '$[0]') AND h.obj_id = json_extract(j.value, '$[1]')
    ORDER BY h.first_snapshot_id, h.pid, h.start_time`;

export const earliestHolders = guarded(function earliestHolders(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, HolderSighting[]> {
  const { json, keys } = objectsParam(objects);
  const out = new Map<string, HolderSighting[]>();
  for (const k of keys) out.set(k, []);
  if (keys.length === 0) return out;
  const rows = stmt(store.db, EARLIEST_HOLDERS_SQL).all(json, bootId) as {
    kind: string; obj_id: number; pid: number; start_time: number; comm: string | null; container_json: string | null;
    first_snapshot_id: number;
  }[];
  for (const r of rows) {
    out.get(objectKey(r.kind, r.obj_id))!.push({
      pid: r.pid, startTime: r.start_time, comm: r.comm ?? '', snapshotId: r.first_snapshot_id,
      container: fromJson<Container | null>(r.container_json) ?? null,
    });
  }
  return out;
});

/**
 * Record the processes `pinleak run` saw pinning objects. The first record of an
 * object (within a boot) wins: later ones are ignored.
 */
export const recordCreators = guarded(function recordCreators(store: Store, bootId: string, rows: readonly CreatorRecord[]): void {
  if (rows.length === 0) return;
  const ins = stmt(store.db, `INSERT OR IGNORE INTO creators
      (boot_id, kind, obj_id, pid, start_time, comm, container_json, source, snapshot_id) VALUES (?,?,?,?,?,?,?,?,?)`);
  store.db.transaction(() => {
    for (const r of rows) {
      ins.run(bootId, r.kind, r.id, r.pid, r.startTime, r.comm, toJson(r.container ?? null), r.source, r.snapshotId ?? null);
    }
  }).immediate();
});

/** The recorded creator of each object that has one (objects without are absent from the map). */
export const recordedCreators = guarded(function recordedCreators(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, CreatorRecord> {
  const { json, keys } = objectsParam(objects);
  const out = new Map<string, CreatorRecord>();
  if (keys.length === 0) return out;
  const rows = stmt(store.db, `
    SELECT c.kind, c.obj_id, c.pid, c.start_time, c.comm, c.container_json, c.source, c.snapshot_id
    FROM json_each(?) AS j
    CROSS JOIN creators AS c
      ON c.boot_id = ? AND c.kind = json_extract(j.value, '$[0]') AND c.obj_id = json_extract(j.value, '$[1]')`).all(json, bootId) as {
    kind: string; obj_id: number; pid: number; start_time: number; comm: string | null; container_json: string | null;
    source: string | null; snapshot_id: number | null;
  }[];
  for (const r of rows) {
    out.set(objectKey(r.kind, r.obj_id), {
      kind: r.kind, id: r.obj_id, pid: r.pid, startTime: r.start_time, comm: r.comm ?? '',
      container: fromJson<Container | null>(r.container_json) ?? null, source: r.source ?? 'run', snapshotId: r.snapshot_id,
    });
  }
  return out;
});

/**
 * For each object that has one, the start of its unbroken run of stored snapshots of boot
 * `bootId` that found it stale (issue 14). One indexed query (json_each joined on the
 * primary key of `stale_runs`), however many objects.
 */
export const staleRuns = guarded(function staleRuns(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, { since: string; snapshotId: number }> {
  const { json, keys } = objectsParam(objects);
  const out = new Map<string, { since: string; snapshotId: number }>();
  if (keys.length === 0) return out;
  const rows = stmt(store.db, `
    SELECT r.kind, r.obj_id, r.since, r.first_snapshot_id
    FROM json_each(?) AS j
    CROSS JOIN stale_runs AS r
      ON r.boot_id = ? AND r.kind = json_extract(j.value, '$[0]') AND r.obj_id = json_extract(j.value, '$[1]')`).all(json, bootId) as {
    kind: string; obj_id: number; since: string; first_snapshot_id: number;
  }[];
  for (const r of rows) out.set(objectKey(r.kind, r.obj_id), { since: r.since, snapshotId: r.first_snapshot_id });
  return out;
});


/**
 * The objects behind the pins of the latest snapshot of this boot, keyed by
 * `${instance}\0${inode}\0${createdAt}`. A pin never changes the object it holds, so a pin
 * with the same instance, inode and ctime still holds this one: a scan need not re-open it.
 */
export const pinObjectCache = guarded(function pinObjectCache(store: Store, bootId: string): Map<string, BpfObject> {
  const out = new Map<string, BpfObject>();
  const latest = stmt(store.db, 'SELECT id FROM snapshots WHERE boot_id = ? ORDER BY id DESC LIMIT 1').get(bootId) as { id: number } | undefined;
  if (!latest) return out;
  // raw rows: 10,000 of them every scan
  const rows = stmt(store.db, `SELECT p.instance, p.inode, p.created_at, o.kind, o.obj_id, o.name, o.type, o.memlock_bytes
      FROM pins p JOIN objects o ON o.id = p.object_id WHERE ${standsFor('p')}`).raw(true).all(latest.id, latest.id) as
    [string, number, string, BpfObject['kind'], number, string | null, string | null, number | null][];
  for (const [instance, inode, createdAt, kind, id, name, type, memlock] of rows) {
    out.set(`${instance}\0${inode}\0${createdAt}`, { kind, id, name: name ?? '', type: type ?? '', memlockBytes: memlock ?? 0 });
  }
  return out;
});
