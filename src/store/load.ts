// Reading a whole snapshot document back, exactly as it was saved.
import type {
  BpffsInstance, BpfObject, Container, Creator, Delegation, Holder, InstanceMount, MountNamespace, MountPath, ObjectKind,
  UsedBy, Owner, Pin, ReachedVia, ScanError, SnapshotDoc, Stale, Status, Summary,
} from '../model.js';
import { guarded, type Store } from './db.js';
import { applyExtra, fromBool, fromJson, stmt } from './codec.js';
import { metaOf, unknownSnapshot, type SnapshotRow } from './fields.js';
import { standsFor } from './shared.js';
import { comparePins } from '../model.js';

// Pins are read in raw (array) mode: for 10,000 rows that is several times faster than
// building one object per row. PIN_COLUMNS names the positions.
const PIN_COLUMNS = [
  'p.id', 'p.instance', 'p.path', 'p.mount_paths_json', 'p.inode', 'p.created_at', 'p.uid', 'p.gid', 'p.mode', 'p.object_id',
  'p.status', 'p.reasons_json', 'p.used_by_json', 'p.owner_tool', 'p.owner_persistent', 'p.owner_path_pid',
  'p.owner_path_pid_alive', 'p.creator_pid', 'p.creator_start_time', 'p.creator_comm', 'p.creator_alive',
  'p.creator_first_seen', 'p.creator_source', 'p.creator_container_json', 'p.error_json', 'p.stale_json', 'p.extra',
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
      mntNs: n.mnt_ns, reachedVia: n.reached_via, pids: fromJson<number[]>(n.pids_json) ?? [], processCount: n.process_count,
      nsfsPaths: fromJson<string[]>(n.nsfs_paths_json) ?? [], error: n.error,
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
      WHERE ${standsFor('p')} ORDER BY h.id`).all(id, id) as HolderRow[]) {
    const holder: Holder = {
      pid: h.pid, startTime: h.start_time, comm: h.comm, fds: fromJson<number[]>(h.fds_json) ?? [], mntNs: h.mnt_ns,
      container: fromJson<Container | null>(h.container_json) ?? null,
    };
    if (h.mmapped !== null) holder.mmapped = h.mmapped !== 0;
    applyExtra(holder, h.extra);
    let list = holdersByPin.get(h.pin_id);
    if (!list) holdersByPin.set(h.pin_id, (list = []));
    list.push(holder);
  }

  const pins = (stmt(db, `SELECT ${PIN_COLUMNS.join(', ')}
      FROM pins p LEFT JOIN objects o ON o.id = p.object_id WHERE ${standsFor('p')} ORDER BY p.id`).raw(true).all(id, id) as Raw[])
    .map(pinOf(holdersByPin));
  if (r.canonical_order === 1) pins.sort(comparePins);

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
      instance: str(r, 'p.instance')!, path: str(r, 'p.path')!, mountPaths: fromJson<MountPath[]>(str(r, 'p.mount_paths_json')) ?? [],
      inode: num(r, 'p.inode')!, createdAt: str(r, 'p.created_at')!, uid: num(r, 'p.uid')!, gid: num(r, 'p.gid')!,
      mode: str(r, 'p.mode')!, object, holders: holdersByPin.get(num(r, 'p.id')!) ?? [],
      usedBy: fromJson<UsedBy[]>(str(r, 'p.used_by_json')) ?? [], status: str(r, 'p.status') as Status,
      reasons: fromJson<string[]>(str(r, 'p.reasons_json')) ?? [], owner, creator,
    };
    setIfDefined(pin, 'error', fromJson<string | null>(str(r, 'p.error_json')));
    setIfDefined(pin, 'stale', fromJson<Stale | null>(str(r, 'p.stale_json')));
    applyExtra(pin, str(r, 'p.extra'), ['owner', 'creator']);
    return pin;
  };
}
