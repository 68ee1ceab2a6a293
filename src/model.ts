// The data pinleak passes between its layers. The shapes marked "public" are the JSON
// contract (schemaVersion 1, docs/json.md, a JSON Schema each in docs/schema/): scripts
// parse them, so fields are only ever added, never renamed or dropped.

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
  usedBy: ObjectRef[];
  status: Status;
  reasons: string[];
  owner: Owner;
  creator: Creator | null;
  error?: string | null;
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
