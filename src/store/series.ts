// The history as time series, for `pinleak report`: aggregated per snapshot, per status,
// per owner from a few queries over small rows, so that 10,000 snapshots never cost
// 10,000 documents loaded whole.
import type { ScanError, SnapshotMeta, Summary } from '../model.js';
import { guarded, type Store } from './db.js';
import { stmt } from './codec.js';
import { metaOf, type SnapshotRow } from './fields.js';
import { pushTo } from '../lists.js';

export interface SeriesPoint {
  meta: SnapshotMeta;
  summary: Summary;
  /** the scan's errors about namespaces and instances it could not read, one per scope */
  viewErrors: ScanError[];
}

/** Memory held by the leaks of one owner tool (null: none known) in one snapshot, each object once. */
export interface LeakBytes {
  snapshotId: number;
  status: 'orphaned' | 'leaked';
  owner: string | null;
  bytes: number;
}

export interface HistorySeries {
  /** oldest first, by the time each snapshot was taken */
  points: SeriesPoint[];
  leakBytes: LeakBytes[];
}

// `since`: ISO time; snapshots taken before it are left out. ISO times in UTC compare as text.
const IN_RANGE = 'SELECT id FROM snapshots WHERE taken_at >= ?';

/**
 * The leak rows (with their objects) that stand for some snapshot in range: a row stands
 * for every snapshot from snapshot_id through last_snapshot_id (NULL: the latest).
 */
const LEAK_ROWS = `
  SELECT p.snapshot_id, p.last_snapshot_id, p.status, p.owner_tool, o.kind, o.obj_id, o.memlock_bytes
  FROM pins p JOIN objects o ON o.id = p.object_id
  WHERE p.status IN ('orphaned', 'leaked')
    AND (p.last_snapshot_id IS NULL OR p.last_snapshot_id >= (SELECT MIN(id) FROM snapshots WHERE taken_at >= ?))`;

type LeakRow = [first: number, last: number | null, status: LeakBytes['status'], owner: string | null, kind: string, objId: number, bytes: number | null];

/** The first index of `ids` (ascending) at or above `id`. */
function lowerBound(ids: readonly number[], id: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Each object counts once per snapshot and status, as in the snapshot's summary, so the
 * owners of one status add up to summary.memlockBytes of that status. An object pinned by
 * several owners (two paths) goes to one of them: a known owner before none (the smallest
 * name). Rows stand for runs of snapshots, so the sums are built as runs too: per object a
 * run of snapshots with one owner and size adds to its owner's difference array, and a
 * prefix sum gives every snapshot's bytes, in time linear in rows plus snapshots.
 */
function leakBytes(db: Store['db'], since: string): LeakBytes[] {
  const ids = (stmt(db, IN_RANGE + ' ORDER BY id').raw(true).all(since) as [number][]).map((r) => r[0]);
  if (ids.length === 0) return [];
  const byObject = new Map<string, { status: LeakBytes['status']; from: number; to: number; owner: string | null; bytes: number }[]>();
  for (const [first, last, status, owner, kind, objId, bytes] of stmt(db, LEAK_ROWS).raw(true).all(since) as LeakRow[]) {
    // the snapshots in range the row stands for: indexes [from, to)
    const from = lowerBound(ids, first);
    const to = last === null ? ids.length : lowerBound(ids, last + 1);
    if (from >= to) continue;
    pushTo(byObject, `${status}\0${kind}\0${objId}`, { status, from, to, owner, bytes: bytes ?? 0 });
  }
  // per (status, owner): difference arrays of bytes and of objects counted
  const series = new Map<string, { status: LeakBytes['status']; owner: string | null; bytes: Float64Array; count: Int32Array }>();
  const add = (status: LeakBytes['status'], owner: string | null, from: number, to: number, bytes: number) => {
    const k = `${status}\0${owner ?? '\u0001'}`;
    let sr = series.get(k);
    if (!sr) series.set(k, (sr = { status, owner, bytes: new Float64Array(ids.length + 1), count: new Int32Array(ids.length + 1) }));
    sr.bytes[from] += bytes;
    sr.bytes[to] -= bytes;
    sr.count[from]! += 1;
    sr.count[to]! -= 1;
  };
  for (const rows of byObject.values()) {
    if (rows.length === 1) {
      const r = rows[0]!;
      add(r.status, r.owner, r.from, r.to, r.bytes);
      continue;
    }
    // several pins of one object: between consecutive run boundaries the same rows stand,
    // and the object counts once, for the smallest owner name and the largest size
    const cuts = [...new Set(rows.flatMap((r) => [r.from, r.to]))].sort((a, b) => a - b);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const a = cuts[i]!;
      const b = cuts[i + 1]!;
      let owner: string | null | undefined;
      let bytes = 0;
      for (const r of rows) {
        if (r.from > a || r.to < b) continue;
        // SQL's MIN(): NULL only when every owner is NULL
        if (owner === undefined || (r.owner !== null && (owner === null || r.owner < owner))) owner = r.owner;
        bytes = Math.max(bytes, r.bytes);
      }
      if (owner !== undefined) add(rows[0]!.status, owner, a, b, bytes);
    }
  }
  const out: LeakBytes[] = [];
  for (const sr of series.values()) {
    let bytes = 0;
    let count = 0;
    for (let i = 0; i < ids.length; i++) {
      bytes += sr.bytes[i]!;
      count += sr.count[i]!;
      if (count > 0) out.push({ snapshotId: ids[i]!, status: sr.status, owner: sr.owner, bytes });
    }
  }
  // as SQL's GROUP BY gave them: by snapshot, status, owner (NULL first)
  return out.sort((x, y) => x.snapshotId - y.snapshotId || (x.status < y.status ? -1 : x.status > y.status ? 1 : 0)
    || (x.owner === y.owner ? 0 : x.owner === null ? -1 : y.owner === null ? 1 : x.owner < y.owner ? -1 : 1));
}

// Namespace and instance errors are the part of a partial view a stored snapshot records;
// one row per scope, however many errors one hostile instance produced.
const VIEW_ERRORS = `
  SELECT snapshot_id, scope, MIN(message) AS message FROM scan_errors
  WHERE (scope LIKE 'namespace %' OR scope LIKE 'instance %') AND snapshot_id IN (${IN_RANGE})
  GROUP BY snapshot_id, scope ORDER BY snapshot_id, scope`;

export const historySeries = guarded(function historySeries(store: Store, since: string = ''): HistorySeries {
  const db = store.db;
  const errors = new Map<number, ScanError[]>();
  for (const r of stmt(db, VIEW_ERRORS).all(since) as { snapshot_id: number; scope: string; message: string }[]) {
    pushTo(errors, r.snapshot_id, { scope: r.scope, message: r.message });
  }
  const points = (stmt(db, 'SELECT * FROM snapshots WHERE taken_at >= ? ORDER BY taken_at, id').all(since) as SnapshotRow[])
    .map((r) => ({ meta: metaOf(r), summary: JSON.parse(r.summary_json) as Summary, viewErrors: errors.get(r.id) ?? [] }));
  return { points, leakBytes: leakBytes(db, since) };
});
