// Every BPF object loaded on the host: every map, program and link id the kernel lists,
// with what the scan already read about it (the reference graph, the pins). This is the
// one place that decides where object facts come from, so a cheaper source (the bpf_map /
// bpf_prog / bpf_link iterators) can replace it without touching the rest.
import { allIds, closeFd, fdById, KernelError, mapInfo } from '../kernel/bpf.js';
import { readBpfFdinfo } from '../kernel/procfs.js';
import { objectKey, type ObjectFacts, type ScanError, type ScannedPin } from '../model.js';
import type { ReferenceGraph } from './references.js';

export type { ObjectFacts };

/** Why a map's details are unknown: see collectObjects. */
export const UNREAD_MAP_NOTE = 'not opened: a map with no pin and no holder could be a prog array, which must not be opened by id (it leaks a kernel reference on this kernel); its type and size need the BPF iterators';

/**
 * Every object id of the host, keyed by objectKey. Programs and links come from the
 * reference graph (read by id). A map is opened by id only when something user-side keeps
 * it (a pin, an fd or a mapping): an unpinned, unheld PROG_ARRAY opened and closed by id can
 * leak a kernel reference, and without the iterators a map's type is not known before it
 * is opened. Pinned maps come from the pin walk; maps the graph already read are reused.
 * Cost: one GET_NEXT_ID per map (none with the iterator's ids), plus three syscalls and an
 * fdinfo read per held map.
 */
export function collectObjects(
  input: {
    graph: ReferenceGraph; pins: ScannedPin[]; heldMaps: Set<number>;
    /** every map id the bpf_map iterator listed: no GET_NEXT_ID walk (~8 us a map) */
    mapIds?: Iterable<number>;
  },
  errors: ScanError[],
): Map<string, ObjectFacts> {
  const { graph } = input;
  const out = new Map<string, ObjectFacts>();
  const memlockOf = (kind: string, id: number) => graph.memlock.get(objectKey(kind, id)) ?? null;
  for (const p of graph.progs.values()) {
    out.set(objectKey('prog', p.id), {
      kind: 'prog', id: p.id, name: p.name, type: p.type, memlockBytes: memlockOf('prog', p.id),
      loadTimeNs: p.loadTimeNs, loaderUid: p.createdByUid, note: null,
    });
  }
  for (const l of graph.links.values()) {
    out.set(objectKey('link', l.id), {
      kind: 'link', id: l.id, name: graph.progs.get(l.progId)?.name ?? '', type: l.type, memlockBytes: memlockOf('link', l.id),
      loadTimeNs: null, loaderUid: null, note: null,
    });
  }
  const pinned = new Map<number, { name: string; type: string; memlockBytes: number }>();
  for (const p of input.pins) if (p.object?.kind === 'map') pinned.set(p.object.id, p.object);
  let ids: number[];
  if (input.mapIds) {
    // the iterator read comes first in a scan: maps pinned or held since are added
    ids = [...new Set([...input.mapIds, ...pinned.keys(), ...input.heldMaps])].sort((a, b) => a - b);
  } else {
    try {
      ids = allIds('map');
    } catch (e) {
      errors.push({ scope: 'maps', message: `cannot list map ids: ${(e as Error).message}` });
      ids = [];
    }
  }
  for (const id of ids) {
    const facts = (f: Partial<ObjectFacts>): ObjectFacts => ({
      kind: 'map', id, name: '', type: 'unknown', memlockBytes: null, loadTimeNs: null, loaderUid: null, note: null, ...f,
    });
    const read = graph.maps.get(id);
    const pin = pinned.get(id);
    if (read) out.set(objectKey('map', id), facts({ name: read.name, type: read.type, memlockBytes: memlockOf('map', id) }));
    else if (pin) out.set(objectKey('map', id), facts({ name: pin.name, type: pin.type, memlockBytes: pin.memlockBytes }));
    else if (input.heldMaps.has(id)) {
      const f = readMap(id, errors);
      if (f) out.set(objectKey('map', id), facts(f));
    } else out.set(objectKey('map', id), facts({ note: UNREAD_MAP_NOTE }));
  }
  return out;
}

/** A held map by id; null when it went away in between. */
function readMap(id: number, errors: ScanError[]): Partial<ObjectFacts> | null {
  const fd = fdById('map', id);
  if (fd === null) return null;
  try {
    const m = mapInfo(fd);
    return { name: m.name, type: m.type, memlockBytes: readBpfFdinfo('self', fd)?.memlock ?? null };
  } catch (e) {
    if (!(e instanceof KernelError && e.code === 'ENOENT')) errors.push({ scope: `map ${id}`, message: (e as Error).message });
    return null;
  } finally {
    closeFd(fd);
  }
}
