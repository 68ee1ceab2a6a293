// The audit trail of `pinleak clean`: one row per unpin, never pruned.
import { guarded, type Store } from './db.js';
import { stmt } from './codec.js';

export interface ActionRecord {
  at: string;
  action: 'unpin';
  instance: string;
  path: string;
  objectKind: string;
  objectId: number | null;
  bytes: number;
  actor: string;
  snapshotId: number | null;
}

export interface ActionEntry extends ActionRecord {
  id: number;
}

export const recordAction = guarded(function recordAction(store: Store, a: ActionRecord): number {
  return Number(stmt(store.db, `INSERT INTO actions (at, action, instance, path, object_kind, object_id, bytes, actor, snapshot_id)
      VALUES (?,?,?,?,?,?,?,?,?)`).run(a.at, a.action, a.instance, a.path, a.objectKind, a.objectId ?? null, a.bytes, a.actor,
    a.snapshotId ?? null).lastInsertRowid);
});

/** Every recorded action, oldest first. */
export const listActions = guarded(function listActions(store: Store): ActionEntry[] {
  return (stmt(store.db, 'SELECT * FROM actions ORDER BY id').all() as {
    id: number; at: string; action: 'unpin'; instance: string; path: string; object_kind: string; object_id: number | null;
    bytes: number; actor: string; snapshot_id: number | null;
  }[]).map((r) => ({
    id: r.id, at: r.at, action: r.action, instance: r.instance, path: r.path, objectKind: r.object_kind, objectId: r.object_id,
    bytes: r.bytes, actor: r.actor, snapshotId: r.snapshot_id,
  }));
});
