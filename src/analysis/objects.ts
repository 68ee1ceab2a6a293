// Every BPF object on the host explained (issue 16): its pins, holders and references, the
// tool it belongs to, and whether anything pinleak can name keeps it alive. Pure.
import { compareObjects,
  isObjectKind, objectKey, type Container, type HostObject, type Holder, type KernelRef, type ObjectFacts, type ObjectOwner,
  type ObjectTotals, type OwnerTotals, type Pin, type UsedBy,
} from '../model.js';
import { usedByIndex, type Unexplained } from './liveness.js';
import { matchOwner, matchOwnerByName, type OwnerRule } from './owners.js';
import { pushTo } from '../lists.js';

/** The owner catalog's verdict on one object. */
export interface CatalogOwner {
  tool: string;
  persistent: boolean;
  from: 'path' | 'name';
}

/** The catalog's owner of every object: any of its pin paths first (a path beats a name), then its name. */
export function catalogOwners(
  objects: Iterable<{ kind: string; id: number; name: string }>,
  pinPaths: Map<string, string[]>,
  catalog: OwnerRule[],
): Map<string, CatalogOwner> {
  const out = new Map<string, CatalogOwner>();
  for (const o of objects) {
    const k = objectKey(o.kind, o.id);
    let found: CatalogOwner | null = null;
    for (const path of pinPaths.get(k) ?? []) {
      const m = matchOwner(catalog, path, null);
      if (m) {
        found = { tool: m.tool, persistent: m.persistent, from: 'path' };
        break;
      }
    }
    if (!found && o.name) {
      const m = matchOwnerByName(catalog, o.name);
      if (m) found = { tool: m.tool, persistent: m.persistent, from: 'name' };
    }
    if (found) out.set(k, found);
  }
  return out;
}

/**
 * Owners passed down the reference graph: an object with no owner of its own takes the owner
 * of an object that references it (a map used by a tool's program, a program behind the
 * tool's link), transitively, nearest referrer first. Only referrers that `accept` admits pass
 * an owner on (classification admits live ones only: an owner can make a pin persistent).
 */
export function inheritOwners<T>(
  own: Map<string, T>,
  refs: KernelRef[],
  accept: (key: string) => boolean = () => true,
): Map<string, { owner: T; ref: KernelRef }> {
  const edges = new Map<string, KernelRef[]>();
  for (const r of refs) {
    if (!isObjectKind(r.from.kind)) continue;
    const k = objectKey(r.from.kind, r.from.id);
    pushTo(edges, k, r);
  }
  const out = new Map<string, { owner: T; ref: KernelRef }>();
  const queue = [...own].filter(([k]) => accept(k));
  for (let i = 0; i < queue.length; i++) {
    const [from, owner] = queue[i]!;
    for (const r of edges.get(from) ?? []) {
      const to = objectKey(r.to.kind, r.to.id);
      if (own.has(to) || out.has(to)) continue;
      out.set(to, { owner, ref: r });
      if (accept(to)) queue.push([to, owner]);
    }
  }
  return out;
}

export interface ObjectsInput {
  facts: Iterable<ObjectFacts>;
  /** the snapshot's classified pins */
  pins: Pin[];
  holders: Map<string, Holder[]>;
  refs: KernelRef[];
  /** the count guard's residue (empty when it could not run) */
  unexplained: Map<string, Unexplained>;
  /** catalogOwners() of the same objects */
  catalog: Map<string, CatalogOwner>;
  bootEpochMs: number;
  takenAt: string;
}

const holderOwner = (h: Holder): ObjectOwner => ({
  tool: h.comm, from: 'holder', persistent: false, container: h.container, via: `held by pid ${h.pid} (${h.comm})`,
});

/**
 * Every object with its pins, holders, references and owner. The owner, in order: the catalog
 * by the object's own pin paths or name; the catalog owner of an object referencing it; the
 * process holding it; the holder of an object referencing it. An object with no pin, no
 * holder and no named referrer is unexplained: something in the kernel pinleak cannot name
 * keeps it (an fd in flight, an LWT route, an iptables rule, or a kernel-side leak).
 */
export function describeObjects(input: ObjectsInput): HostObject[] {
  const pinsOf = new Map<string, Pin[]>();
  for (const p of input.pins) {
    if (!p.object || p.object.kind === 'unknown') continue;
    const k = objectKey(p.object.kind, p.object.id);
    pushTo(pinsOf, k, p);
  }
  const referencedBy = usedByIndex(input.refs);
  const references = new Map<string, UsedBy[]>();
  for (const r of input.refs) {
    if (!isObjectKind(r.from.kind)) continue;
    const k = objectKey(r.from.kind, r.from.id);
    const entry: UsedBy = { kind: r.to.kind, id: r.to.id, via: r.what };
    pushTo(references, k, entry);
  }
  const fromCatalog = inheritOwners(input.catalog, input.refs);
  const holderOwners = new Map<string, ObjectOwner>();
  for (const [k, hs] of input.holders) if (hs.length) holderOwners.set(k, holderOwner(hs[0]!));
  const fromHolders = inheritOwners(holderOwners, input.refs);

  const ownerOf = (k: string): ObjectOwner | null => {
    const c = input.catalog.get(k);
    if (c) return { tool: c.tool, from: c.from, persistent: c.persistent, container: null, via: null };
    const ic = fromCatalog.get(k);
    if (ic) return { tool: ic.owner.tool, from: 'referrer', persistent: ic.owner.persistent, container: null, via: ic.ref.what };
    const h = holderOwners.get(k);
    if (h) return h;
    const ih = fromHolders.get(k);
    if (ih) return { ...ih.owner, from: 'referrer', via: ih.ref.what };
    return null;
  };

  const out: HostObject[] = [];
  for (const f of input.facts) {
    const k = objectKey(f.kind, f.id);
    const pins = (pinsOf.get(k) ?? []).map((p) => ({ instance: p.instance, path: p.path, status: p.status }));
    const holders = input.holders.get(k) ?? [];
    const by = referencedBy.get(k) ?? [];
    let unexplained: HostObject['unexplained'] = null;
    if (!pins.length && !holders.length && !by.length) {
      const u = input.unexplained.get(k);
      unexplained = {
        refs: u ? u.refs : null, users: u && f.kind === 'map' ? u.users : null, since: input.takenAt, sinceSnapshot: null,
      };
    }
    out.push({
      kind: f.kind, id: f.id, name: f.name, type: f.type, memlockBytes: f.memlockBytes,
      loadedAt: f.loadTimeNs === null ? null : loadedAt(input.bootEpochMs, f.loadTimeNs),
      loaderUid: f.loaderUid, pins, holders, referencedBy: by, references: references.get(k) ?? [],
      owner: ownerOf(k), unexplained, note: f.note,
    });
  }
  return out.sort(compareObjects);
}

/**
 * When a program was loaded, to the second: the wall clock is corrected while the host runs
 * (NTP), so the same load time read in two scans may differ by a millisecond, and an object
 * that changes at every scan is written again at every scan.
 */
function loadedAt(bootEpochMs: number, loadTimeNs: bigint): string {
  return new Date(Math.round((bootEpochMs + Number(loadTimeNs / 1_000_000n)) / 1000) * 1000).toISOString();
}

/** Carries each unexplained object's first sighting over from the history (object key -> since). */
export function withHistory(objects: HostObject[], since: Map<string, { since: string; sinceSnapshot: number | null }>): void {
  for (const o of objects) {
    const s = o.unexplained ? since.get(objectKey(o.kind, o.id)) : undefined;
    if (s) Object.assign(o.unexplained!, s);
  }
}

export function objectTotals(objects: HostObject[]): ObjectTotals {
  const t: ObjectTotals = { maps: 0, progs: 0, links: 0, memlockBytes: 0, unexplained: 0, unexplainedBytes: 0 };
  for (const o of objects) {
    t[o.kind === 'map' ? 'maps' : o.kind === 'prog' ? 'progs' : 'links']++;
    t.memlockBytes += o.memlockBytes ?? 0;
    if (o.unexplained) {
      t.unexplained++;
      t.unexplainedBytes += o.memlockBytes ?? 0;
    }
  }
  return t;
}

/** Totals per owner group, the largest memory first. */
export function ownerTotals(objects: HostObject[]): OwnerTotals[] {
  const groups = new Map<string, HostObject[]>();
  for (const o of objects) {
    const g = ownerGroup(o);
    pushTo(groups, g, o);
  }
  return [...groups].map(([owner, list]) => ({ owner, ...objectTotals(list) }))
    .sort((a, b) => b.memlockBytes - a.memlockBytes || a.owner.localeCompare(b.owner));
}

const containerText = (c: Container) => `${c.runtime} ${c.runtime === 'systemd' ? c.id ?? '' : (c.id ?? '').slice(0, 12)}`.trim();

/** How objects are grouped by owner: the tool, with the container or unit of a holder owner. */
export function ownerGroup(o: HostObject): string {
  if (!o.owner) return 'unknown owner';
  return o.owner.container ? `${o.owner.tool} (${containerText(o.owner.container)})` : o.owner.tool;
}

/** --owner X: the tool, a container id (or its first 12 characters and more), a systemd unit, or "unknown". */
export function ownerMatches(o: HostObject, wanted: string): boolean {
  if (!o.owner) return wanted === 'unknown';
  if (o.owner.tool === wanted) return true;
  const id = o.owner.container?.id;
  return !!id && (id === wanted || (wanted.length >= 12 && id.startsWith(wanted)));
}
