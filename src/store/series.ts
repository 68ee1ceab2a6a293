// The history as time series, for `pinleak report`: aggregated in SQL (per snapshot, per
// status, per owner), so that 10,000 snapshots cost a few queries over small rows instead
// of 10,000 documents loaded whole.
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
 * Each object counts once per snapshot and status, as in the snapshot's summary, so the
 * owners of one status add up to summary.memlockBytes of that status. An object pinned by
 * several owners (two paths) goes to one of them: a known owner before none.
 */
const LEAK_BYTES = `
  SELECT snapshot_id, status, owner, SUM(bytes) AS bytes FROM (
    SELECT p.snapshot_id, p.status, MIN(p.owner_tool) AS owner, MAX(o.memlock_bytes) AS bytes
    FROM pins p JOIN objects o ON o.id = p.object_id
    WHERE p.status IN ('orphaned', 'leaked') AND p.snapshot_id IN (${IN_RANGE})
    GROUP BY p.snapshot_id, p.status, o.kind, o.obj_id)
  GROUP BY snapshot_id, status, owner`;

// Namespace and instance errors are the part of a partial view a stored snapshot records;
// one row per scope, however many errors one hostile instance produced.
const VIEW_ERRORS = `
  SELECT snapshot_id, scope, MIN(message) AS message FROM scan_errors
  WHERE (scope LIKE 'namespace %' OR scope LIKE 'instance %') AND snapshot_id IN (${IN_RANGE})
  GROUP BY snapshot_id, scope ORDER BY snapshot_id, scope`;

export const historySeries = guarded(function historySeries(store: Store, since = ''): HistorySeries {
  const db = store.db;
  const errors = new Map<number, ScanError[]>();
  for (const r of stmt(db, VIEW_ERRORS).all(since) as { snapshot_id: number; scope: string; message: string }[]) {
    pushTo(errors, r.snapshot_id, { scope: r.scope, message: r.message });
  }
  const points = (stmt(db, 'SELECT * FROM snapshots WHERE taken_at >= ? ORDER BY taken_at, id').all(since) as SnapshotRow[])
    .map((r) => ({ meta: metaOf(r), summary: JSON.parse(r.summary_json) as Summary, viewErrors: errors.get(r.id) ?? [] }));
  const leakBytes = (stmt(db, LEAK_BYTES).all(since) as { snapshot_id: number; status: LeakBytes['status']; owner: string | null; bytes: number }[])
    .map((r) => ({ snapshotId: r.snapshot_id, status: r.status, owner: r.owner, bytes: r.bytes }));
  return { points, leakBytes };
});
