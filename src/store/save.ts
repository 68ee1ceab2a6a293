// Writing a whole snapshot document: one transaction, prepared statements reused per row.
// A pin found unchanged since the latest snapshot writes nothing: its row goes on standing
// for the new snapshot too (src/store/shared.ts).
import type Database from 'better-sqlite3';
import { compareObjects, comparePins, objectCacheEntries, objectKey, pinPlace, pinText, type HostObject, type Pin, type SnapshotDoc } from '../model.js';
import { isLeak } from '../analysis/summary.js';
import { guarded, type Store } from './db.js';
import { extraJson, extrasOf, nul, stmt, toBool, toJson } from './codec.js';
import { insertObjects } from './objects.js';
import {
  closeRest, digestOfText, inOrder, keepSameSection, openRows, remember, rememberRows, reuseRemembered, reuseRow, type OpenRows,
} from './shared.js';
import {
  CREATOR_KEYS, DOC_KEYS, ERROR_KEYS, HOLDER_KEYS, INSTANCE_KEYS, META_KEYS, MOUNT_KEYS, NS_KEYS, OBJECT_KEYS,
  OWNER_KEYS, PIN_KEYS,
} from './fields.js';

const SQL = {
  snapshot: `INSERT INTO snapshots (schema_version, taken_at, boot_id, hostname, kernel, label, duration_ms,
      pin_count, leak_count, leaked_bytes, summary_json, extra, canonical_order) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
  namespace: `INSERT INTO namespaces (snapshot_id, mnt_ns, reached_via, pids_json, process_count, nsfs_paths_json,
      error, container_json, extra) VALUES (?,?,?,?,?,?,?,?,?)`,
  instance: `INSERT INTO instances (snapshot_id, dev, delegation_json, pin_count, memlock_bytes, error, extra)
      VALUES (?,?,?,?,?,?,?)`,
  mount: `INSERT INTO mounts (instance_id, mnt_ns, mount_id, mount_point, root, super_options, extra) VALUES (?,?,?,?,?,?,?)`,
  object: `INSERT INTO objects (snapshot_id, kind, obj_id, name, type, memlock_bytes, extra) VALUES (?,?,?,?,?,?,?)`,
  pin: `INSERT INTO pins (snapshot_id, instance, path, mount_paths_json, inode, created_at, uid, gid, mode, object_id,
      status, reasons_json, used_by_json, owner_tool, owner_persistent, owner_path_pid, owner_path_pid_alive,
      creator_pid, creator_start_time, creator_comm, creator_alive, creator_first_seen, creator_source,
      creator_container_json, error_json, stale_json, extra, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
  process: `INSERT INTO processes (snapshot_id, pid, start_time, comm, mnt_ns, container_json) VALUES (?,?,?,?,?,?)`,
  holder: `INSERT INTO holders (pin_id, process_id, fds_json, mmapped, extra) VALUES (?,?,?,?,?)`,
  sighting: `INSERT OR IGNORE INTO sightings (boot_id, kind, obj_id, pid, start_time, first_snapshot_id, comm, container_json)
      VALUES (?,?,?,?,?,?,?,?)`,
  staleRun: `INSERT OR IGNORE INTO stale_runs (boot_id, kind, obj_id, since, first_snapshot_id) VALUES (?,?,?,?,?)`,
  staleRunEnd: `DELETE FROM stale_runs WHERE boot_id = ? AND kind = ? AND obj_id = ?`,
  anyStaleRun: `SELECT 1 FROM stale_runs WHERE boot_id = ? LIMIT 1`,
  latest: `SELECT id, boot_id FROM snapshots ORDER BY id DESC LIMIT 1`,
  error: `INSERT INTO scan_errors (snapshot_id, scope, message, extra) VALUES (?,?,?,?)`,
};

/** docs/json.md: leaks count orphaned and leaked pins; leakedBytes is summary.memlockBytes.leaked. */
function leakTotals(doc: SnapshotDoc): { leaks: number; leakedBytes: number } {
  let leaks = 0;
  for (const p of doc.pins) if (isLeak(p)) leaks++;
  return { leaks, leakedBytes: doc.summary?.memlockBytes?.leaked ?? 0 };
}

/**
 * The pins rows of snapshot `sid` (inside saveSnapshot's transaction): an open row of the
 * latest snapshot whose content a pin has again goes on standing (`share`: the pins are in
 * canonical order); the others are closed, and each other pin gets its rows.
 */
function savePins(
  db: Database.Database, sid: number, prev: number | null, pins: Pin[], share: boolean, rememberRows: boolean,
  /** each pin's row digest, when the caller has them */
  digests?: readonly string[],
): { open: OpenRows; unchanged: boolean } {
  const insObject = stmt(db, SQL.object);
  const insPin = stmt(db, SQL.pin);
  const insProcess = stmt(db, SQL.process);
  const insHolder = stmt(db, SQL.holder);
  const open = openRows(db, 'pins', prev, share && rememberRows);
  // One objects row per distinct object; identical content shares the row. (Two pins
  // naming the same kind+id with different details keep their own rows, so a
  // document always reads back exactly as written.)
  const objectRows = new Map<string, number | bigint>();
  const processRows = new Map<string, number | bigint>();
  let written = 0;
  for (let i = 0; i < pins.length; i++) {
    const p = pins[i]!;
    const place = pinPlace(p);
    if (share && reuseRemembered(open, place, p) !== undefined) continue;
    // the pin's JSON names the content of its rows: every value they bind derives from it
    // (not pinText: a resident save keeps no pin's text alive with the pin it remembers)
    const digest = digests?.[i] ?? digestOfText(JSON.stringify(p));
    if (share && reuseRow(open, place, p, digest) !== undefined) continue;
    const o = p.object;
    const objectValues = o ? [o.kind, o.id, nul(o.name), nul(o.type), nul(o.memlockBytes), extraJson(extrasOf(o, OBJECT_KEYS))] : null;
    const ow = p.owner;
    const cr = p.creator;
    const pinValues = [
      p.instance, p.path, toJson(p.mountPaths), nul(p.inode), nul(p.createdAt), nul(p.uid), nul(p.gid), nul(p.mode),
      p.status, toJson(p.reasons), toJson(p.usedBy),
      ow ? nul(ow.tool) : null, ow ? toBool(ow.persistent) : null, ow ? nul(ow.pathPid) : null, ow ? toBool(ow.pathPidAlive) : null,
      cr ? cr.pid : null, cr ? nul(cr.startTime) : null, cr ? nul(cr.comm) : null, cr ? toBool(cr.alive) : null,
      cr ? nul(cr.firstSeenSnapshot) : null, cr ? nul(cr.source) : null, cr ? toJson(cr.container) : null,
      toJson(p.error), toJson(p.stale),
      extraJson(extrasOf(p, PIN_KEYS), {
        owner: ow ? extrasOf(ow, OWNER_KEYS) : undefined,
        creator: cr ? extrasOf(cr, CREATOR_KEYS) : undefined,
      }),
    ];
    let objectRow: number | bigint | null = null;
    if (objectValues) {
      const ok = objectValues.join('\0');
      objectRow = objectRows.get(ok) ?? null;
      if (objectRow === null) {
        objectRow = insObject.run(sid, ...objectValues).lastInsertRowid;
        objectRows.set(ok, objectRow);
      }
    }
    const pinRow = insPin.run(sid, ...pinValues.slice(0, 8), objectRow, ...pinValues.slice(8), digest).lastInsertRowid;
    written++;
    remember(open, place, p, Number(pinRow));
    for (const h of p.holders ?? []) {
      const proc = [h.pid, h.startTime, nul(h.comm), nul(h.mntNs), toJson(h.container)];
      const pk = proc.join('\0');
      let processRow = processRows.get(pk);
      if (processRow === undefined) {
        processRow = insProcess.run(sid, ...proc).lastInsertRowid;
        processRows.set(pk, processRow);
      }
      insHolder.run(pinRow, processRow, toJson(h.fds), h.mmapped === undefined ? null : toBool(h.mmapped), extraJson(extrasOf(h, HOLDER_KEYS)));
    }
  }
  const closed = prev !== null ? closeRest(db, open, prev) : 0;
  // every pin found as the latest snapshot stored it, and none gone
  return { open, unchanged: prev !== null && written === 0 && closed === 0 };
}

/**
 * Store a whole snapshot document in one transaction (a crash leaves no half snapshot).
 * Returns the new snapshot id and sets doc.snapshot.id to it (and, in the pins, the
 * snapshot a stale run or a creator first seen in this scan starts at). `objects`: every BPF object
 * of the host at that scan (`pinleak objects`), stored with it. `remember` (a resident
 * caller, watch): keep this save's rows in memory, so that the next save through this
 * connection compares values with them instead of reading and hashing (while no other
 * snapshot was stored in between). The document must not change after the save then.
 */
export const saveSnapshot = guarded(function saveSnapshot(
  store: Store, doc: SnapshotDoc, objects?: HostObject[], opts: { remember?: boolean } = {},
): number {
  const db = store.db;
  const insSnapshot = stmt(db, SQL.snapshot);
  const insNamespace = stmt(db, SQL.namespace);
  const insInstance = stmt(db, SQL.instance);
  const insMount = stmt(db, SQL.mount);
  const insSighting = stmt(db, SQL.sighting);
  const insError = stmt(db, SQL.error);
  const insStaleRun = stmt(db, SQL.staleRun);
  const endStaleRun = stmt(db, SQL.staleRunEnd);
  const anyStaleRun = stmt(db, SQL.anyStaleRun);

  const m = doc.snapshot;
  const { leaks, leakedBytes } = leakTotals(doc);
  // Shared rows come back in the canonical order, so only a document in it may share them
  // (a scan's always is); any other is stored row by row and read back in its own order.
  const canonical = inOrder(doc.pins, comparePins) && (!objects || inOrder(objects, compareObjects));

  let open: OpenRows | null = null;
  let openObjects: OpenRows | null = null;
  const id = db.transaction((): number => {
    const latest = stmt(db, SQL.latest).get() as { id: number; boot_id: string } | undefined;
    const prev = latest?.id ?? null;
    const sid = Number(insSnapshot.run(
      doc.schemaVersion, m.takenAt, m.bootId, nul(m.hostname), nul(m.kernel), nul(m.label), nul(m.durationMs),
      doc.pins.length, leaks, leakedBytes, JSON.stringify(doc.summary ?? null),
      extraJson(extrasOf(doc, DOC_KEYS), { snapshot: extrasOf(m, META_KEYS) }), canonical ? 1 : 0,
    ).lastInsertRowid);
    for (const ns of doc.namespaces) {
      insNamespace.run(sid, nul(ns.mntNs), nul(ns.reachedVia), toJson(ns.pids), nul(ns.processCount), toJson(ns.nsfsPaths),
        nul(ns.error), toJson(ns.container), extraJson(extrasOf(ns, NS_KEYS)));
    }

    for (const inst of doc.instances) {
      const iid = insInstance.run(sid, inst.dev, toJson(inst.delegation), nul(inst.pinCount), nul(inst.memlockBytes),
        nul(inst.error), extraJson(extrasOf(inst, INSTANCE_KEYS))).lastInsertRowid;
      for (const mt of inst.mounts ?? []) {
        insMount.run(iid, nul(mt.mntNs), nul(mt.mountId), nul(mt.mountPoint), nul(mt.root), nul(mt.superOptions),
          extraJson(extrasOf(mt, MOUNT_KEYS)));
      }
    }

    for (const p of doc.pins) {
      // a run that starts with this scan starts at this snapshot; a creator first seen in
      // this scan (holding the object now) was first seen in this snapshot, as the next
      // scan, reading it from the history, will say (the pin's row then goes on unchanged)
      if (p.stale && p.stale.sinceSnapshot === null) p.stale.sinceSnapshot = sid;
      if (p.creator?.source === 'history' && p.creator.firstSeenSnapshot === null) p.creator.firstSeenSnapshot = sid;
    }

    // The pins as the latest snapshot stored them (its section digest): every open row goes
    // on standing for this snapshot too, and none is looked at. Not for a remembering save
    // (watch), which compares the rows it remembers instead and keeps no texts.
    const pinDigests = canonical && !opts.remember ? doc.pins.map((p) => digestOfText(pinText(p))) : undefined;
    let unchanged = pinDigests !== undefined && keepSameSection(db, 'pins', sid, prev, pinDigests);
    if (!unchanged) ({ open, unchanged } = savePins(db, sid, prev, doc.pins, canonical, !!opts.remember, pinDigests));
    // the same pins in the same boot: the last save wrote their sightings, stale runs and object cache
    const samePins = unchanged && latest?.boot_id === m.bootId;

    if (!samePins) {
      // object key -> its stale run's start, or null when no pin of it is stale
      const staleRuns = new Map<string, { kind: string; id: number; stale: { since: string; sinceSnapshot: number | null } | null }>();
      for (const p of doc.pins) {
        const o = p.object;
        if (!o) continue;
        const ok = objectKey(o.kind, o.id);
        const run = staleRuns.get(ok);
        if (!run) staleRuns.set(ok, { kind: o.kind, id: o.id, stale: p.stale ?? null });
        else run.stale ??= p.stale ?? null;
        for (const h of p.holders ?? []) {
          insSighting.run(m.bootId, o.kind, o.id, h.pid, h.startTime, sid, nul(h.comm), toJson(h.container));
        }
      }
      // Runs of stale objects continue (the first snapshot of a run stays); a stored scan
      // that found an object used ends its run.
      // (no run of this boot yet: nothing to end, skip a delete per object)
      const anyRun = anyStaleRun.get(m.bootId) !== undefined;
      for (const r of staleRuns.values()) {
        if (r.stale) insStaleRun.run(m.bootId, r.kind, r.id, r.stale.since, r.stale.sinceSnapshot ?? sid);
        else if (anyRun) endStaleRun.run(m.bootId, r.kind, r.id);
      }
    }

    for (const e of doc.errors ?? []) {
      insError.run(sid, nul(e.scope), nul(e.message), extraJson(extrasOf(e, ERROR_KEYS)));
    }
    openObjects = insertObjects(db, sid, prev, objects, canonical, !!opts.remember);
    // the next scan's object cache (pinObjectCache), unless it is the last save's, which
    // then stands for this snapshot; a resident watch keeps its own in memory
    const moved = samePins && stmt(db, 'UPDATE object_cache SET snapshot_id = ? WHERE boot_id = ? AND snapshot_id = ?').run(sid, m.bootId, prev).changes > 0;
    if (!opts.remember && !moved) {
      stmt(db, 'INSERT OR REPLACE INTO object_cache (boot_id, snapshot_id, entries) VALUES (?,?,?)')
        .run(m.bootId, sid, JSON.stringify(objectCacheEntries(doc.pins)));
    }
    return sid;
  }).immediate();

  if (open) rememberRows(db, open, id);
  if (openObjects) rememberRows(db, openObjects, id);
  doc.snapshot.id = id;
  return id;
});
