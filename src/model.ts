// The data pinleak passes between its layers. The shapes marked "public" are the JSON
// contract (schemaVersion 1, docs/json.md, a JSON Schema each in docs/schema/): scripts
// parse them, so fields are only ever added, never renamed or dropped.
import { pushTo } from './lists.js';

export const SCHEMA_VERSION = 1;

export type ObjectKind = 'map' | 'prog' | 'link' | 'unknown';

/** How a BPF object is named across the code: `map:26`. Ids are unique within one boot. */
export const objectKey = (kind: string, id: number): string => `${kind}:${id}`;

/** Where a pin is: its bpffs instance and its path there (one pin at a time). */
export const pinPlace = (p: { instance: string; path: string }): string => `${p.instance}\u0000${p.path}`;

/**
 * The key of a pin's object in the object cache: a pin never changes the object it holds,
 * so the same instance, inode and ctime mean the same object (src/scan/host.ts). The ctime
 * in whole ms, as a pin's createdAt keeps it (a Date truncates), so that a scan's key needs
 * no date formatting per pin.
 */
export const pinObjectKey = (instance: string, inode: number, ctimeMs: number): string => `${instance}\u0000${inode}\u0000${Math.trunc(ctimeMs)}`;

/** One pin's object as the object cache keeps it (and the store, as JSON): instance, inode, ctime ms, then the object. */
export type ObjectCacheEntry = [instance: string, inode: number, ctimeMs: number, kind: ObjectKind, id: number, name: string, type: string, memlockBytes: number];

/** The object cache's entries from a snapshot's pins. */
export function objectCacheEntries(pins: readonly Pin[]): ObjectCacheEntry[] {
  const out: ObjectCacheEntry[] = [];
  for (const p of pins) {
    const o = p.object;
    if (o) out.push([p.instance, p.inode, Date.parse(p.createdAt), o.kind, o.id, o.name, o.type, o.memlockBytes]);
  }
  return out;
}

/** The object cache (pinObjectKey -> object) of these entries. */
export function objectCacheFrom(entries: readonly ObjectCacheEntry[]): Map<string, BpfObject> {
  const out = new Map<string, BpfObject>();
  for (const [instance, inode, ctimeMs, kind, id, name, type, memlockBytes] of entries) {
    out.set(pinObjectKey(instance, inode, ctimeMs), { kind, id, name, type, memlockBytes });
  }
  return out;
}

/** The object cache from a snapshot's pins (what the store's pinObjectCache reads of the latest). */
export const objectCacheOf = (pins: readonly Pin[]): Map<string, BpfObject> => objectCacheFrom(objectCacheEntries(pins));

/**
 * A pin's JSON text, kept once taken: the store's digests and `scan --json` share it
 * (10,000 pins are ~8 MB of text). Taken only from a pin that no longer changes: a saved
 * document's (saveSnapshot sets its last field before it takes them).
 */
const pinTexts = new WeakMap<Pin, string>();
export function pinText(p: Pin): string {
  let t = pinTexts.get(p);
  if (t === undefined) pinTexts.set(p, (t = JSON.stringify(p)));
  return t;
}

/** The order of a snapshot's pins: by instance, then path (the store reads them back in it). */
export const comparePins = (a: { instance: string; path: string }, b: { instance: string; path: string }): number =>
  a.instance.localeCompare(b.instance) || a.path.localeCompare(b.path);

/**
 * `pins` in comparePins' order, in place: each instance's pins sorted by path, the instances
 * in order (a third fewer comparisons than one sort of them all, and no instance compared
 * within one).
 */
export function sortPins<T extends { instance: string; path: string }>(pins: T[]): T[] {
  const byInstance = new Map<string, T[]>();
  for (const p of pins) pushTo(byInstance, p.instance, p);
  let i = 0;
  for (const instance of [...byInstance.keys()].sort((a, b) => a.localeCompare(b))) {
    for (const p of byInstance.get(instance)!.sort((a, b) => a.path.localeCompare(b.path))) pins[i++] = p;
  }
  return pins;
}

const KIND_RANK: Record<string, number> = { prog: 0, map: 1, link: 2 };
/** The order of a snapshot's host objects: programs, maps, links, each by id. */
export const compareObjects = (a: { kind: string; id: number }, b: { kind: string; id: number }): number =>
  (KIND_RANK[a.kind] ?? 3) - (KIND_RANK[b.kind] ?? 3) || a.id - b.id;

/** A pin within one boot: its place and the object it holds (object ids are unique within a boot). */
export const pinKey = (p: { instance: string; path: string; object: { kind: string; id: number } | null }): string =>
  `${pinPlace(p)}\u0000${p.object ? objectKey(p.object.kind, p.object.id) : '-'}`;

export const STATUSES = ['held', 'in-use', 'orphaned', 'leaked', 'persistent', 'unreadable'] as const;
export type Status = (typeof STATUSES)[number];

/** public: snapshot meta */
export interface SnapshotMeta {
  id: number | null;
  takenAt: string;
  bootId: string;
  hostname: string;
  kernel: string;
  label: string | null;
  durationMs: number;
  /** true: the scan could not see the whole host (absent in snapshots stored before pinleak 0.2) */
  partial?: boolean;
  /** why it is partial: each a sentence naming what was not seen and how to fix it */
  partialReasons?: string[];
}

export type ReachedVia = 'process' | 'nsfs' | 'fd';

/** public: one mount namespace */
export interface MountNamespace {
  mntNs: number;
  reachedVia: ReachedVia;
  pids: number[];
  processCount: number;
  nsfsPaths: string[];
  error: string | null;
  container?: Container | null;
}

/** public: one mount point of a bpffs instance */
export interface InstanceMount {
  mntNs: number;
  mountId: number;
  mountPoint: string;
  root: string;
  superOptions: string;
}

export interface Delegation {
  cmds: string | null;
  maps: string | null;
  progs: string | null;
  attachs: string | null;
}

/** public: one bpffs superblock, however many times it is mounted */
export interface BpffsInstance {
  dev: string;
  mounts: InstanceMount[];
  delegation: Delegation | null;
  pinCount: number;
  memlockBytes: number;
  error: string | null;
}

/** public: the BPF object behind a pin */
export interface BpfObject {
  kind: ObjectKind;
  id: number;
  name: string;
  type: string;
  memlockBytes: number;
}

/** Where a process runs, from /proc/<pid>/cgroup (CONTAINERS.md). */
export interface Container {
  runtime: string; // docker, containerd, cri-o, podman, systemd, …
  id: string | null; // container id, or the systemd unit
  podUid: string | null;
  cgroup: string;
}

/** public: a process holding an fd to (or an mmap of) an object */
export interface Holder {
  pid: number;
  startTime: number;
  comm: string;
  fds: number[];
  mntNs: number;
  container: Container | null;
  mmapped?: boolean;
}

export interface ObjectRef {
  kind: ObjectKind;
  id: number;
}

/**
 * public: one referrer of a pinned object (pin.usedBy). `kind` is `map`, `prog` or `link`
 * when the referrer is a BPF object; otherwise it names an attachment point with no object
 * of its own (`tc`, `xdp`, `tcx`, `netkit`, `cgroup`, `netns`, `perf_event`, `sockets`, `struct_ops`,
 * `unnamed`) and `id` is that point's number (ifindex, cgroup or netns inode, pid, count).
 */
export interface UsedBy {
  kind: string;
  id: number;
  /** what the reference is: "tail call slot 3 of prog array 812", "tc ingress of veth0 in netns 4026532301" */
  via?: string;
}

/**
 * A reference the kernel holds on an object, as a scan names it. References from a BPF
 * object (`from.kind` map, prog or link) keep `to` alive only while that object is alive;
 * any other referrer (an attachment point, sockets in a sock map, a perf event a process
 * holds, a registered struct_ops) keeps it alive by itself.
 */
export interface KernelRef {
  to: ObjectRef;
  from: { kind: string; id: number };
  /** human text, as in UsedBy.via */
  what: string;
  /**
   * How many references this adds to `to`'s kernel refcnt, as measured on the kernel
   * (KERNEL-FACTS); null when it varies in a way the scan cannot tell. The count guard
   * subtracts it; an object with a null count cannot be accounted for exactly.
   */
  count: number | null;
  /** it also adds one to a map's usercnt (iterator and sockmap links) */
  user?: boolean;
}

export const isObjectKind = (k: string): k is 'map' | 'prog' | 'link' => k === 'map' || k === 'prog' || k === 'link';

export interface Owner {
  tool: string | null;
  persistent: boolean;
  pathPid: number | null;
  pathPidAlive: boolean | null;
  /** an owner the catalog gives a live object that references this one (not the pin itself): that reference */
  via?: string;
}

export interface Creator {
  pid: number;
  startTime: number | null;
  comm: string | null;
  alive: boolean;
  firstSeenSnapshot: number | null;
  /**
   * watch: the pin recorder of `pinleak watch` or `pinleak run` saw it pin the object; run: seen by
   * `pinleak run` holding it; run-window: pinned while `run` ran its command, not seen held
   */
  source?: 'watch' | 'run' | 'run-window' | 'history' | 'path';
  container?: Container | null;
  /** source watch: when the recorded pin was made (ISO) */
  pinnedAt?: string;
}

/**
 * public: a persistent pin whose object nothing alive uses (issue 14): since when (the
 * first scan of an unbroken run of scans that found it unused) and that scan's snapshot
 * id (null: this scan, not stored yet).
 */
export interface Stale {
  since: string;
  sinceSnapshot: number | null;
}

export interface MountPath {
  mntNs: number;
  path: string;
}

/** public: one pin */
export interface Pin {
  instance: string;
  path: string;
  mountPaths: MountPath[];
  inode: number;
  createdAt: string;
  uid: number;
  gid: number;
  mode: string;
  object: BpfObject | null;
  holders: Holder[];
  usedBy: UsedBy[];
  status: Status;
  reasons: string[];
  owner: Owner;
  creator: Creator | null;
  error?: string | null;
  /** persistent pins only: null when something uses the object (or the pin is not persistent by its owner) */
  stale?: Stale | null;
}

/** A BPF object as a scan reads it: the public fields and the references classification needs. */
export interface ScannedObject extends BpfObject {
  /** a program's maps */
  mapIds?: number[];
  /** a link's program */
  progId?: number;
  /** a link whose target (cgroup, netns, interface) is gone */
  defunct?: boolean;
  target?: string | null;
}

/** Every object on the host as a scan reads it, before pins, holders and owners are joined to it. */
export interface ObjectFacts {
  kind: 'map' | 'prog' | 'link';
  id: number;
  name: string;
  type: string;
  memlockBytes: number | null;
  /** programs: nanoseconds after boot, and the uid that loaded it */
  loadTimeNs: bigint | null;
  loaderUid: number | null;
  note: string | null;
}

/** A pin as a scan finds it, before classification. */
export interface ScannedPin {
  instance: string;
  /** relative to the instance's root, with a leading slash */
  path: string;
  mountPaths: MountPath[];
  inode: number;
  ctimeMs: number;
  uid: number;
  gid: number;
  mode: number;
  object: ScannedObject | null;
  error: string | null;
  /** a kernel preload iterator (maps.debug, progs.debug at the root) */
  preload: boolean;
}

/** public (objects --json): a pin of an object */
export interface ObjectPin {
  instance: string;
  path: string;
  status: Status;
}

/**
 * public (objects --json): the tool an object belongs to, and how pinleak knows. `path` and
 * `name`: the owner catalog matched one of its pin paths or its name; `referrer`: an object
 * that references it has an owner (a map used by a tool's program); `holder`: the process
 * holding it (its command, with its container or systemd unit).
 */
export interface ObjectOwner {
  tool: string;
  from: 'path' | 'name' | 'referrer' | 'holder';
  /** catalog owners: the tool keeps its pins on purpose */
  persistent: boolean;
  /** holder owners (also inherited): where the holding process runs */
  container: Container | null;
  /** referrer and holder owners: the reference or the holder the owner comes from */
  via: string | null;
}

/** public (objects --json): an object alive with no pin, no holder and no named referrer */
export interface ObjectUnexplained {
  /** references the kernel counts that nothing explains (count guard); null when it could not count */
  refs: number | null;
  /** of a map's usercnt: user references nobody can see (an fd in flight, an io_uring file); null when unknown */
  users: number | null;
  /** first seen so, in this boot (carried from snapshot to snapshot) */
  since: string;
  sinceSnapshot: number | null;
}

/** public (objects --json): one BPF object loaded on the host, pinned or not */
export interface HostObject {
  kind: 'map' | 'prog' | 'link';
  id: number;
  /** a link's name is its program's */
  name: string;
  /** 'unknown' when pinleak did not read it (see note) */
  type: string;
  /** null when unknown (see note) */
  memlockBytes: number | null;
  /** programs: when it was loaded, and by which uid */
  loadedAt: string | null;
  loaderUid: number | null;
  pins: ObjectPin[];
  holders: Holder[];
  /** what references it (the reference graph's KernelRefs to it) */
  referencedBy: UsedBy[];
  /** the objects it references */
  references: UsedBy[];
  owner: ObjectOwner | null;
  unexplained: ObjectUnexplained | null;
  /** why a field is unknown */
  note: string | null;
}

/** public: counts and memory of a set of objects (summary.objects, objects --json summary) */
export interface ObjectTotals {
  maps: number;
  progs: number;
  links: number;
  /** objects of unknown size are not in it */
  memlockBytes: number;
  unexplained: number;
  unexplainedBytes: number;
}

/** public: one owner's share (objects --json summary.byOwner) */
export interface OwnerTotals extends ObjectTotals {
  /** the tool, with the container or systemd unit of a holder owner; "unknown owner" */
  owner: string;
}

/** public: the document of objects --json */
export interface ObjectsDoc {
  schemaVersion: number;
  snapshot: SnapshotMeta;
  objects: HostObject[];
  /** of the objects listed (after --kind, --owner, --unexplained) */
  summary: ObjectTotals & { byOwner: OwnerTotals[] };
}

export interface Summary {
  namespaces: number;
  instances: number;
  pins: number;
  byStatus: Record<Status, number>;
  memlockBytes: { total: number; orphaned: number; leaked: number };
  /** persistent pins nothing uses (absent in snapshots stored before it existed) */
  stale?: { pins: number; memlockBytes: number };
  /** every BPF object on the host (absent in snapshots taken before pinleak recorded them) */
  objects?: ObjectTotals;
}

export interface ScanError {
  scope: string;
  message: string;
}

/** public: the snapshot document of scan/pins/mounts/leaks --json */
export interface SnapshotDoc {
  schemaVersion: number;
  snapshot: SnapshotMeta;
  namespaces: MountNamespace[];
  instances: BpffsInstance[];
  pins: Pin[];
  summary: Summary;
  errors: ScanError[];
}
