// bpffs instances: every bpf mount of every namespace, grouped by superblock (MAJ:MIN),
// so one instance is walked once however many times and places it is mounted.
import { PROC } from '../kernel/procfs.js';
import type { BpffsInstance, Delegation, InstanceMount } from '../model.js';
import type { NamespaceView } from './namespaces.js';
import { pushTo } from '../lists.js';

export interface InstanceAccess {
  /** host path that reaches the mount: /proc/<pid>/root/<mount point> */
  path: string;
  /** the process whose root the path goes through */
  readerPid: number;
  /** every process of that namespace: tells a namespace that ended during the scan from one that could not be read */
  nsPids: number[];
  mount: InstanceMount;
}

export interface InstanceView {
  instance: BpffsInstance;
  accesses: InstanceAccess[];
}

export function collectInstances(views: NamespaceView[]): InstanceView[] {
  const byDev = new Map<string, InstanceView>();
  for (const v of views) {
    for (const m of v.mounts) {
      if (m.fstype !== 'bpf') continue;
      let iv = byDev.get(m.dev);
      if (!iv) {
        iv = {
          instance: { dev: m.dev, mounts: [], delegation: parseDelegation(m.superOptions), pinCount: 0, memlockBytes: 0, error: null },
          accesses: [],
        };
        byDev.set(m.dev, iv);
      }
      const mount: InstanceMount = { mntNs: v.ns.mntNs, mountId: m.mountId, mountPoint: m.mountPoint, root: m.root, superOptions: m.superOptions };
      iv.instance.mounts.push(mount);
      if (v.readerPid !== null) iv.accesses.push({ path: `${PROC}/${v.readerPid}/root${m.mountPoint === '/' ? '' : m.mountPoint}`, readerPid: v.readerPid, nsPids: v.ns.pids, mount });
    }
  }
  return [...byDev.values()];
}

/** BPF token delegation options of a bpffs (delegate_cmds, delegate_maps, delegate_progs, delegate_attachs). */
export function parseDelegation(superOptions: string): Delegation | null {
  const d: Delegation = { cmds: null, maps: null, progs: null, attachs: null };
  let any = false;
  for (const opt of superOptions.split(',')) {
    const eq = opt.indexOf('=');
    if (eq < 0) continue;
    const key = opt.slice(0, eq);
    const value = opt.slice(eq + 1);
    if (key === 'delegate_cmds') d.cmds = value;
    else if (key === 'delegate_maps') d.maps = value;
    else if (key === 'delegate_progs') d.progs = value;
    else if (key === 'delegate_attachs') d.attachs = value;
    else continue;
    any = true;
  }
  return any ? d : null;
}

/**
 * Which mounts to walk: a mount whose root is inside an already chosen mount's root shows
 * nothing new. Roots sort so that "/" (the whole instance) comes first.
 */
export function mountsToWalk(accesses: InstanceAccess[]): InstanceAccess[][] {
  const byRoot = new Map<string, InstanceAccess[]>();
  for (const a of accesses) {
    pushTo(byRoot, a.mount.root, a);
  }
  const roots = [...byRoot.keys()].sort((a, b) => a.length - b.length || a.localeCompare(b));
  const chosen: string[] = [];
  for (const r of roots) {
    if (!chosen.some((c) => isWithin(r, c))) chosen.push(r);
  }
  return chosen.map((r) => byRoot.get(r)!);
}

/** Is `path` equal to or below `root`? Both absolute. */
export function isWithin(path: string, root: string): boolean {
  if (root === '/') return true;
  return path === root || path.startsWith(root + '/');
}

/** The path a pin has below a mount whose root is `root` (instance-relative pin path). */
export function pathBelowMount(pinPath: string, root: string, mountPoint: string): string | null {
  if (!isWithin(pinPath, root)) return null;
  const rest = root === '/' ? pinPath : pinPath.slice(root.length);
  return mountPoint === '/' ? rest : mountPoint + rest;
}

/** The host path that reaches a pin (instance-relative path) through one access, or null when that mount does not show it. */
export function pathThrough(a: InstanceAccess, pinPath: string): string | null {
  if (!isWithin(pinPath, a.mount.root) || pinPath === a.mount.root) return null;
  return a.path + (a.mount.root === '/' ? pinPath : pinPath.slice(a.mount.root.length));
}
