// Counts and memory totals. An object pinned at several paths is several pins but its
// memory is counted once.
import { STATUSES, objectKey, type BpffsInstance, type Pin, type Status, type Summary } from '../model.js';
import { pushTo } from '../lists.js';

/** The statuses that are leaks (SPEC section 2): nothing alive uses the object and no owner keeps it on purpose. */
export const LEAK_STATUSES = ['leaked', 'orphaned'] as const satisfies readonly Status[];
export type LeakStatus = (typeof LEAK_STATUSES)[number];

/** Is this status a leak? The one test; every "is it a leak?" goes through it. */
export const isLeakStatus = (s: Status): s is LeakStatus => (LEAK_STATUSES as readonly Status[]).includes(s);
export const isLeak = (p: Pick<Pin, 'status'>): boolean => isLeakStatus(p.status);
/** How many pins of a summary's counts are leaks. */
export const leakCount = (byStatus: Record<Status, number>): number => LEAK_STATUSES.reduce((n, s) => n + byStatus[s], 0);

/** How reports and metrics name a pin's owner tool: `unknown` when no rule knows it. */
export const ownerName = (tool: string | null | undefined): string => tool || 'unknown';

const objectId = (p: Pin) => (p.object ? objectKey(p.object.kind, p.object.id) : null);

/** Sum of memlock over distinct objects of the given pins. */
export function memlockOnce(pins: Pin[]): number {
  const seen = new Set<string>();
  let total = 0;
  for (const p of pins) {
    const id = objectId(p);
    if (!id || seen.has(id)) continue;
    seen.add(id);
    total += p.object!.memlockBytes;
  }
  return total;
}

export function summarize(pins: Pin[], namespaces: number, instances: number): Summary {
  const byStatus = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<Status, number>;
  // one pass: each object's memory counted once overall and once per status
  const seen = { total: new Set<string>(), orphaned: new Set<string>(), leaked: new Set<string>(), stale: new Set<string>() };
  const memlockBytes = { total: 0, orphaned: 0, leaked: 0 };
  const stale = { pins: 0, memlockBytes: 0 };
  for (const p of pins) {
    byStatus[p.status]++;
    if (p.stale) stale.pins++;
    const id = objectId(p);
    if (!id) continue;
    const bytes = p.object!.memlockBytes;
    if (p.stale && !seen.stale.has(id)) {
      seen.stale.add(id);
      stale.memlockBytes += bytes;
    }
    if (!seen.total.has(id)) {
      seen.total.add(id);
      memlockBytes.total += bytes;
    }
    if (isLeakStatus(p.status) && !seen[p.status].has(id)) {
      seen[p.status].add(id);
      memlockBytes[p.status] += bytes;
    }
  }
  return { namespaces, instances, pins: pins.length, byStatus, memlockBytes, stale };
}

/** Fills each instance's pin count and memory (objects counted once per instance). */
export function fillInstanceTotals(instances: BpffsInstance[], pins: Pin[]): void {
  const byDev = new Map<string, Pin[]>();
  for (const p of pins) {
    pushTo(byDev, p.instance, p);
  }
  for (const inst of instances) {
    const list = byDev.get(inst.dev) ?? [];
    inst.pinCount = list.length;
    inst.memlockBytes = memlockOnce(list);
  }
}
