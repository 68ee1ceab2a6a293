// What maps hold, named as references from the map (KernelRef, so liveness follows them
// transitively): a prog array's programs (tail calls), a map-in-map's inner maps, the
// programs of devmap and cpumap entries, a sock map's programs and the sockets in it. And
// the programs that processes' perf events run.
//
// Prog arrays are opened only through a pin or by duplicating a holder's fd, never by id:
// one with no user reference left is empty anyway (the kernel clears it when its last
// user reference goes), and opening such an array by id was seen to leak it (KERNEL-FACTS).
// Other maps are opened by id, but only maps whose type is already known (from a pin, a
// holder's fdinfo, or a map read for other reasons): no map is opened by id merely to
// learn its type. Hostile maps can have 2^32 entries: reads are bounded per map and per scan.
import {
  closeFd, duplicateFd, fdById, KernelError, mapInfo, mapLookup, mapNextKey, objGet, progQuery, taskFdQuery,
  type LinkDetails, type MapDetails, type ProgDetails,
} from '../kernel/bpf.js';
import { SOCK_MAP_ATTACH_TYPES } from '../kernel/abi.js';
import { readStructOps } from '../kernel/structops.js';
import type { KernelRef, ScanError, ScannedPin } from '../model.js';
import { pathThrough, type InstanceAccess } from './instances.js';
import type { FdRef, PerfFd, ProcessScan } from './processes.js';
import type { ReferenceGraph } from './references.js';
import { plural } from '../plural.js';
import { pushTo } from '../lists.js';

export interface ContentLimits {
  /** entries read from one map */
  perMap: number;
  /** map syscalls (lookups, next keys) over all maps of one read */
  total: number;
}

/** ~1 µs a lookup: the whole budget costs about a second, on a host built to be hostile. */
export const CONTENT_LIMITS: ContentLimits = { perMap: 65_536, total: 1_048_576 };

/** The map types whose entries reference other objects; `hashed` ones are walked by key. */
const CONTENT_TYPES: Record<string, { hashed: boolean; label: string }> = {
  prog_array: { hashed: false, label: 'prog array' },
  array_of_maps: { hashed: false, label: 'array_of_maps' },
  hash_of_maps: { hashed: true, label: 'hash_of_maps' },
  devmap: { hashed: false, label: 'devmap' },
  devmap_hash: { hashed: true, label: 'devmap_hash' },
  cpumap: { hashed: false, label: 'cpumap' },
  sockmap: { hashed: false, label: 'sockmap' },
  sockhash: { hashed: true, label: 'sockhash' },
  struct_ops: { hashed: false, label: 'struct_ops map' },
};

export const isContentMap = (type: string): boolean => Object.hasOwn(CONTENT_TYPES, type);

/** Where the maps to read are, and how they may be opened. */
export interface ContentSources {
  /** map id -> type, for every map whose type is known without opening it by id */
  types: Map<number, string>;
  /** map id -> host paths of its pins */
  pinPaths: Map<number, string[]>;
  /** map id -> processes' fds of it */
  heldFds: Map<number, { pid: number; fd: number }[]>;
}

export function contentSources(input: {
  pins: ScannedPin[];
  access: Map<string, InstanceAccess[]>;
  fds: FdRef[];
  maps: Map<number, MapDetails>;
  /** every map's type by id, from the bpf_map iterator: no map is opened just to learn it */
  mapTypes?: Map<number, string>;
}): ContentSources {
  const src: ContentSources = { types: new Map(), pinPaths: new Map(), heldFds: new Map() };
  for (const [id, type] of input.mapTypes ?? []) if (isContentMap(type)) src.types.set(id, type);
  for (const m of input.maps.values()) if (isContentMap(m.type)) src.types.set(m.id, m.type);
  for (const f of input.fds) {
    if (f.kind !== 'map' || !f.mapType || !isContentMap(f.mapType)) continue;
    src.types.set(f.id, f.mapType);
    pushTo(src.heldFds, f.id, { pid: f.pid, fd: f.fd });
  }
  for (const p of input.pins) {
    const o = p.object;
    if (o?.kind !== 'map' || !isContentMap(o.type)) continue;
    src.types.set(o.id, o.type);
    for (const a of input.access.get(p.instance) ?? []) {
      const at = pathThrough(a, p.path);
      if (at) pushTo(src.pinPaths, o.id, at);
    }
  }
  return src;
}

/** A map, or its pin or holder, that went away meanwhile: nothing left to follow. */
const vanished = (e: unknown) => e instanceof KernelError && ['ENOENT', 'EBADF', 'ESRCH'].includes(e.code);

/**
 * Opens one map to read: through its pins, then its holders' fds, then (not a prog array)
 * by id. Each fd is checked to be that map: a pin path or a holder's fd number may name
 * another object by now. null when it has gone.
 */
function openMap(id: number, type: string, src: ContentSources): { fd: number; info: MapDetails } | null {
  const attempts: (() => number | null)[] = [
    ...(src.pinPaths.get(id) ?? []).map((p) => () => objGet(p)),
    ...(src.heldFds.get(id) ?? []).map((h) => () => duplicateFd(h.pid, h.fd)),
  ];
  if (type !== 'prog_array') attempts.push(() => fdById('map', id));
  let failure: unknown = null;
  for (const open of attempts) {
    let fd: number | null;
    try {
      fd = open();
    } catch (e) {
      if (!vanished(e)) failure = e;
      continue;
    }
    if (fd === null) continue;
    try {
      const info = mapInfo(fd);
      if (info.id === id && info.type === type) return { fd, info };
    } catch (e) {
      if (!vanished(e)) failure = e;
    }
    closeFd(fd);
  }
  if (failure) throw failure;
  return null;
}

interface Budget {
  left: number;
}

/**
 * Calls `visit` with each entry's key and value (null when an array slot is empty, or for a
 * hashed map when `lookup` is false), at most `limit` of them. Returns how many keys were
 * visited and whether that was all of them.
 */
function eachEntry(
  fd: number, m: MapDetails, lookup: boolean, budget: Budget, visit: (key: Buffer, value: Buffer | null) => void,
): { read: number; complete: boolean } {
  const limit = Math.min(CONTENT_LIMITS.perMap, budget.left);
  const valueSize = Math.max(m.valueSize, 8);
  let read = 0;
  if (!CONTENT_TYPES[m.type]!.hashed) {
    const n = Math.min(m.maxEntries, limit);
    const key = Buffer.alloc(4);
    for (; read < n; read++) {
      key.writeUInt32LE(read);
      budget.left--;
      visit(key, lookup ? mapLookup(fd, key, valueSize) : null);
    }
    return { read, complete: n === m.maxEntries };
  }
  let key: Buffer | null = null;
  for (;;) {
    budget.left--;
    const next = mapNextKey(fd, key, m.keySize);
    if (!next) return { read, complete: true };
    if (read === limit) return { read, complete: false };
    read++;
    key = next;
    let value: Buffer | null = null;
    if (lookup) {
      budget.left--;
      value = mapLookup(fd, key, valueSize);
    }
    visit(key, value);
  }
}

function keyText(key: Buffer, keySize: number): string {
  if (keySize === 4) return String(key.readUInt32LE(0));
  const shown = key.subarray(0, Math.min(keySize, 16)).toString('hex');
  return `0x${shown}${keySize > 16 ? '…' : ''}`;
}

/**
 * The references one open map holds. `linkedProgs`: programs attached to this sock map
 * through a sockmap link (the link holds their reference, not the map).
 */
function refsOfMap(fd: number, m: MapDetails, budget: Budget, linkedProgs: Set<number>, errors: ScanError[]): KernelRef[] {
  const refs: KernelRef[] = [];
  const label = `${CONTENT_TYPES[m.type]!.label} ${m.id}`;
  const from = { kind: 'map', id: m.id };
  let outcome: { read: number; complete: boolean };
  switch (m.type) {
    case 'prog_array':
    case 'array_of_maps':
    case 'hash_of_maps': {
      const toKind = m.type === 'prog_array' ? 'prog' : 'map';
      outcome = eachEntry(fd, m, true, budget, (key, value) => {
        if (!value) return;
        const k = keyText(key, m.keySize);
        const what = m.type === 'prog_array' ? `tail call slot ${k} of ${label}` : `inner map at key ${k} of ${label}`;
        // the kernel counts one reference per entry (KERNEL-FACTS: PROG_ARRAY and map-in-map entries)
        refs.push({ to: { kind: toKind, id: value.readUInt32LE(0) }, from, what, count: 1 });
      });
      break;
    }
    case 'devmap':
    case 'devmap_hash':
    case 'cpumap': {
      // struct bpf_devmap_val {ifindex, prog id}, struct bpf_cpumap_val {qsize, prog id}: a
      // map of 4-byte values has no program field
      if (m.valueSize < 8) return refs;
      outcome = eachEntry(fd, m, true, budget, (key, value) => {
        const prog = value?.readUInt32LE(4) ?? 0;
        if (!prog) return;
        const where = m.type === 'cpumap' ? `cpu ${keyText(key, m.keySize)}` : `entry ${keyText(key, m.keySize)} (ifindex ${value!.readUInt32LE(0)})`;
        // devmap: +1 per entry measured (KERNEL-FACTS); cpumap not measured yet
        refs.push({ to: { kind: 'prog', id: prog }, from, what: `program of ${label} ${where}`, count: 1 });
      });
      break;
    }
    case 'sockmap':
    case 'sockhash': {
      // A lookup gives a socket's cookie only with 8-byte values (4-byte ones answer ENOSPC);
      // a sockhash's keys are its sockets either way.
      const cookies = m.valueSize === 8;
      const known = cookies || m.type === 'sockhash';
      const sockets = new Set<string>();
      outcome = !known ? { read: 0, complete: true } : eachEntry(fd, m, cookies, budget, (key, value) => {
        if (!cookies) sockets.add(key.toString('hex'));
        else if (value) sockets.add(value.toString('hex', 0, 8));
      });
      if (!known) {
        refs.push({ to: { kind: 'map', id: m.id }, from: { kind: 'sockets', id: 0 }, what: 'may hold sockets (a sockmap with 4-byte values does not say which slots are taken)', count: null });
      } else if (sockets.size) {
        refs.push({ to: { kind: 'map', id: m.id }, from: { kind: 'sockets', id: sockets.size }, what: `holds ${plural(sockets.size, 'socket')}`, count: null });
      }
      for (const [type, name] of Object.entries(SOCK_MAP_ATTACH_TYPES)) {
        let ids: number[];
        try {
          ids = progQuery(fd, Number(type));
        } catch (e) {
          if (e instanceof KernelError && e.code === 'EINVAL') continue; // not a type this kernel attaches to sock maps
          throw e;
        }
        for (const id of ids) {
          // The map holds one reference on each program it runs (none when a sockmap link
          // holds it); each socket that joined after the attach holds one more.
          const count = known && sockets.size === 0 ? (linkedProgs.has(id) ? 0 : 1) : null;
          refs.push({ to: { kind: 'prog', id }, from, what: `${name} program of ${label}`, count });
        }
      }
      break;
    }
    case 'struct_ops': {
      // one value (key 0): its state, and the kernel's program id in each function-pointer slot
      const ops = readStructOps(fd);
      const what = `${ops.structName}${ops.name ? ` '${ops.name}'` : ''}`;
      // registered without a link: the registration holds one reference on the map (KERNEL-FACTS)
      if (ops.state === 'inuse') refs.push({ to: { kind: 'map', id: m.id }, from: { kind: 'struct_ops', id: m.id }, what: `registered ${what}`, count: 1 });
      for (const slot of ops.slots) {
        // each slot holds one reference on its program (KERNEL-FACTS: struct_ops slots)
        refs.push({ to: { kind: 'prog', id: slot.progId }, from, what: `${slot.member} of ${what} (${label})`, count: 1 });
      }
      return refs;
    }
    default:
      return refs;
  }
  if (!outcome.complete) {
    const of = CONTENT_TYPES[m.type]!.hashed ? '' : ` of ${m.maxEntries}`;
    errors.push({
      scope: `map ${m.id}`,
      message: `read ${outcome.read}${of} entries of ${label} and stopped (bounded); the unread entries were not followed, so what only they reference is not known to be in use`,
    });
  }
  return refs;
}

/** References held by map contents: tail calls, inner maps, devmap/cpumap programs, sock maps' programs and sockets, struct_ops registrations and slots. */
export function mapContentRefs(src: ContentSources, links: Map<number, LinkDetails>, errors: ScanError[]): KernelRef[] {
  const refs: KernelRef[] = [];
  const linked = new Map<number, Set<number>>();
  for (const l of links.values()) {
    if (l.mapId === undefined) continue;
    if (l.type === 'struct_ops') {
      // a struct_ops link registers its map and holds one reference on it (KERNEL-FACTS)
      refs.push({ to: { kind: 'map', id: l.mapId }, from: { kind: 'link', id: l.id }, what: `registered by struct_ops link ${l.id}`, count: 1 });
      continue;
    }
    let s = linked.get(l.mapId);
    if (!s) linked.set(l.mapId, (s = new Set()));
    s.add(l.progId);
    // a sockmap link holds a reference (and a user reference) on its map
    refs.push({ to: { kind: 'map', id: l.mapId }, from: { kind: 'link', id: l.id }, what: `sock map of sockmap link ${l.id}`, count: 1, user: true });
  }
  const budget: Budget = { left: CONTENT_LIMITS.total };
  for (const [id, type] of src.types) {
    const label = `${CONTENT_TYPES[type]!.label} ${id}`;
    if (budget.left <= 0) {
      errors.push({ scope: `map ${id}`, message: `${label} not read: the scan's budget of ${CONTENT_LIMITS.total} map reads is spent; what it references is not known to be in use` });
      continue;
    }
    let opened: ReturnType<typeof openMap>;
    try {
      opened = openMap(id, type, src);
    } catch (e) {
      errors.push({ scope: `map ${id}`, message: `cannot open ${label} to read its entries: ${(e as Error).message}` });
      continue;
    }
    if (!opened) continue; // gone, or (a prog array) no pin or holder left: then it is empty
    try {
      refs.push(...refsOfMap(opened.fd, opened.info, budget, linked.get(id) ?? new Set(), errors));
    } catch (e) {
      if (!vanished(e)) errors.push({ scope: `map ${id}`, message: `cannot read the entries of ${label}: ${(e as Error).message}` });
    } finally {
      closeFd(opened.fd);
    }
  }
  return refs;
}

/**
 * The programs processes' perf events run (BPF_TASK_FD_QUERY on each perf event fd): the
 * process holding the perf event keeps its program alive. The kernel does not name a
 * perf_event-type program (EOPNOTSUPP): such an event may run any loaded perf_event
 * program, so each is referenced with an unknown count (safe: never a false leak).
 */
export function perfEventRefs(
  perfFds: PerfFd[], comm: (pid: number) => string, progs: Map<number, ProgDetails>, errors: ScanError[],
): KernelRef[] {
  const refs: KernelRef[] = [];
  const unnamed = new Set<number>();
  for (const { pid, fd } of perfFds) {
    const holder = `held by pid ${pid} (${comm(pid)}) fd ${fd}`;
    try {
      const p = taskFdQuery(pid, fd);
      if (p) refs.push({ to: { kind: 'prog', id: p.progId }, from: { kind: 'perf_event', id: pid }, what: `perf event (${p.fdType} ${p.name}) ${holder}`, count: 1 });
    } catch (e) {
      if (vanished(e)) continue; // closed or exited meanwhile
      if (e instanceof KernelError && e.code === 'EOPNOTSUPP') {
        if (unnamed.has(pid)) continue;
        unnamed.add(pid);
        for (const prog of progs.values()) {
          if (prog.type !== 'perf_event') continue;
          refs.push({ to: { kind: 'prog', id: prog.id }, from: { kind: 'perf_event', id: pid }, what: `perhaps the program of a perf event ${holder} (the kernel does not say which perf_event program an event runs)`, count: null });
        }
        continue;
      }
      errors.push({ scope: `pid ${pid}`, message: `cannot ask which program perf event fd ${fd} runs: ${(e as Error).message}` });
    }
  }
  return refs;
}

/** Every reference map contents and perf events hold, for the scan and for clean's last re-check alike. */
export function contentRefs(input: {
  ps: ProcessScan;
  graph: ReferenceGraph;
  pins: ScannedPin[];
  access: Map<string, InstanceAccess[]>;
  mapTypes?: Map<number, string>;
}, errors: ScanError[]): KernelRef[] {
  const { ps, graph } = input;
  const src = contentSources({ pins: input.pins, access: input.access, fds: ps.bpfFds, maps: graph.maps, mapTypes: input.mapTypes });
  return [
    ...mapContentRefs(src, graph.links, errors),
    ...perfEventRefs(ps.perfFds, (pid) => ps.processes.get(pid)?.comm ?? '?', graph.progs, errors),
  ];
}
