// Who held or created an object before: the history behind creator evidence #1 and #2
// (SPEC section 2). Object ids, pids and start times only mean something within one
// boot, so every query is scoped by boot id.
import { objectCacheFrom, objectKey, pinObjectKey, type BpfObject, type Container, type ObjectCacheEntry, type ObjectRef } from '../model.js';
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


/** The boot-scoped evidence tables: each keyed by (boot_id, kind, obj_id, ...). */
export type EvidenceTable = 'sightings' | 'creators' | 'stale_runs' | 'pin_records';

/** The statement that joins a json_each() list of [kind, id] pairs to evidence table `table` (alias t). */
export const evidenceJoinSql = (table: EvidenceTable, columns: string, where = '', order = ''): string => `
    SELECT ${columns}
    FROM json_each(?) AS j
    CROSS JOIN ${table} AS t
      ON t.boot_id = ? AND t.kind = json_extract(j.value, '$[0]') AND t.obj_id = json_extract(j.value, '$[1]')
    ${where ? `WHERE ${where}` : ''} ${order ? `ORDER BY ${order}` : ''}`;

/**
 * The rows of evidence table `table` (alias t) of boot `bootId` about these objects. A scan
 * asks about every pinned object (10,000) while a table usually holds a few hundred rows
 * of the boot, or none: then every row of the boot is read and kept by a Set here (one
 * index range); otherwise one json_each() list of the objects joined on the table's
 * (boot_id, kind, obj_id) index. Either way one query, whatever the number of objects.
 */
export function evidenceRows<R extends { kind: string; obj_id: number }>(
  store: Store, table: EvidenceTable, bootId: string, objects: readonly ObjectRef[], columns: string, where = '', order = '',
): R[] {
  if (objects.length === 0) return [];
  // (counted first: most tables hold no row of the boot, and then no set of 10,000 keys is built)
  const n = (stmt(store.db, `SELECT COUNT(*) AS n FROM ${table} WHERE boot_id = ?`).get(bootId) as { n: number }).n;
  if (n === 0) return [];
  const pairs = new Map<string, [string, number]>();
  for (const o of objects) pairs.set(objectKey(o.kind, o.id), [o.kind, o.id]);
  if (n <= pairs.size) {
    const rows = stmt(store.db, `SELECT ${columns} FROM ${table} AS t WHERE t.boot_id = ?${where ? ` AND ${where}` : ''}${order ? ` ORDER BY ${order}` : ''}`)
      .all(bootId) as R[];
    return rows.filter((r) => pairs.has(objectKey(r.kind, r.obj_id)));
  }
  return stmt(store.db, evidenceJoinSql(table, columns, where, order)).all(JSON.stringify([...pairs.values()]), bootId) as R[];
}

/**
 * For each object, every distinct (pid, startTime) that held it in any stored snapshot
 * of boot `bootId`, with the first snapshot it was seen in, ordered by that snapshot's
 * id. One query however many objects (evidenceRows). Every requested object has an entry,
 * empty when never held.
 */
const SIGHTING_COLUMNS = 't.kind, t.obj_id, t.pid, t.start_time, t.comm, t.container_json, t.first_snapshot_id';
const SIGHTING_ORDER = 't.first_snapshot_id, t.pid, t.start_time';
/** earliestHolders' join, exported so that a test explains this very statement. Parameters: the [kind, id] pairs' JSON, the boot id. */
export const EARLIEST_HOLDERS_SQL = evidenceJoinSql('sightings', SIGHTING_COLUMNS, '', SIGHTING_ORDER);

export const earliestHolders = guarded(function earliestHolders(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, HolderSighting[]> {
  const out = new Map<string, HolderSighting[]>();
  for (const o of objects) out.set(objectKey(o.kind, o.id), []);
  const rows = evidenceRows(store, 'sightings', bootId, objects, SIGHTING_COLUMNS, '', SIGHTING_ORDER) as {
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
  const out = new Map<string, CreatorRecord>();
  const rows = evidenceRows(store, 'creators', bootId, objects, 't.kind, t.obj_id, t.pid, t.start_time, t.comm, t.container_json, t.source, t.snapshot_id') as {
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
 * `bootId` that found it stale (issue 14). One query however many objects (evidenceRows).
 */
export const staleRuns = guarded(function staleRuns(store: Store, bootId: string, objects: readonly ObjectRef[]): Map<string, { since: string; snapshotId: number }> {
  const out = new Map<string, { since: string; snapshotId: number }>();
  const rows = evidenceRows(store, 'stale_runs', bootId, objects, 't.kind, t.obj_id, t.since, t.first_snapshot_id') as {
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
  const latest = stmt(store.db, 'SELECT id FROM snapshots WHERE boot_id = ? ORDER BY id DESC LIMIT 1').get(bootId) as { id: number } | undefined;
  if (!latest) return new Map();
  // the entries the save of that snapshot kept (not a resident watch's: it keeps its own)
  const kept = stmt(store.db, 'SELECT entries FROM object_cache WHERE boot_id = ? AND snapshot_id = ?').get(bootId, latest.id) as { entries: string } | undefined;
  if (kept) return objectCacheFrom(JSON.parse(kept.entries) as ObjectCacheEntry[]);
  const out = new Map<string, BpfObject>();
  // raw rows: 10,000 of them every scan
  const rows = stmt(store.db, `SELECT p.instance, p.inode, p.created_at, o.kind, o.obj_id, o.name, o.type, o.memlock_bytes
      FROM pins p JOIN objects o ON o.id = p.object_id WHERE ${standsFor('p')}`).raw(true).all(latest.id, latest.id) as
    [string, number, string, BpfObject['kind'], number, string | null, string | null, number | null][];
  for (const [instance, inode, createdAt, kind, id, name, type, memlock] of rows) {
    out.set(pinObjectKey(instance, inode, Date.parse(createdAt)), { kind, id, name: name ?? '', type: type ?? '', memlockBytes: memlock ?? 0 });
  }
  return out;
});
