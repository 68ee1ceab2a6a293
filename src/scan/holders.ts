// Holders: the live processes that keep a BPF object open, by fd or by mmap.
import type { MapDetails } from '../kernel/bpf.js';
import { BPF_F_MMAPABLE, BPF_F_NO_PREALLOC } from '../kernel/abi.js';
import { objectKey, type Container, type Holder } from '../model.js';
import type { Process, ProcessScan } from './processes.js';


export interface HolderIndex {
  /** `${kind}:${id}` -> holders */
  byObject: Map<string, Holder[]>;
  /** map id -> why the mmap attribution is uncertain */
  mmapNotes: Map<number, string>;
}

export function buildHolders(
  ps: ProcessScan,
  maps: Map<number, MapDetails>,
  pageSize: number,
  containerOf: (p: Process) => Container | null,
  /** every mapping of a map's file with its map id (the task_vma iterator): replaces the shape heuristic */
  exactMmaps?: { pid: number; mapId: number }[],
): HolderIndex {
  const byObject = new Map<string, Holder[]>();
  const mmapNotes = new Map<number, string>();
  const holderFor = (key: string, p: Process): Holder => {
    let list = byObject.get(key);
    if (!list) byObject.set(key, (list = []));
    let h = list.find((x) => x.pid === p.pid);
    if (!h) {
      h = { pid: p.pid, startTime: p.startTime, comm: p.comm, fds: [], mntNs: p.mntNs ?? 0, container: containerOf(p) };
      list.push(h);
    }
    return h;
  };
  for (const f of ps.bpfFds) {
    const p = ps.processes.get(f.pid);
    if (p) holderFor(objectKey(f.kind, f.id), p).fds.push(f.fd);
  }

  // The kernel names an mmapped map only "anon_inode:bpf-map": no id. A mapping is
  // attributed to the maps whose shape it has exactly (a whole mmapable array, a ring
  // buffer's producer pages, an arena); only when none has it, to every map it fits
  // into. Several candidates all count as held: a map a process may be using is never
  // called a leak.
  if (exactMmaps) {
    for (const v of exactMmaps) {
      const p = ps.processes.get(v.pid);
      if (p) holderFor(objectKey('map', v.mapId), p).mmapped = true;
    }
  }
  // procfs's mappings: every process without iterators, or one they did not show
  if (ps.mapMappings.size) {
    const mmapable = [...maps.values()].filter((m) => mmapLimit(m, pageSize) > 0);
    for (const [pid, mappings] of ps.mapMappings) {
      const p = ps.processes.get(pid);
      if (!p) continue;
      // A ring buffer's consumer page (offset 0, one page) says nothing on its own once
      // the same process maps that ring buffer's producer pages.
      const producers = mappings.filter((mm) => mmapable.some((m) => isRingbuf(m) && exactShape(m, mm, pageSize)));
      for (const mm of mappings) {
        if (producers.length && mm.offset === 0 && mm.size === pageSize) continue;
        const exact = mmapable.filter((m) => exactShape(m, mm, pageSize));
        const fits = exact.length ? exact : mmapable.filter((m) => mm.offset + mm.size <= mmapLimit(m, pageSize));
        for (const m of fits) {
          const h = holderFor(objectKey('map', m.id), p);
          h.mmapped = true;
          if (fits.length > 1) mmapNotes.set(m.id, `pid ${pid} maps ${mm.size} bytes of one of ${fits.length} maps of that shape; counted as held to be safe`);
        }
      }
    }
  }
  return { byObject, mmapNotes };
}

/**
 * Whether a map of this type and flags could be mmapped (by its fd, or a mapping kept after
 * the fd closed): a mmapable array, a ring buffer, an arena, or a type this version does not
 * know (undefined), which may be one too.
 */
export function mayBeMmapped(type: string | undefined, flags: number): boolean {
  if (type === undefined || type === 'ringbuf' || type === 'user_ringbuf' || type === 'arena') return true;
  if (type === 'array') return (flags & BPF_F_MMAPABLE) !== 0;
  return !NEVER_MMAPPED.has(type);
}
/** Map types the kernel never lets userspace mmap (their map_mmap is absent). */
const NEVER_MMAPPED = new Set([
  'unspec', 'hash', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array', 'stack_trace', 'cgroup_array', 'lru_hash',
  'lru_percpu_hash', 'lpm_trie', 'array_of_maps', 'hash_of_maps', 'devmap', 'sockmap', 'cpumap', 'xskmap', 'sockhash',
  'cgroup_storage', 'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack', 'sk_storage', 'devmap_hash', 'struct_ops',
  'inode_storage', 'task_storage', 'bloom_filter', 'cgrp_storage',
]);

/**
 * Whether a map's memory (its fdinfo memlock) is fixed when it is created, whatever is written
 * to it: arrays, preallocated hashes, queues, stacks and bloom filters. Other types (a hash
 * made with BPF_F_NO_PREALLOC, an LPM trie, a devmap, a sockhash, local storage...) grow with
 * their entries, and a type not measured here (test/kernel/memlock.test.ts) counts as growing.
 */
export function memlockFixed(type: string | undefined, flags: number): boolean {
  if (type !== undefined && PREALLOC_HASHES.has(type)) return (flags & BPF_F_NO_PREALLOC) === 0;
  return type !== undefined && FIXED_SIZE.has(type);
}
const PREALLOC_HASHES = new Set(['hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash', 'hash_of_maps']);
const FIXED_SIZE = new Set(['array', 'percpu_array', 'prog_array', 'array_of_maps', 'queue', 'stack', 'bloom_filter']);

/** The largest mapping a map allows, 0 when it cannot be mmapped. */
export function mmapLimit(m: MapDetails, pageSize: number): number {
  const align = (n: number) => Math.ceil(n / pageSize) * pageSize;
  switch (m.type) {
    case 'array':
      return m.flags & BPF_F_MMAPABLE ? align(Math.ceil(m.valueSize / 8) * 8 * m.maxEntries) : 0;
    case 'ringbuf':
    case 'user_ringbuf':
      return 2 * pageSize + 2 * m.maxEntries; // consumer and producer pages, data mapped twice
    case 'arena':
      return m.maxEntries * pageSize;
    default:
      return 0;
  }
}

const isRingbuf = (m: MapDetails) => m.type === 'ringbuf' || m.type === 'user_ringbuf';

/** Is this mapping exactly what mapping the whole map looks like? */
export function exactShape(m: MapDetails, mm: { size: number; offset: number }, pageSize: number): boolean {
  if (isRingbuf(m)) return mm.offset === pageSize && mm.size === pageSize + 2 * m.maxEntries;
  return mm.offset === 0 && mm.size === mmapLimit(m, pageSize);
}
