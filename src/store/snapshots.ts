// Listing stored snapshots and naming one (SNAPSHOT arguments).
import type { SnapshotMeta } from '../model.js';
import { guarded, type Store } from './db.js';
import { stmt } from './codec.js';
import { metaOf, unknownSnapshot, type SnapshotRow } from './fields.js';

export interface SnapshotListEntry extends SnapshotMeta {
  pins: number;
  leaks: number;
  leakedBytes: number;
}

/** Every stored snapshot, oldest first, with its pin, leak and leaked-memory counts. */
export const listSnapshots = guarded(function listSnapshots(store: Store): SnapshotListEntry[] {
  return (stmt(store.db, 'SELECT * FROM snapshots ORDER BY id').all() as SnapshotRow[]).map((r) => ({
    ...metaOf(r), pins: r.pin_count, leaks: r.leak_count, leakedBytes: r.leaked_bytes,
  }));
});

/**
 * A snapshot id from what a user typed: a numeric id, `latest`, `latest~N` (the N-th
 * before the latest), or a label (the latest snapshot with that label). A number that
 * is no snapshot id is tried as a label too.
 */
/** `latest` or `latest~N` (N captured) */
const LATEST = /^latest(?:~(\d+))?$/;
const SNAPSHOT_ID = /^\d+$/;

/** Does `spec` read as a snapshot id, `latest` or `latest~N` (never reaching a label of that name)? */
export const namesSnapshotById = (spec: string): boolean => LATEST.test(spec) || SNAPSHOT_ID.test(spec);

export const resolveSnapshot = guarded(function resolveSnapshot(store: Store, spec: string): number {
  const db = store.db;
  const back = LATEST.exec(spec);
  if (back) {
    const n = back[1] === undefined ? 0 : Number(back[1]);
    if (!Number.isSafeInteger(n)) throw unknownSnapshot(spec);
    const row = stmt(db, 'SELECT id FROM snapshots ORDER BY id DESC LIMIT 1 OFFSET ?').get(n) as { id: number } | undefined;
    if (!row) throw unknownSnapshot(spec);
    return row.id;
  }
  if (SNAPSHOT_ID.test(spec) && Number.isSafeInteger(Number(spec))) {
    const row = stmt(db, 'SELECT id FROM snapshots WHERE id = ?').get(Number(spec)) as { id: number } | undefined;
    if (row) return row.id;
  }
  const row = stmt(db, 'SELECT id FROM snapshots WHERE label = ? ORDER BY id DESC LIMIT 1').get(spec) as { id: number } | undefined;
  if (!row) throw unknownSnapshot(spec);
  return row.id;
});
