// The kernel's reference graph: every loaded program, link and (when needed) map, and the
// references the kernel holds between them and on them (KernelRef): a program's maps, a
// link's program, programs attached to cgroups without a link.
import fs from 'node:fs';
import { allIds, fdById, closeFd, progInfo, linkInfo, mapInfo, progQuery, KernelError, type LinkDetails, type MapDetails, type ProgDetails } from '../kernel/bpf.js';
import { CGROUP_ATTACH_TYPES, progTypeName } from '../kernel/abi.js';
import type { KernelProg } from '../kernel/iterators.js';
import type { MountinfoEntry } from '../kernel/procfs.js';
import { PROC, pageSize, readBpfFdinfo } from '../kernel/procfs.js';
import { objectKey, type KernelRef, type ScanError } from '../model.js';
import { objectRefs } from '../analysis/liveness.js';
import { processTarget } from '../analysis/links.js';
import { readStat } from '../kernel/procfs.js';
import { attachmentRefs, type NetnsAttachments } from '../analysis/attachments.js';
import { networkNeeds, readNetnsAttachments } from './network.js';
import type { NetnsTarget } from './netns.js';

export interface ReferenceGraph {
  progs: Map<number, ProgDetails>;
  links: Map<number, LinkDetails>;
  maps: Map<number, MapDetails>;
  /** every reference named: prog -> map, link -> prog, cgroup -> prog, ... */
  refs: KernelRef[];
  /** object key -> memlock from fdinfo, for what was read (only when asked: objects need it) */
  memlock: Map<string, number>;
}

/** Program types that attach to cgroups (the only legacy attachments pinleak can enumerate). */
const CGROUP_PROG_TYPES = new Set([
  'cgroup_skb', 'cgroup_sock', 'sock_ops', 'cgroup_device', 'cgroup_sock_addr', 'cgroup_sysctl', 'cgroup_sockopt', 'lsm',
]);

function readEach<T>(kind: 'map' | 'prog' | 'link', read: (fd: number) => T, errors: ScanError[], memlock?: Map<string, number>): Map<number, T> {
  const out = new Map<number, T>();
  for (const id of allIds(kind)) readOne(kind, id, read, errors, memlock, out);
  return out;
}

/** Reads object `id` into `out` (and its memlock); nothing when it was freed since the id walk. */
function readOne<T>(
  kind: 'map' | 'prog' | 'link', id: number, read: (fd: number) => T, errors: ScanError[], memlock: Map<string, number> | undefined, out: Map<number, T>,
): void {
  const fd = fdById(kind, id);
  if (fd === null) return; // freed since the id walk
  try {
    out.set(id, read(fd));
    // a link's fdinfo has no memlock line (it charges nothing): no read for 0
    if (memlock) memlock.set(objectKey(kind, id), kind === 'link' ? 0 : readBpfFdinfo('self', fd)?.memlock ?? 0);
  } catch (e) {
    if (!(e instanceof KernelError && e.code === 'ENOENT')) errors.push({ scope: `${kind} ${id}`, message: (e as Error).message });
  } finally {
    closeFd(fd);
  }
}

/**
 * What a program's info says never changes while it is loaded (name, type, load time,
 * creator, memlock), except its map ids, which only grow (BPF_PROG_BIND_MAP adds one). So a
 * resident pinleak keeps each program's info and reads it again only when the bpf_prog
 * iterator's count of its maps (used_map_cnt, read this scan) no longer matches. Program ids
 * are not reused within a boot. One cache per process; programs gone are forgotten.
 */
const progCache = new Map<number, { details: ProgDetails; memlock: number }>();

function readProgs(errors: ScanError[], memlock: Map<string, number> | undefined, counts: GraphOptions['progCounts'], kernel: GraphOptions['progInfo']): Map<number, ProgDetails> {
  if (!counts) return readEach('prog', progInfo, errors, memlock);
  const out = new Map<number, ProgDetails>();
  const read = new Map<string, number>();
  const page = pageSize();
  for (const id of allIds('prog')) {
    const c = counts.get(id);
    const hit = progCache.get(id);
    if (c && hit && hit.details.mapIds.length === c.usedMaps) {
      out.set(id, hit.details);
      memlock?.set(objectKey('prog', id), hit.memlock);
      continue;
    }
    // as the bpf_prog iterator read it (its info, without an fd): a program loaded since is read by fd
    const k = c ? kernel?.(id) : null;
    if (c && k) {
      const details: ProgDetails = {
        kind: 'prog', id, name: k.name, type: progTypeName(c.type), mapIds: k.mapIds, loadTimeNs: k.loadTimeNs, createdByUid: k.uid,
      };
      out.set(id, details);
      progCache.set(id, { details, memlock: k.pages * page });
      memlock?.set(objectKey('prog', id), k.pages * page);
      continue;
    }
    readOne('prog', id, progInfo, errors, read, out);
    const details = out.get(id);
    if (details && c) progCache.set(id, { details, memlock: read.get(objectKey('prog', id)) ?? 0 });
    if (details) memlock?.set(objectKey('prog', id), read.get(objectKey('prog', id)) ?? 0);
  }
  for (const id of progCache.keys()) if (!out.has(id)) progCache.delete(id);
  return out;
}

export interface GraphOptions {
  withMaps: boolean;
  cgroupRoots: string[];
  /** every network namespace; called only when a loaded program could be attached to one */
  netns?: () => NetnsTarget[];
  /** also read each object's memlock (one fdinfo read per object; the objects table needs it) */
  memlock?: boolean;
  /** the bpf_prog iterator's counts of this scan: programs whose maps did not change are not read again */
  progCounts?: Map<number, { usedMaps: number; type: number }>;
  /** the bpf_prog iterator's read of each program's info (KernelCounts.progInfo): no fd, no info call */
  progInfo?: (id: number) => KernelProg | null;
}

export function readReferenceGraph(opts: GraphOptions, errors: ScanError[]): ReferenceGraph {
  const memlock = new Map<string, number>();
  const ml = opts.memlock ? memlock : undefined;
  const progs = readProgs(errors, ml, opts.progCounts, opts.progInfo);
  const links = readEach('link', linkInfo, errors, ml);
  for (const l of links.values()) {
    if (l.targetPid !== undefined) Object.assign(l, processTarget(l.targetPid, l.targetPid ? readStat(l.targetPid) : null));
  }
  const maps = opts.withMaps ? readEach('map', mapInfo, errors, ml) : new Map<number, MapDetails>();
  const refs = objectRefs(progs, links);

  // Only cgroup programs not explained by a link can be legacy attachments; skip the
  // cgroup walk entirely when there are none.
  const linked = new Set<number>();
  for (const l of links.values()) linked.add(l.progId);
  const suspects = [...progs.values()].some((p) => CGROUP_PROG_TYPES.has(p.type) && !linked.has(p.id));
  if (suspects) {
    // PROG_QUERY lists a cgroup's programs behind links too: those are the links' references.
    const viaLink = new Set<string>();
    for (const l of links.values()) if (l.type === 'cgroup' && l.target) viaLink.add(`${l.target}\0${l.progId}`);
    for (const root of opts.cgroupRoots) queryCgroupTree(root, refs, errors, viaLink);
  }
  if (opts.netns) refs.push(...networkRefs(opts.netns, progs, links, errors));
  return { progs, links, maps, refs, memlock };
}

/** tc, XDP, tcx, netkit and netns attachments of every network namespace. */
function networkRefs(netns: () => NetnsTarget[], progs: Map<number, ProgDetails>, links: Map<number, LinkDetails>, errors: ScanError[]): KernelRef[] {
  const needs = networkNeeds([...progs.values()].map((p) => p.type));
  if (!needs) return [];
  const spaces: NetnsAttachments[] = [];
  for (const t of netns()) {
    const a = readNetnsAttachments(t, needs, errors);
    if (a) spaces.push(a);
  }
  return attachmentRefs(spaces, links.values(), new Map([...progs.values()].map((p) => [p.id, p.type])));
}

/** The cgroup v2 hierarchies to query, from mountinfo, one path per superblock. */
export function cgroupRoots(mounts: MountinfoEntry[], readerPid: number | null): string[] {
  const seen = new Set<string>();
  const roots: string[] = [];
  for (const m of mounts) {
    if (m.fstype !== 'cgroup2' || seen.has(m.dev)) continue;
    seen.add(m.dev);
    roots.push(readerPid === null ? m.mountPoint : `${PROC}/${readerPid}/root${m.mountPoint}`);
  }
  return roots;
}

function queryCgroupTree(root: string, refs: KernelRef[], errors: ScanError[], viaLink: Set<string>): void {
  const stack = [root];
  const types = Object.entries(CGROUP_ATTACH_TYPES).map(([n, name]) => [Number(n), name] as const);
  while (stack.length) {
    const dir = stack.pop()!;
    let fd: number;
    try {
      fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      continue; // removed meanwhile
    }
    let inode = 0;
    try {
      inode = fs.fstatSync(fd).ino;
      for (const [type, name] of types) {
        let ids: number[];
        try {
          ids = progQuery(fd, type);
        } catch (e) {
          if (e instanceof KernelError && (e.code === 'EINVAL' || e.code === 'ENOENT')) continue;
          errors.push({ scope: `cgroup ${dir}`, message: (e as Error).message });
          break;
        }
        for (const id of ids) {
          if (viaLink.has(`cgroup ${inode}\0${id}`)) continue;
          refs.push({
            to: { kind: 'prog', id }, from: { kind: 'cgroup', id: inode },
            what: `attached to cgroup ${dir.replace(/^\/proc\/\d+\/root/, '')} (${name})`, count: 1,
          });
        }
      }
    } finally {
      closeFd(fd);
    }
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory()) stack.push(`${dir}/${e.name}`);
  }
}
