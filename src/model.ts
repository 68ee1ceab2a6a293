// The data pinleak passes between its layers. The shapes marked "public" are
// SPEC section 4 (schemaVersion 1): scripts parse them, so fields are only ever
// added, never renamed or dropped.

export const SCHEMA_VERSION = 1;

export type ObjectKind = 'map' | 'prog' | 'link' | 'unknown';

/** How a BPF object is named across the code: `map:26`. Ids are unique within one boot. */
export const objectKey = (kind: string, id: number): string => `${kind}:${id}`;

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
 * of its own (`tc`, `xdp`, `tcx`, `cgroup`, `netns`, `perf_event`, `sockets`, `struct_ops`,
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
}

export interface Creator {
  pid: number;
  startTime: number | null;
  comm: string | null;
  alive: boolean;
  firstSeenSnapshot: number | null;
  /** run: seen by `pinleak run` holding it; run-window: pinned while `run` ran its command, not seen held */
  source?: 'run' | 'run-window' | 'history' | 'path';
  container?: Container | null;
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

export interface Summary {
  namespaces: number;
  instances: number;
  pins: number;
  byStatus: Record<Status, number>;
  memlockBytes: { total: number; orphaned: number; leaked: number };
  /** persistent pins nothing uses (absent in snapshots stored before it existed) */
  stale?: { pins: number; memlockBytes: number };
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
