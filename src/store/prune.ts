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
 * is never deleted. Holder history (`sightings`) whose first snapshot was deleted is
 * re-derived from the snapshots that remain.
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

    db.exec(`CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY);
      CREATE TEMP TABLE IF NOT EXISTS prune_keys (boot_id TEXT, kind TEXT, obj_id INTEGER, pid INTEGER, start_time INTEGER);
      DELETE FROM prune_ids; DELETE FROM prune_keys;`);
    const insId = db.prepare('INSERT INTO prune_ids (id) VALUES (?)');
    for (const id of doomed) insId.run(id);
    db.exec(`
      INSERT INTO prune_keys SELECT boot_id, kind, obj_id, pid, start_time FROM sightings
        WHERE first_snapshot_id IN (SELECT id FROM prune_ids);
      DELETE FROM snapshots WHERE id IN (SELECT id FROM prune_ids);
      -- A process seen in a later, kept snapshot: its first sighting moves there.
      INSERT OR IGNORE INTO sightings (boot_id, kind, obj_id, pid, start_time, first_snapshot_id, comm, container_json)
        SELECT k.boot_id, k.kind, k.obj_id, k.pid, k.start_time, MIN(s.id), pr.comm, pr.container_json
        FROM prune_keys k
        JOIN processes pr ON pr.pid = k.pid AND pr.start_time = k.start_time
        JOIN snapshots s ON s.id = pr.snapshot_id AND s.boot_id = k.boot_id
        JOIN holders h ON h.process_id = pr.id
        JOIN pins p ON p.id = h.pin_id
        JOIN objects o ON o.id = p.object_id AND o.kind = k.kind AND o.obj_id = k.obj_id
        GROUP BY k.boot_id, k.kind, k.obj_id, k.pid, k.start_time;
      DELETE FROM prune_ids; DELETE FROM prune_keys;`);
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
