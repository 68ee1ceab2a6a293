// The count guard on the real kernel: what the kernel counts on every object (BPF
// iterators), against everything the scan named. A pin whose object keeps references that
// nothing explains is never offered as a leak (KERNEL-FACTS, "Reference counts").
import { readKernelCounts, iteratorSupport, type KernelCounts } from '../kernel/iterators.js';
import { objectKey, type KernelRef, type ScannedPin } from '../model.js';
import { MAP_TYPES, mapTypeName } from '../kernel/abi.js';
import { persistentResidue, unexplainedReferences, type KernelCount, type Unexplained } from '../analysis/liveness.js';
import { mayBeMmapped } from './holders.js';

/** How long a released referrer may still show in the counts (KERNEL-FACTS: up to ~140 ms). */
export const RESIDUE_SETTLE_MS = 300;

export type CountGuard =
  | { ok: true; counts: KernelCounts }
  | { ok: false; why: string };

/** Set to 0 to run without BPF iterators (no program is loaded): verdicts then lack the count guard. */
export const ITERATORS_ENV = 'PINLEAK_ITERATORS';

/** One read of every object's counts, or why the kernel refuses it. */
export function readCounts(): CountGuard {
  if (process.env[ITERATORS_ENV] === '0') return { ok: false, why: `turned off by ${ITERATORS_ENV}=0` };
  const support = iteratorSupport();
  if (!support.ok) return { ok: false, why: support.why };
  try {
    // no mapping can be of a map when no map can be mmapped
    return { ok: true, counts: readKernelCounts({ vmas: (maps) => [...maps.values()].some((m) => mayBeMmapped(MAP_TYPES[m.type], m.flags)) }) };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

/** Distinct bpffs inodes pinning each object, over every instance walked. */
export function pinCounts(pins: ScannedPin[]): Map<string, number> {
  // instance -> its inodes seen: a hard link is the same pin to the kernel
  const seen = new Map<string, Set<number>>();
  const out = new Map<string, number>();
  for (const p of pins) {
    if (!p.object) continue;
    let inodes = seen.get(p.instance);
    if (!inodes) seen.set(p.instance, (inodes = new Set()));
    if (inodes.has(p.inode)) continue;
    inodes.add(p.inode);
    const k = objectKey(p.object.kind, p.object.id);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/** Distinct open files per object: an fd, its dups, a fork's copy and an mmap of one file count once. */
export function fileCounts(counts: KernelCounts): Map<string, number> {
  const files = new Map<string, Set<bigint>>();
  const add = (k: string, file: bigint) => {
    let s = files.get(k);
    if (!s) files.set(k, (s = new Set()));
    s.add(file);
  };
  for (const f of counts.files) add(objectKey(f.kind, f.id), f.file);
  for (const v of counts.vmas) add(objectKey('map', v.mapId), v.file);
  return new Map([...files].map(([k, s]) => [k, s.size]));
}

export function kernelCountIndex(counts: KernelCounts): Map<string, KernelCount> {
  const out = new Map<string, KernelCount>();
  for (const [id, m] of counts.maps) out.set(objectKey('map', id), { refcnt: m.refcnt, usercnt: m.usercnt });
  for (const [id, p] of counts.progs) out.set(objectKey('prog', id), { refcnt: p.refcnt, usercnt: null });
  for (const [id, l] of counts.links) out.set(objectKey('link', id), { refcnt: l.refcnt, usercnt: null });
  return out;
}

export function residue(counts: KernelCounts, pins: ScannedPin[], refs: KernelRef[]): Map<string, Unexplained> {
  return unexplainedReferences({ counts: kernelCountIndex(counts), pins: pinCounts(pins), files: fileCounts(counts), refs });
}

/**
 * What stays unexplained across two reads RESIDUE_SETTLE_MS apart (a referrer being
 * released is not a referrer). Only candidates (pinned objects nothing else keeps alive)
 * are worth the second read; the rest keep the first read's residue, for information.
 */
export async function settledResidue(
  first: KernelCounts, pins: ScannedPin[], refs: KernelRef[], isCandidate: (key: string) => boolean,
): Promise<Map<string, Unexplained>> {
  const a = residue(first, pins, refs);
  if (![...a.keys()].some(isCandidate)) return a;
  await new Promise((r) => setTimeout(r, RESIDUE_SETTLE_MS));
  const again = readCounts();
  // the second read failing leaves the first read standing: safer than dropping the guard
  if (!again.ok) return a;
  const settled = persistentResidue(a, residue(again.counts, pins, refs));
  for (const [k, u] of a) if (!isCandidate(k)) settled.set(k, u);
  return settled;
}

/** Every map's type name by id, as the bpf_map iterator saw it. */
export function mapTypesOf(guard: CountGuard): Map<number, string> | undefined {
  if (!guard.ok) return undefined;
  return new Map([...guard.counts.maps].map(([id, m]) => [id, mapTypeName(m.type)]));
}
