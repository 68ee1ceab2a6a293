// Which objects something alive reaches, and why (SPEC section 2, "in-use"). Pure: the
// scan names every reference it can (KernelRef) and says which objects are alive by
// themselves (roots: held by a process, a live link, references it could only count);
// liveness spreads from those roots along references, transitively: a live program's
// maps, a live prog array's programs, a live outer map's inner maps, and so on.
import { isObjectKind, objectKey, type KernelRef, type UsedBy } from '../model.js';
import { plural } from '../plural.js';
import { pushTo } from '../lists.js';

export interface Liveness {
  /** object key -> why something alive reaches it (the first, shortest chain) */
  live: Map<string, string>;
}

/** How many "because" steps a reason spells out before it stops. */
const MAX_CHAIN = 4;

/**
 * roots: object key -> why it is alive by itself, in order of preference (the first root
 * that reaches an object gives its reason). An empty reason means "alive because it
 * exists" (a live link): its references then say enough on their own. `fallback` roots
 * (what the count guard found) give their reason only to what nothing named reaches.
 */
export function liveness(roots: Map<string, string>, refs: KernelRef[], fallback: Map<string, string> = new Map()): Liveness {
  const out = new Map<string, { why: string; depth: number }>();
  const edges = new Map<string, KernelRef[]>();
  const queue: string[] = [];
  const reach = (k: string, why: string, depth: number) => {
    if (out.has(k)) return;
    out.set(k, { why, depth });
    queue.push(k);
  };
  for (const [k, why] of roots) reach(k, why, 0);
  // Referrers that are not objects (attachment points, sockets, perf events) are alive by themselves.
  for (const r of refs) {
    if (isObjectKind(r.from.kind)) {
      const k = objectKey(r.from.kind, r.from.id);
      pushTo(edges, k, r);
    } else {
      reach(objectKey(r.to.kind, r.to.id), r.what, 1);
    }
  }
  // Breadth first: every object gets its shortest chain; then the fallback roots.
  let i = 0;
  const spread = () => {
    for (; i < queue.length; i++) {
      const from = queue[i]!;
      const { why, depth } = out.get(from)!;
      for (const r of edges.get(from) ?? []) {
        // past MAX_CHAIN steps, only the nearest referrer is named
        const because = !why ? '' : depth + 1 >= MAX_CHAIN ? `, ${why.split(', ')[0]}, …` : `, ${why}`;
        reach(objectKey(r.to.kind, r.to.id), `${r.what}${because}`, depth + 1);
      }
    }
  };
  spread();
  for (const [k, why] of fallback) reach(k, why, 0);
  spread();
  return { live: new Map([...out].map(([k, v]) => [k, v.why])) };
}

/** The references between objects that their info names: a program's maps, a link's program. */
export function objectRefs(
  progs: Map<number, { id: number; name: string; mapIds: number[] }>,
  links: Map<number, { id: number; type: string; progId: number; defunct: boolean; target: string | null }>,
): KernelRef[] {
  const refs: KernelRef[] = [];
  for (const p of progs.values()) {
    for (const m of p.mapIds) {
      refs.push({ to: { kind: 'map', id: m }, from: { kind: 'prog', id: p.id }, what: `used by program ${p.id} (${p.name || 'unnamed'})`, count: 1 });
    }
  }
  for (const l of links.values()) {
    if (!l.progId) continue;
    const what = l.defunct ? `behind defunct ${l.type} link ${l.id}` : `behind live ${l.type} link ${l.id}${l.target ? ` (${l.target})` : ''}`;
    refs.push({ to: { kind: 'prog', id: l.progId }, from: { kind: 'link', id: l.id }, what, count: 1 });
  }
  return refs;
}

/** pin.usedBy: every referrer the scan named, alive or not. */
export function usedByIndex(refs: KernelRef[]): Map<string, UsedBy[]> {
  const idx = new Map<string, UsedBy[]>();
  for (const r of refs) {
    const k = objectKey(r.to.kind, r.to.id);
    const entry: UsedBy = { kind: r.from.kind, id: r.from.id, via: r.what };
    pushTo(idx, k, entry);
  }
  return idx;
}

/** What the kernel counts on one object (from the bpf_map / bpf_prog / bpf_link iterators). */
export interface KernelCount {
  /** refcnt as read by the iterator, which itself holds one reference while it shows the object */
  refcnt: number;
  /** maps only: usercnt (pins, files, iterator and sockmap links) */
  usercnt: number | null;
}

export interface Unexplained {
  /** references the kernel counts that no pin, file or named reference accounts for */
  refs: number;
  /** of a map's usercnt: user references (files, pins) nobody can see: an fd in flight, an io_uring file */
  users: number;
  /** a named reference of unknown weight points at it: the count cannot be checked exactly */
  indeterminate: boolean;
}

/**
 * The count guard (KERNEL-FACTS, "Reference counts"): for each object, the kernel's count
 * minus everything the scan can name. Whatever is left is a live referrer that pinleak
 * cannot name. Only objects with something left over (or that cannot be accounted) are returned.
 */
export function unexplainedReferences(input: {
  counts: Map<string, KernelCount>;
  /** distinct bpffs inodes pinning each object, over every instance */
  pins: Map<string, number>;
  /** distinct open files (fds, their dups and forks, and mmaps of one file are one) per object */
  files: Map<string, number>;
  refs: KernelRef[];
}): Map<string, Unexplained> {
  const named = new Map<string, { refs: number; users: number; indeterminate: boolean }>();
  for (const r of input.refs) {
    const k = objectKey(r.to.kind, r.to.id);
    let n = named.get(k);
    if (!n) named.set(k, (n = { refs: 0, users: 0, indeterminate: false }));
    if (r.count === null) n.indeterminate = true;
    else n.refs += r.count;
    if (r.user) n.users++;
  }
  const out = new Map<string, Unexplained>();
  for (const [k, c] of input.counts) {
    const pins = input.pins.get(k) ?? 0;
    const files = input.files.get(k) ?? 0;
    const n = named.get(k) ?? { refs: 0, users: 0, indeterminate: false };
    const refs = c.refcnt - 1 - pins - files - n.refs;
    const users = c.usercnt === null ? 0 : c.usercnt - pins - files - n.users;
    if (refs > 0 || users > 0 || n.indeterminate) {
      out.set(k, { refs: Math.max(refs, 0), users: Math.max(users, 0), indeterminate: n.indeterminate });
    }
  }
  return out;
}

/** Keeps only what is left over in both of two reads: a referrer being released is not one. */
export function persistentResidue(first: Map<string, Unexplained>, second: Map<string, Unexplained>): Map<string, Unexplained> {
  const out = new Map<string, Unexplained>();
  for (const [k, a] of first) {
    const b = second.get(k);
    if (!b) continue;
    const u = { refs: Math.min(a.refs, b.refs), users: Math.min(a.users, b.users), indeterminate: a.indeterminate && b.indeterminate };
    if (u.refs > 0 || u.users > 0 || u.indeterminate) out.set(k, u);
  }
  return out;
}

/** The reason an unexplained residue gives, for `in-use`. */
export function unexplainedReason(u: Unexplained): string {
  if (u.users > 0) {
    return `${u.users === 1 ? 'a file' : `${u.users} files`} that pinleak cannot see still ${u.users === 1 ? 'holds' : 'hold'} it (an fd in flight in SCM_RIGHTS, an io_uring registered file)`;
  }
  if (u.refs > 0) return `${plural(u.refs, 'reference')} that pinleak cannot name (the kernel counts a live referrer: a socket filter, an LWT route, an iptables rule, an fd in flight)`;
  return 'referenced in a way whose kernel count pinleak cannot check exactly; assumed in use';
}

/**
 * The objects alive by themselves, in order of preference for the reason: held by a
 * process, a live link (alive because it exists and its target does); and, as fallback
 * roots, a residue of references the count guard found.
 */
export function rootsOf(
  holders: Map<string, { pid: number; comm: string }[]>,
  links: Iterable<{ id: number; defunct: boolean }>,
  unexplained: Map<string, Unexplained>,
): { roots: Map<string, string>; fallback: Map<string, string> } {
  const roots = new Map<string, string>();
  for (const [k, h] of holders) if (h.length) roots.set(k, `held by pid ${h[0]!.pid} (${h[0]!.comm})`);
  for (const l of links) {
    const k = objectKey('link', l.id);
    if (!l.defunct && !roots.has(k)) roots.set(k, '');
  }
  const fallback = new Map<string, string>();
  for (const [k, u] of unexplained) if (!roots.has(k)) fallback.set(k, unexplainedReason(u));
  return { roots, fallback };
}
