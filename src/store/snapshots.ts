// Writing and reading whole snapshot documents, listing and naming snapshots.
import type {
  BpffsInstance, BpfObject, Container, Creator, Holder, InstanceMount, MountNamespace, ObjectRef, Owner, Pin,
  ScanError, SnapshotDoc, SnapshotMeta, Status, Summary, ObjectKind, Delegation, MountPath, ReachedVia,
} from '../model.js';
import { PinleakError } from '../errors.js';
import { guarded, type Store } from './db.js';
import {
  applyExtra, extraJson, extrasOf, fromBool, fromJson, keys, nul, stmt, toBool, toJson,
} from './codec.js';

const DOC_KEYS = keys('schemaVersion', 'snapshot', 'namespaces', 'instances', 'pins', 'summary', 'errors');
const META_KEYS = keys('id', 'takenAt', 'bootId', 'hostname', 'kernel', 'label', 'durationMs');
const NS_KEYS = keys('mntNs', 'reachedVia', 'pids', 'processCount', 'nsfsPaths', 'error', 'container');
const INSTANCE_KEYS = keys('dev', 'mounts', 'delegation', 'pinCount', 'memlockBytes', 'error');
const MOUNT_KEYS = keys('mntNs', 'mountId', 'mountPoint', 'root', 'superOptions');
const OBJECT_KEYS = keys('kind', 'id', 'name', 'type', 'memlockBytes');
const HOLDER_KEYS = keys('pid', 'startTime', 'comm', 'fds', 'mntNs', 'container', 'mmapped');
const PIN_KEYS = keys('instance', 'path', 'mountPaths', 'inode', 'createdAt', 'uid', 'gid', 'mode', 'object', 'holders',
  'usedBy', 'status', 'reasons', 'owner', 'creator', 'error');
const OWNER_KEYS = keys('tool', 'persistent', 'pathPid', 'pathPidAlive');
const CREATOR_KEYS = keys('pid', 'startTime', 'comm', 'alive', 'firstSeenSnapshot', 'source', 'container');
const ERROR_KEYS = keys('scope', 'message');

/** A pin counts as a leak when it is orphaned or leaked (SPEC section 2). */
const LEAK_STATUSES: ReadonlySet<Status> = new Set<Status>(['orphaned', 'leaked']);

export interface SnapshotListEntry extends SnapshotMeta {
  pins: number;
  leaks: number;
  leakedBytes: number;
}

function unknownSnapshot(spec: string): PinleakError {
  return new PinleakError(`unknown snapshot "${spec}": run \`pinleak snapshots\` to list them`);
}

// ---------------------------------------------------------------- write

const SQL = {
  snapshot: `INSERT INTO snapshots (schema_version, taken_at, boot_id, hostname, kernel, label, duration_ms,
      pin_count, leak_count, leaked_bytes, summary_json, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
  namespace: `INSERT INTO namespaces (snapshot_id, mnt_ns, reached_via, pids_json, process_count, nsfs_paths_json,
      error, container_json, extra) VALUES (?,?,?,?,?,?,?,?,?)`,
  instance: `INSERT INTO instances (snapshot_id, dev, delegation_json, pin_count, memlock_bytes, error, extra)
      VALUES (?,?,?,?,?,?,?)`,
  mount: `INSERT INTO mounts (instance_id, mnt_ns, mount_id, mount_point, root, super_options, extra) VALUES (?,?,?,?,?,?,?)`,
  object: `INSERT INTO objects (snapshot_id, kind, obj_id, name, type, memlock_bytes, extra) VALUES (?,?,?,?,?,?,?)`,
  pin: `INSERT INTO pins (snapshot_id, instance, path, mount_paths_json, inode, created_at, uid, gid, mode, object_id,
      status, reasons_json, used_by_json, owner_tool, owner_persistent, owner_path_pid, owner_path_pid_alive,
      creator_pid, creator_start_time, creator_comm, creator_alive, creator_first_seen, creator_source,
      creator_container_json, error_json, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
  process: `INSERT INTO processes (snapshot_id, pid, start_time, comm, mnt_ns, container_json) VALUES (?,?,?,?,?,?)`,
  holder: `INSERT INTO holders (pin_id, process_id, fds_json, mmapped, extra) VALUES (?,?,?,?,?)`,
  sighting: `INSERT OR IGNORE INTO sightings (boot_id, kind, obj_id, pid, start_time, first_snapshot_id, comm, container_json)
      VALUES (?,?,?,?,?,?,?,?)`,
  error: `INSERT INTO scan_errors (snapshot_id, scope, message, extra) VALUES (?,?,?,?)`,
};

function leakTotals(pins: readonly Pin[]): { leaks: number; leakedBytes: number } {
  let leaks = 0;
  let leakedBytes = 0;
  const seen = new Set<string>();
  for (const p of pins) {
    if (!LEAK_STATUSES.has(p.status)) continue;
    leaks++;
    if (!p.object) continue;
    const k = `${p.object.kind}:${p.object.id}`;
    if (seen.has(k)) continue;
    seen.add(k);
    leakedBytes += p.object.memlockBytes ?? 0;
  }
  return { leaks, leakedBytes };
}

/**
 * Store a whole snapshot document in one transaction (a crash leaves no half snapshot).
 * Returns the new snapshot id and sets doc.snapshot.id to it.
 */
export const saveSnapshot = guarded(function saveSnapshot(store: Store, doc: SnapshotDoc): number {
  const db = store.db;
  const insSnapshot = stmt(db, SQL.snapshot);
  const insNamespace = stmt(db, SQL.namespace);
  const insInstance = stmt(db, SQL.instance);
  const insMount = stmt(db, SQL.mount);
  const insObject = stmt(db, SQL.object);
  const insPin = stmt(db, SQL.pin);
  const insProcess = stmt(db, SQL.process);
  const insHolder = stmt(db, SQL.holder);
  const insSighting = stmt(db, SQL.sighting);
  const insError = stmt(db, SQL.error);

  const m = doc.snapshot;
  const { leaks, leakedBytes } = leakTotals(doc.pins);

  const id = db.transaction((): number => {
    const sid = Number(insSnapshot.run(
      doc.schemaVersion, m.takenAt, m.bootId, nul(m.hostname), nul(m.kernel), nul(m.label), nul(m.durationMs),
      doc.pins.length, leaks, leakedBytes, JSON.stringify(doc.summary ?? null),
      extraJson(extrasOf(doc, DOC_KEYS), { snapshot: extrasOf(m, META_KEYS) }),
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

    // One objects row per distinct object; identical content shares the row. (Two pins
    // naming the same kind+id with different details keep their own rows, so a
    // document always reads back exactly as written.)
    const objectRows = new Map<string, number | bigint>();
    const processRows = new Map<string, number | bigint>();

    for (const p of doc.pins) {
      let objectRow: number | bigint | null = null;
      const o = p.object;
      if (o) {
        const oExtra = extraJson(extrasOf(o, OBJECT_KEYS));
        const ok = `${o.kind}\0${o.id}\0${o.name}\0${o.type}\0${o.memlockBytes}\0${oExtra ?? ''}`;
        objectRow = objectRows.get(ok) ?? null;
        if (objectRow === null) {
          objectRow = insObject.run(sid, o.kind, o.id, nul(o.name), nul(o.type), nul(o.memlockBytes), oExtra).lastInsertRowid;
          objectRows.set(ok, objectRow);
        }
      }
      const ow = p.owner;
      const cr = p.creator;
      const pinRow = insPin.run(
        sid, p.instance, p.path, toJson(p.mountPaths), nul(p.inode), nul(p.createdAt), nul(p.uid), nul(p.gid), nul(p.mode),
        objectRow, p.status, toJson(p.reasons), toJson(p.usedBy),
        ow ? nul(ow.tool) : null, ow ? toBool(ow.persistent) : null, ow ? nul(ow.pathPid) : null, ow ? toBool(ow.pathPidAlive) : null,
        cr ? cr.pid : null, cr ? nul(cr.startTime) : null, cr ? nul(cr.comm) : null, cr ? toBool(cr.alive) : null,
        cr ? nul(cr.firstSeenSnapshot) : null, cr ? nul(cr.source) : null, cr ? toJson(cr.container) : null,
        toJson(p.error),
        extraJson(extrasOf(p, PIN_KEYS), {
          owner: ow ? extrasOf(ow, OWNER_KEYS) : undefined,
          creator: cr ? extrasOf(cr, CREATOR_KEYS) : undefined,
        }),
      ).lastInsertRowid;

      for (const h of p.holders ?? []) {
        const container = toJson(h.container);
        const pk = `${h.pid}\0${h.startTime}\0${h.comm}\0${h.mntNs}\0${container ?? ''}`;
        let processRow = processRows.get(pk);
        if (processRow === undefined) {
          processRow = insProcess.run(sid, h.pid, h.startTime, nul(h.comm), nul(h.mntNs), container).lastInsertRowid;
          processRows.set(pk, processRow);
        }
        insHolder.run(pinRow, processRow, toJson(h.fds), h.mmapped === undefined ? null : toBool(h.mmapped),
          extraJson(extrasOf(h, HOLDER_KEYS)));
        if (o) insSighting.run(m.bootId, o.kind, o.id, h.pid, h.startTime, sid, nul(h.comm), container);
      }
    }

    for (const e of doc.errors ?? []) {
      insError.run(sid, nul(e.scope), nul(e.message), extraJson(extrasOf(e, ERROR_KEYS)));
    }
    return sid;
  }).immediate();

  doc.snapshot.id = id;
  return id;
});

// ---------------------------------------------------------------- read

interface SnapshotRow {
  id: number; schema_version: number; taken_at: string; boot_id: string; hostname: string; kernel: string;
  label: string | null; duration_ms: number; pin_count: number; leak_count: number; leaked_bytes: number;
  summary_json: string; extra: string | null;
}

function metaOf(r: SnapshotRow): SnapshotMeta {
  const meta: SnapshotMeta = {
    id: r.id, takenAt: r.taken_at, bootId: r.boot_id, hostname: r.hostname, kernel: r.kernel, label: r.label,
    durationMs: r.duration_ms,
  };
  if (r.extra !== null) {
    const x = JSON.parse(r.extra) as { snapshot?: Record<string, unknown> };
    if (x.snapshot) Object.assign(meta, x.snapshot);
  }
  return meta;
}

// Pins are read in raw (array) mode: for 10,000 rows that is several times faster than
// building one object per row. PIN_COLUMNS names the positions.
const PIN_COLUMNS = [
  'p.id', 'p.instance', 'p.path', 'p.mount_paths_json', 'p.inode', 'p.created_at', 'p.uid', 'p.gid', 'p.mode', 'p.object_id',
  'p.status', 'p.reasons_json', 'p.used_by_json', 'p.owner_tool', 'p.owner_persistent', 'p.owner_path_pid',
  'p.owner_path_pid_alive', 'p.creator_pid', 'p.creator_start_time', 'p.creator_comm', 'p.creator_alive',
  'p.creator_first_seen', 'p.creator_source', 'p.creator_container_json', 'p.error_json', 'p.extra',
  'o.kind', 'o.obj_id', 'o.name', 'o.type', 'o.memlock_bytes', 'o.extra',
] as const;
type PinColumn = (typeof PIN_COLUMNS)[number];
const P = Object.fromEntries(PIN_COLUMNS.map((c, i) => [c, i])) as Record<PinColumn, number>;
type Raw = unknown[];

interface HolderRow {
  pin_id: number; fds_json: string | null; mmapped: number | null; extra: string | null; pid: number; start_time: number;
  comm: string; mnt_ns: number; container_json: string | null;
}

function setIfDefined<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

/** Read back the whole document of snapshot `id`, as it was saved (with snapshot.id set). */
export const loadSnapshot = guarded(function loadSnapshot(store: Store, id: number): SnapshotDoc {
  const db = store.db;
  const r = stmt(db, 'SELECT * FROM snapshots WHERE id = ?').get(id) as SnapshotRow | undefined;
  if (!r) throw unknownSnapshot(String(id));

  const namespaces = (stmt(db, 'SELECT * FROM namespaces WHERE snapshot_id = ? ORDER BY id').all(id) as {
    mnt_ns: number; reached_via: ReachedVia; pids_json: string | null; process_count: number; nsfs_paths_json: string | null;
    error: string | null; container_json: string | null; extra: string | null;
  }[]).map((n) => {
    const ns: MountNamespace = {
      mntNs: n.mnt_ns, reachedVia: n.reached_via, pids: fromJson<number[]>(n.pids_json)!, processCount: n.process_count,
      nsfsPaths: fromJson<string[]>(n.nsfs_paths_json)!, error: n.error,
    };
    setIfDefined(ns, 'container', fromJson<Container | null>(n.container_json));
    applyExtra(ns, n.extra);
    return ns;
  });

  const mountsByInstance = new Map<number, InstanceMount[]>();
  for (const mt of stmt(db, `SELECT m.* FROM instances i JOIN mounts m ON m.instance_id = i.id
      WHERE i.snapshot_id = ? ORDER BY m.id`).all(id) as {
    instance_id: number; mnt_ns: number; mount_id: number; mount_point: string; root: string; super_options: string; extra: string | null;
  }[]) {
    const mount: InstanceMount = { mntNs: mt.mnt_ns, mountId: mt.mount_id, mountPoint: mt.mount_point, root: mt.root, superOptions: mt.super_options };
    applyExtra(mount, mt.extra);
    let list = mountsByInstance.get(mt.instance_id);
    if (!list) mountsByInstance.set(mt.instance_id, (list = []));
    list.push(mount);
  }
  const instances = (stmt(db, 'SELECT * FROM instances WHERE snapshot_id = ? ORDER BY id').all(id) as {
    id: number; dev: string; delegation_json: string | null; pin_count: number; memlock_bytes: number; error: string | null; extra: string | null;
  }[]).map((i) => {
    const inst: BpffsInstance = {
      dev: i.dev, mounts: mountsByInstance.get(i.id) ?? [], delegation: fromJson<Delegation | null>(i.delegation_json) ?? null,
      pinCount: i.pin_count, memlockBytes: i.memlock_bytes, error: i.error,
    };
    applyExtra(inst, i.extra);
    return inst;
  });

  const holdersByPin = new Map<number, Holder[]>();
  for (const h of stmt(db, `SELECT h.pin_id, h.fds_json, h.mmapped, h.extra, pr.pid, pr.start_time, pr.comm, pr.mnt_ns, pr.container_json
      FROM pins p JOIN holders h ON h.pin_id = p.id JOIN processes pr ON pr.id = h.process_id
      WHERE p.snapshot_id = ? ORDER BY h.id`).all(id) as HolderRow[]) {
    const holder: Holder = {
      pid: h.pid, startTime: h.start_time, comm: h.comm, fds: fromJson<number[]>(h.fds_json)!, mntNs: h.mnt_ns,
      container: fromJson<Container | null>(h.container_json) ?? null,
    };
    if (h.mmapped !== null) holder.mmapped = h.mmapped !== 0;
    applyExtra(holder, h.extra);
    let list = holdersByPin.get(h.pin_id);
    if (!list) holdersByPin.set(h.pin_id, (list = []));
    list.push(holder);
  }

  const pins = (stmt(db, `SELECT ${PIN_COLUMNS.join(', ')}
      FROM pins p LEFT JOIN objects o ON o.id = p.object_id WHERE p.snapshot_id = ? ORDER BY p.id`).raw(true).all(id) as Raw[])
    .map(pinOf(holdersByPin));

  const errors = (stmt(db, 'SELECT scope, message, extra FROM scan_errors WHERE snapshot_id = ? ORDER BY id').all(id) as {
    scope: string; message: string; extra: string | null;
  }[]).map((e) => {
    const err: ScanError = { scope: e.scope, message: e.message };
    applyExtra(err, e.extra);
    return err;
  });

  const doc: SnapshotDoc = {
    schemaVersion: r.schema_version,
    snapshot: metaOf(r),
    namespaces,
    instances,
    pins,
    summary: JSON.parse(r.summary_json) as Summary,
    errors,
  };
  if (r.extra !== null) {
    const { snapshot: _meta, ...top } = JSON.parse(r.extra) as Record<string, unknown>;
    Object.assign(doc, top);
  }
  return doc;
});

function pinOf(holdersByPin: Map<number, Holder[]>): (r: Raw) => Pin {
  const str = (r: Raw, c: PinColumn) => r[P[c]] as string | null;
  const num = (r: Raw, c: PinColumn) => r[P[c]] as number | null;
  return (r) => {
    let object: BpfObject | null = null;
    if (r[P['p.object_id']] !== null) {
      object = {
        kind: str(r, 'o.kind') as ObjectKind, id: num(r, 'o.obj_id')!, name: str(r, 'o.name')!, type: str(r, 'o.type')!,
        memlockBytes: num(r, 'o.memlock_bytes')!,
      };
      applyExtra(object, str(r, 'o.extra'));
    }
    const owner: Owner = {
      tool: str(r, 'p.owner_tool'), persistent: fromBool(num(r, 'p.owner_persistent')) ?? false,
      pathPid: num(r, 'p.owner_path_pid'), pathPidAlive: fromBool(num(r, 'p.owner_path_pid_alive')),
    };
    let creator: Creator | null = null;
    const creatorPid = num(r, 'p.creator_pid');
    if (creatorPid !== null) {
      creator = {
        pid: creatorPid, startTime: num(r, 'p.creator_start_time'), comm: str(r, 'p.creator_comm'),
        alive: fromBool(num(r, 'p.creator_alive')) ?? false, firstSeenSnapshot: num(r, 'p.creator_first_seen'),
      };
      const source = str(r, 'p.creator_source');
      if (source !== null) creator.source = source as Creator['source'];
      setIfDefined(creator, 'container', fromJson<Container | null>(str(r, 'p.creator_container_json')));
    }
    const pin: Pin = {
      instance: str(r, 'p.instance')!, path: str(r, 'p.path')!, mountPaths: fromJson<MountPath[]>(str(r, 'p.mount_paths_json'))!,
      inode: num(r, 'p.inode')!, createdAt: str(r, 'p.created_at')!, uid: num(r, 'p.uid')!, gid: num(r, 'p.gid')!,
      mode: str(r, 'p.mode')!, object, holders: holdersByPin.get(num(r, 'p.id')!) ?? [],
      usedBy: fromJson<ObjectRef[]>(str(r, 'p.used_by_json'))!, status: str(r, 'p.status') as Status,
      reasons: fromJson<string[]>(str(r, 'p.reasons_json'))!, owner, creator,
    };
    setIfDefined(pin, 'error', fromJson<string | null>(str(r, 'p.error_json')));
    applyExtra(pin, str(r, 'p.extra'), ['owner', 'creator']);
    return pin;
  };
}

// ---------------------------------------------------------------- list and name

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
export const resolveSnapshot = guarded(function resolveSnapshot(store: Store, spec: string): number {
  const db = store.db;
  const back = /^latest(?:~(\d+))?$/.exec(spec);
  if (back) {
    const n = back[1] === undefined ? 0 : Number(back[1]);
    if (!Number.isSafeInteger(n)) throw unknownSnapshot(spec);
    const row = stmt(db, 'SELECT id FROM snapshots ORDER BY id DESC LIMIT 1 OFFSET ?').get(n) as { id: number } | undefined;
    if (!row) throw unknownSnapshot(spec);
    return row.id;
  }
  if (/^\d+$/.test(spec) && Number.isSafeInteger(Number(spec))) {
    const row = stmt(db, 'SELECT id FROM snapshots WHERE id = ?').get(Number(spec)) as { id: number } | undefined;
    if (row) return row.id;
  }
  const row = stmt(db, 'SELECT id FROM snapshots WHERE label = ? ORDER BY id DESC LIMIT 1').get(spec) as { id: number } | undefined;
  if (!row) throw unknownSnapshot(spec);
  return row.id;
});
