// Every BPF object of a snapshot (the host_objects table): written in the snapshot's own
// transaction, read back exactly as written.
import type Database from 'better-sqlite3';
import { compareObjects, objectKey, type SnapshotMeta, type HostObject, type Holder, type ObjectOwner, type ObjectPin, type ObjectUnexplained, type UsedBy } from '../model.js';
import { guarded, type Store } from './db.js';
import { metaOf, unknownSnapshot, type SnapshotRow } from './fields.js';
import { applyExtra, extraJson, extrasOf, fromJson, keys, nul, stmt, toJson } from './codec.js';
import {
  closeRest, digestOfText, keepSameSection, openRows, remember, reuseRemembered, reuseRow, standsFor, type OpenRows,
} from './shared.js';

const HOST_OBJECT_KEYS = keys('kind', 'id', 'name', 'type', 'memlockBytes', 'loadedAt', 'loaderUid', 'pins', 'holders',
  'referencedBy', 'references', 'owner', 'unexplained', 'note');

const INSERT = `INSERT INTO host_objects (snapshot_id, kind, obj_id, name, type, memlock_bytes, loaded_at, loader_uid, owner_tool,
    owner_json, pins_json, holders_json, referenced_by_json, references_json, unexplained_json, note, extra, digest)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`;

/**
 * Inside saveSnapshot's transaction, after the snapshot row (`prevId`: the latest snapshot
 * before it). An unexplained object first seen so in this snapshot gets this snapshot's id
 * as `sinceSnapshot` (set on the object too, as doc.snapshot.id is). An object unchanged
 * since the latest snapshot keeps its row (`share`: the objects are in canonical order), and
 * all of them untouched when the section is the latest snapshot's (objects_digest).
 * Without objects, the latest snapshot's rows stop there. `rememberRows`: see saveSnapshot;
 * the caller remembers the returned rows once the save committed.
 */
export function insertObjects(
  db: Database.Database, snapshotId: number, prevId: number | null, objects: HostObject[] | undefined, share: boolean, rememberRows: boolean,
): OpenRows | null {
  for (const o of objects ?? []) {
    if (o.unexplained && o.unexplained.sinceSnapshot === null) o.unexplained.sinceSnapshot = snapshotId;
  }
  // the objects as the latest snapshot stored them: its open rows go on, none is looked at
  // (each object's JSON names the content of its row: every value it binds derives from it)
  const rowDigests = objects && share && !rememberRows ? objects.map((o) => digestOfText(JSON.stringify(o))) : undefined;
  const kept = rowDigests !== undefined && keepSameSection(db, 'host_objects', snapshotId, prevId, rowDigests);
  const open = kept ? null : writeRows(db, snapshotId, prevId, objects, share, rememberRows, rowDigests);
  if (objects) stmt(db, 'UPDATE snapshots SET object_count = ? WHERE id = ?').run(objects.length, snapshotId);
  return open;
}

/** insertObjects' rows one by one: an open row of the same content goes on, the others are closed, each other object gets a row. */
function writeRows(
  db: Database.Database, snapshotId: number, prevId: number | null, objects: HostObject[] | undefined, share: boolean, rememberRows: boolean,
  rowDigests: readonly string[] | undefined,
): OpenRows {
  const open = openRows(db, 'host_objects', prevId, share && rememberRows && objects !== undefined);
  const ins = stmt(db, INSERT);
  (objects ?? []).forEach((o, i) => {
    const key = objectKey(o.kind, o.id);
    if (share && reuseRemembered(open, key, o) !== undefined) return;
    const rowDigest = rowDigests?.[i] ?? digestOfText(JSON.stringify(o));
    if (share && reuseRow(open, key, o, rowDigest) !== undefined) return;
    const values = [o.kind, o.id, o.name, o.type, nul(o.memlockBytes), nul(o.loadedAt), nul(o.loaderUid), o.owner?.tool ?? null,
      toJson(o.owner), toJson(o.pins), toJson(o.holders), toJson(o.referencedBy), toJson(o.references), o.unexplained ? toJson(o.unexplained) : null,
      nul(o.note), extraJson(extrasOf(o, HOST_OBJECT_KEYS))];
    remember(open, key, o, Number(ins.run(snapshotId, ...values, rowDigest).lastInsertRowid));
  });
  if (prevId !== null) closeRest(db, open, prevId);
  return open;
}

interface Row {
  kind: HostObject['kind']; obj_id: number; name: string; type: string; memlock_bytes: number | null; loaded_at: string | null;
  loader_uid: number | null; owner_json: string | null; pins_json: string | null; holders_json: string | null;
  referenced_by_json: string | null; references_json: string | null; unexplained_json: string | null; note: string | null;
  extra: string | null;
}

/**
 * The meta and objects of snapshot `id` as saved; objects null when that snapshot was taken
 * before objects were recorded (or by a scan that did not record them).
 */
export const loadObjects = guarded(function loadObjects(store: Store, id: number): { snapshot: SnapshotMeta; objects: HostObject[] | null } {
  const snap = stmt(store.db, 'SELECT * FROM snapshots WHERE id = ?').get(id) as (SnapshotRow & { object_count: number | null }) | undefined;
  if (!snap) throw unknownSnapshot(String(id));
  if (snap.object_count === null) return { snapshot: metaOf(snap), objects: null };
  const rows = stmt(store.db, `SELECT * FROM host_objects o WHERE ${standsFor('o')} ORDER BY id`).all(id, id) as Row[];
  const objects = rows.map((r) => {
    const o: HostObject = {
      kind: r.kind, id: r.obj_id, name: r.name, type: r.type, memlockBytes: r.memlock_bytes, loadedAt: r.loaded_at,
      loaderUid: r.loader_uid, pins: fromJson<ObjectPin[]>(r.pins_json) ?? [], holders: fromJson<Holder[]>(r.holders_json) ?? [],
      referencedBy: fromJson<UsedBy[]>(r.referenced_by_json) ?? [], references: fromJson<UsedBy[]>(r.references_json) ?? [],
      owner: fromJson<ObjectOwner | null>(r.owner_json) ?? null,
      unexplained: r.unexplained_json === null ? null : fromJson<ObjectUnexplained>(r.unexplained_json)!,
      note: r.note,
    };
    applyExtra(o, r.extra);
    return o;
  });
  if (snap.canonical_order === 1) objects.sort(compareObjects);
  return { snapshot: metaOf(snap), objects };
});

/**
 * For objects unexplained now: when they were first seen unexplained in this boot, carried
 * over from their latest earlier unexplained row (so it survives pruning the first one).
 */
export const unexplainedSince = guarded(function unexplainedSince(
  store: Store, bootId: string, objects: { kind: string; id: number }[],
): Map<string, { since: string; sinceSnapshot: number | null }> {
  const out = new Map<string, { since: string; sinceSnapshot: number | null }>();
  const q = stmt(store.db, `SELECT o.unexplained_json FROM host_objects o JOIN snapshots s ON s.id = o.snapshot_id
      WHERE o.kind = ? AND o.obj_id = ? AND o.unexplained_json IS NOT NULL AND s.boot_id = ? ORDER BY o.snapshot_id DESC LIMIT 1`);
  for (const o of objects) {
    const r = q.get(o.kind, o.id, bootId) as { unexplained_json: string } | undefined;
    if (!r) continue;
    const u = JSON.parse(r.unexplained_json) as ObjectUnexplained;
    out.set(objectKey(o.kind, o.id), { since: u.since, sinceSnapshot: u.sinceSnapshot });
  }
  return out;
});
