// Dropping old snapshots and giving the space back to the file system.
import { PinleakError } from '../errors.js';
import { guarded, type Store } from './db.js';
import { stmt } from './codec.js';

export interface PruneOptions {
  /** Keep at most this many snapshots (the newest). */
  keep?: number;
  /** Drop snapshots taken more than this long before `now`. */
  olderThanMs?: number;
  now?: Date;
}

/**
 * Delete snapshots (their rows go with them, ON DELETE CASCADE), then PRAGMA
 * incremental_vacuum and a WAL checkpoint so the file shrinks. With both options a
 * snapshot goes when either says so (after prune both limits hold). The latest snapshot
 * is never deleted. Creator evidence (`sightings`, `creators`) is kept while its object is
 * still in a remaining snapshot, with the id of the snapshot it was first seen in.
 */
export const pruneSnapshots = guarded(function pruneSnapshots(store: Store, opts: PruneOptions): { removed: number } {
  const { keep, olderThanMs } = opts;
  if (keep !== undefined && !(Number.isSafeInteger(keep) && keep >= 0)) {
    throw new PinleakError(`--keep must be a whole number of snapshots, not ${keep}`);
  }
  if (olderThanMs !== undefined && !(Number.isFinite(olderThanMs) && olderThanMs >= 0)) {
    throw new PinleakError(`--older-than must be a non-negative duration, not ${olderThanMs} ms`);
  }
  if (keep === undefined && olderThanMs === undefined) return { removed: 0 };
  const db = store.db;
  const now = (opts.now ?? new Date()).getTime();

  const removed = db.transaction((): number => {
    const rows = stmt(db, 'SELECT id, taken_at FROM snapshots ORDER BY id DESC').all() as { id: number; taken_at: string }[];
    const doomed: number[] = [];
    rows.forEach((r, i) => {
      if (i === 0) return; // the latest
      const byCount = keep !== undefined && i >= keep;
      const t = Date.parse(r.taken_at);
      const byAge = olderThanMs !== undefined && Number.isFinite(t) && t < now - olderThanMs;
      if (byCount || byAge) doomed.push(r.id);
    });
    if (doomed.length === 0) return 0;

    db.exec(`CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY); DELETE FROM prune_ids;`);
    const insId = db.prepare('INSERT INTO prune_ids (id) VALUES (?)');
    for (const id of doomed) insId.run(id);
    db.exec(`
      -- A shared row (src/store/shared.ts) that still stands for a remaining snapshot moves
      -- to the first of them, and the objects and processes rows it uses with it, so the
      -- cascade below takes only what no remaining snapshot needs.
      CREATE TEMP TABLE IF NOT EXISTS prune_moves (id INTEGER PRIMARY KEY, to_id INTEGER NOT NULL); DELETE FROM prune_moves;
      INSERT INTO prune_moves (id, to_id)
        SELECT p.id, (SELECT MIN(s.id) FROM snapshots s WHERE s.id > p.snapshot_id AND s.id NOT IN (SELECT id FROM prune_ids)) AS to_id
        FROM pins p WHERE p.snapshot_id IN (SELECT id FROM prune_ids) AND to_id <= COALESCE(p.last_snapshot_id, to_id);
      UPDATE pins SET snapshot_id = (SELECT to_id FROM prune_moves WHERE prune_moves.id = pins.id)
        WHERE id IN (SELECT id FROM prune_moves);
      UPDATE objects SET snapshot_id = (SELECT MIN(p.snapshot_id) FROM pins p
          WHERE p.object_id = objects.id AND p.snapshot_id NOT IN (SELECT id FROM prune_ids))
        WHERE snapshot_id IN (SELECT id FROM prune_ids)
          AND EXISTS (SELECT 1 FROM pins p WHERE p.object_id = objects.id AND p.snapshot_id NOT IN (SELECT id FROM prune_ids));
      UPDATE processes SET snapshot_id = (SELECT MIN(p.snapshot_id) FROM holders h JOIN pins p ON p.id = h.pin_id
          WHERE h.process_id = processes.id AND p.snapshot_id NOT IN (SELECT id FROM prune_ids))
        WHERE snapshot_id IN (SELECT id FROM prune_ids)
          AND EXISTS (SELECT 1 FROM holders h JOIN pins p ON p.id = h.pin_id
                      WHERE h.process_id = processes.id AND p.snapshot_id NOT IN (SELECT id FROM prune_ids));
      DELETE FROM prune_moves;
      INSERT INTO prune_moves (id, to_id)
        SELECT o.id, (SELECT MIN(s.id) FROM snapshots s WHERE s.id > o.snapshot_id AND s.id NOT IN (SELECT id FROM prune_ids)) AS to_id
        FROM host_objects o WHERE o.snapshot_id IN (SELECT id FROM prune_ids) AND to_id <= COALESCE(o.last_snapshot_id, to_id);
      UPDATE host_objects SET snapshot_id = (SELECT to_id FROM prune_moves WHERE prune_moves.id = host_objects.id)
        WHERE id IN (SELECT id FROM prune_moves);
      DELETE FROM prune_moves;
      DELETE FROM snapshots WHERE id IN (SELECT id FROM prune_ids);
      -- Creator evidence (holder sightings, run records) stays while its object is still in
      -- some remaining snapshot of its boot; once the object is gone everywhere, so is it.
      DELETE FROM sightings WHERE NOT EXISTS (
        SELECT 1 FROM objects o JOIN snapshots s ON s.id = o.snapshot_id
        WHERE o.kind = sightings.kind AND o.obj_id = sightings.obj_id AND s.boot_id = sightings.boot_id);
      DELETE FROM creators WHERE NOT EXISTS (
        SELECT 1 FROM objects o JOIN snapshots s ON s.id = o.snapshot_id
        WHERE o.kind = creators.kind AND o.obj_id = creators.obj_id AND s.boot_id = creators.boot_id);
      DELETE FROM stale_runs WHERE NOT EXISTS (
        SELECT 1 FROM objects o JOIN snapshots s ON s.id = o.snapshot_id
        WHERE o.kind = stale_runs.kind AND o.obj_id = stale_runs.obj_id AND s.boot_id = stale_runs.boot_id);
      DELETE FROM prune_ids;`)
    return doomed.length;
  }).immediate();

  if (removed > 0) {
    // Freed pages go back to the file system only with auto_vacuum=INCREMENTAL, and in
    // WAL mode the main file is truncated when the WAL is checkpointed.
    db.exec('PRAGMA incremental_vacuum');
    db.pragma('wal_checkpoint(TRUNCATE)');
  }
  return { removed };
});
