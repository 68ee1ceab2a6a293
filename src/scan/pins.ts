// Walks each bpffs instance once and reads the object behind every pin.
//
// Containers control their bpffs, so the walk holds each directory open (O_NOFOLLOW) and
// reaches its entries only relative to that fd (getdents64, statx, openat, BPF_OBJ_GET
// with BPF_F_PATH_FD): a directory swapped for a symlink is never followed, and every
// directory must sit on the instance's device.
import fs from 'node:fs';
import { objGetAt, closeFd, objectInfo, fdById, progInfo, KernelError, type LinkDetails, type ObjectDetails, type ProgDetails } from '../kernel/bpf.js';
import { mapTypeName } from '../kernel/abi.js';
import { readBpfFdinfo, devString, readMountinfo, readStat, type BpfFdinfo } from '../kernel/procfs.js';
import { openAt, readDirAt, statAt, type DirEntry, type EntryStat } from '../kernel/fs.js';
import { isLive } from './processes.js';
import type { ObjectKind, ScanError, ScannedObject, ScannedPin } from '../model.js';
import { mountsToWalk, pathBelowMount, type InstanceAccess, type InstanceView } from './instances.js';

const O_DIRECTORY = fs.constants.O_DIRECTORY;
const O_NOFOLLOW = fs.constants.O_NOFOLLOW;
const MAX_DEPTH = 512;

/** Kernel preload iterators (CONFIG_BPF_PRELOAD): dotted names at an instance's root. */
export const PRELOAD_NAMES = new Set(['/maps.debug', '/progs.debug']);

export type { ScannedObject };


export interface ObjectReader {
  /** the object pinned as `name` in the directory `dirFd` */
  read(dirFd: number, name: string): ScannedObject;
  /** a program or link as this scan's reference graph has it (null: not there), with this memlock */
  known(kind: 'prog' | 'link', id: number, memlockBytes: number): ScannedObject | null;
  /** the object a pin held at the last scan, when it cannot have changed since (see host.ts) */
  cached?(dev: string, inode: number, ctimeMs: number): ScannedObject | null;
}

/** What this scan already read of the host's objects (iterators and the reference graph): a pin's object found there needs no info call. */
export interface KnownObjects {
  mapName?: (id: number) => string | null;
  progs?: Map<number, ProgDetails>;
  links?: Map<number, LinkDetails>;
}

/** Reads pinned objects; caches program names (a link is named after its program). */
export function objectReader(known: KnownObjects = {}): ObjectReader {
  const progNames = new Map<number, string>();
  const progName = (id: number): string => {
    let n = known.progs?.get(id)?.name ?? progNames.get(id);
    if (n === undefined) {
      n = '';
      const fd = fdById('prog', id);
      if (fd !== null) {
        try {
          n = progInfo(fd).name;
        } finally {
          closeFd(fd);
        }
      }
      progNames.set(id, n);
    }
    return n;
  };
  // what changes of a program (its maps) and a link (its program, state, target) is the graph's
  const fromGraph = (kind: 'prog' | 'link', id: number, memlockBytes: number): ScannedObject | null => {
    if (kind === 'prog') {
      const p = known.progs?.get(id);
      return p ? { kind, id, name: p.name, type: p.type, memlockBytes, mapIds: p.mapIds } : null;
    }
    // a link is named after its program (which BPF_LINK_UPDATE may change)
    const l = known.links?.get(id);
    return l ? { kind, id, name: l.progId ? progName(l.progId) : '', type: l.type, memlockBytes, progId: l.progId, defunct: l.defunct, target: l.target } : null;
  };
  // the object by the id its fdinfo gives, from what the scan read of every object
  const fromKnown = (fdinfo: BpfFdinfo): ScannedObject | null => {
    const { kind, id, memlock: memlockBytes } = fdinfo;
    if (id === null || kind === null) return null;
    if (kind !== 'map') return fromGraph(kind, id, memlockBytes);
    const name = known.mapName?.(id);
    return name == null || fdinfo.mapType === undefined ? null : { kind, id, name, type: mapTypeName(fdinfo.mapType), memlockBytes };
  };
  return {
    known: fromGraph,
    read(dirFd: number, name: string): ScannedObject {
      const fd = objGetAt(dirFd, name);
      try {
        const fdinfo = readBpfFdinfo('self', fd);
        const seen = fdinfo ? fromKnown(fdinfo) : null;
        if (seen) return seen;
        const kind: ObjectKind = fdinfo?.kind ?? 'unknown';
        const memlockBytes = fdinfo?.memlock ?? 0;
        const d: ObjectDetails | null = objectInfo(fd, kind);
        // Not a map, program or link (or its fdinfo is gone): never a cleanable object.
        if (!d) throw new Error('it opens, but its fdinfo names no map, program or link');
        const o: ScannedObject = { kind, id: d.id, name: d.name, type: d.type, memlockBytes };
        if (d.kind === 'prog') o.mapIds = d.mapIds;
        if (d.kind === 'link') {
          o.progId = d.progId;
          o.name = d.progId ? progName(d.progId) : '';
          o.defunct = d.defunct;
          o.target = d.target;
        }
        return o;
      } finally {
        closeFd(fd);
      }
    },
  };
}

/** The pins of one instance; null when every mount of it went away during the scan. */
export function walkInstance(iv: InstanceView, reader: ObjectReader, errors: ScanError[]): ScannedPin[] | null {
  const inst = iv.instance;
  const pins = new Map<string, ScannedPin>();
  const groups = mountsToWalk(iv.accesses);
  if (!groups.length) {
    inst.error = 'no process can reach any of its mounts';
    errors.push({ scope: `instance ${inst.dev}`, message: inst.error });
    return [];
  }
  let vanished = 0;
  for (const group of groups) {
    const root = group[0]!.mount.root;
    let walked = false;
    const failures: string[] = [];
    for (const access of group) {
      let fd: number;
      try {
        fd = fs.openSync(access.path, fs.constants.O_RDONLY | O_DIRECTORY);
      } catch (e) {
        failures.push(`${access.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        continue;
      }
      try {
        const dev = devString(fs.fstatSync(fd).dev);
        if (dev !== inst.dev) {
          // Another mount covers this mount point in that namespace; try the next one.
          failures.push(`${access.path}: covered by another mount (device ${dev})`);
          continue;
        }
        walkDir(fd, root === '/' ? '' : root, 0, inst.dev, (rel, st, dirFd, name) => {
          if (pins.has(rel)) return;
          const pin = readPin(inst.dev, rel, st, dirFd, name, reader);
          if (pin) pins.set(rel, pin);
        }, errors);
        walked = true;
      } finally {
        closeFd(fd);
      }
      break;
    }
    if (!walked) {
      // Unmounted while we scanned: the instance is gone, which is not a partial view.
      if (group.every((a) => !stillMounted(a, inst.dev))) {
        vanished++;
        continue;
      }
      const msg = `could not walk mount root ${root}: ${failures.join('; ')}`;
      inst.error = inst.error ? `${inst.error}; ${msg}` : msg;
      errors.push({ scope: `instance ${inst.dev}`, message: msg });
    }
  }
  if (vanished === groups.length) return null;
  const out = [...pins.values()];
  for (const p of out) {
    for (const m of inst.mounts) {
      const mp = pathBelowMount(p.path, m.root, m.mountPoint);
      if (mp !== null) p.mountPaths.push({ mntNs: m.mntNs, path: mp });
    }
  }
  return out;
}

/** false only when a live reader's mount table no longer has the mount; a reader that exited proves nothing. */
/**
 * Is the mount still there? Asked of any process of its namespace that can still be read;
 * when none can, it is gone only if none of them is alive any more (the namespace ended
 * with its last process); a live process we cannot read proves nothing (a partial view).
 */
function stillMounted(a: InstanceAccess, dev: string): boolean {
  const pids = [a.readerPid, ...a.nsPids.filter((p) => p !== a.readerPid)];
  for (const pid of pids) {
    const mounts = readMountinfo(pid);
    if (mounts) return mounts.some((m) => m.mountId === a.mount.mountId && m.dev === dev);
  }
  return pids.some((pid) => {
    const st = readStat(pid);
    return st !== null && isLive(st);
  });
}

type PinVisitor = (rel: string, st: EntryStat, dirFd: number, name: string) => void;

function walkDir(dirFd: number, rel: string, depth: number, dev: string, visit: PinVisitor, errors: ScanError[]): void {
  const [major, minor] = dev.split(':').map(Number) as [number, number];
  walkBelow(dirFd, rel, depth, dev, major, minor, visit, errors);
}

function walkBelow(
  dirFd: number, rel: string, depth: number, dev: string, major: number, minor: number, visit: PinVisitor, errors: ScanError[],
): void {
  let entries: DirEntry[];
  try {
    // getdents64 on the held fd: nothing is resolved by path
    entries = readDirAt(dirFd);
  } catch (e) {
    errors.push({ scope: `instance ${dev}`, message: `cannot list ${rel || '/'}: ${(e as KernelError).code ?? (e as Error).message}` });
    return;
  }
  for (const e of entries) {
    let kind = e.kind;
    if (kind === 'unknown') {
      // a file system that does not fill in d_type: ask the inode
      const st = statAt(dirFd, e.name);
      kind = !st ? 'other' : st.isDirectory ? 'dir' : st.isFile ? 'file' : 'other';
    }
    if (kind === 'other') continue; // a symlink (never followed), a device, a socket...
    const childRel = `${rel}/${e.name}`;
    if (kind === 'dir') {
      if (depth >= MAX_DEPTH) {
        errors.push({ scope: `instance ${dev}`, message: `${childRel}: deeper than ${MAX_DEPTH} levels, not walked` });
        continue;
      }
      let cfd: number;
      try {
        cfd = openAt(dirFd, e.name, fs.constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch {
        continue; // removed or swapped for a symlink since the listing
      }
      try {
        if (devString(fs.fstatSync(cfd).dev) !== dev) {
          continue; // something else mounted on top: not this instance
        }
        walkBelow(cfd, childRel, depth + 1, dev, major, minor, visit, errors);
      } finally {
        closeFd(cfd);
      }
      continue;
    }
    // before opening: BPF_OBJ_GET touches atime; relative to the held directory, no symlink followed
    const st = statAt(dirFd, e.name);
    if (!st) continue; // unpinned since the listing
    if (!st.isFile || st.devMajor !== major || st.devMinor !== minor) continue;
    visit(childRel, st, dirFd, e.name);
  }
}

/** null when the pin was removed between the listing and the open: normal on a busy host. */
function readPin(dev: string, rel: string, st: EntryStat, dirFd: number, name: string, reader: ObjectReader): ScannedPin | null {
  const pin: ScannedPin = {
    instance: dev, path: rel, mountPaths: [], inode: st.ino, ctimeMs: st.ctimeMs, uid: st.uid, gid: st.gid,
    mode: st.mode & 0o7777, object: null, error: null, preload: PRELOAD_NAMES.has(rel),
  };
  try {
    pin.object = reader.cached?.(dev, st.ino, st.ctimeMs) ?? reader.read(dirFd, name);
  } catch (e) {
    if (e instanceof KernelError && e.code === 'ENOENT' && !pin.preload && !statAt(dirFd, name)) return null;
    pin.error = e instanceof KernelError ? `cannot open: ${e.code}` : `cannot read: ${(e as Error).message}`;
  }
  return pin;
}
