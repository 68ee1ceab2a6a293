// Comparing two snapshots (docs/diff.md; the documents: docs/json.md). Within one boot a pin is matched by
// instance, path and object id; across boots (ids, pids and MAJ:MIN all reset) by
// mount point, path, kind and name.
import { SCHEMA_VERSION, pinKey, type Pin, type SnapshotDoc, type SnapshotMeta, type Status } from '../model.js';
import { isLeak, memlockOnce } from './summary.js';
import { pushTo } from '../lists.js';

export interface StatusChange {
  pin: Pin;
  from: Status;
  to: Status;
}

export interface DiffResult {
  schemaVersion: number;
  from: SnapshotMeta;
  to: SnapshotMeta;
  sameBoot: boolean;
  added: Pin[];
  removed: Pin[];
  newlyLeaked: Pin[];
  newlyOrphaned: Pin[];
  resolved: Pin[];
  statusChanged: StatusChange[];
  memlockDelta: { total: number; orphaned: number; leaked: number };
}

/** What a pin is matched by: a stored pin, or one a scan has just found. */
export type PinIdentity = Pick<Pin, 'instance' | 'path'> & { object: { kind: string; id: number; name: string } | null };

/** The key a pin is matched by; `sameBoot` decides which identity still means anything. */
export function pinKeyer(doc: SnapshotDoc, sameBoot: boolean): (p: PinIdentity) => string {
  if (sameBoot) return pinKey;
  // The instance's lowest mount point names it across a reboot (its MAJ:MIN does not).
  const mountOf = new Map<string, string>();
  for (const i of doc.instances) {
    const points = i.mounts.map((m) => m.mountPoint).sort();
    mountOf.set(i.dev, points[0] ?? i.dev);
  }
  return (p) => `${mountOf.get(p.instance) ?? p.instance}\u0000${p.path}\u0000${p.object ? `${p.object.kind}\u0000${p.object.name}` : '-'}`;
}

/**
 * Pairs the pins of two snapshots by key. Across boots several pins can share a key (every
 * pod's own bpffs at the same mount point): they pair off in order, and the rest are
 * added or removed, so no pin disappears from the comparison.
 */
function pairUp(from: SnapshotDoc, to: SnapshotDoc, sameBoot: boolean): { pairs: [Pin | undefined, Pin][]; removed: Pin[] } {
  const fromKey = pinKeyer(from, sameBoot);
  const toKey = pinKeyer(to, sameBoot);
  const before = new Map<string, Pin[]>();
  for (const p of from.pins) {
    const k = fromKey(p);
    pushTo(before, k, p);
  }
  const pairs: [Pin | undefined, Pin][] = to.pins.map((p) => [before.get(toKey(p))?.shift(), p]);
  const removed = [...before.values()].flat();
  return { pairs, removed };
}

export function diffSnapshots(from: SnapshotDoc, to: SnapshotDoc): DiffResult {
  const sameBoot = from.snapshot.bootId === to.snapshot.bootId;
  const { pairs, removed: gone } = pairUp(from, to, sameBoot);

  const added: Pin[] = [];
  const newlyLeaked: Pin[] = [];
  const newlyOrphaned: Pin[] = [];
  const resolved: Pin[] = [];
  const statusChanged: StatusChange[] = [];
  for (const [old, p] of pairs) {
    if (!old) added.push(p);
    else if (old.status !== p.status) statusChanged.push({ pin: p, from: old.status, to: p.status });
    if (p.status === 'leaked' && old?.status !== 'leaked') newlyLeaked.push(p);
    if (p.status === 'orphaned' && !(old && isLeak(old))) newlyOrphaned.push(p);
    if (old && isLeak(old) && !isLeak(p)) resolved.push(p);
  }
  const removed: Pin[] = [];
  for (const p of gone) {
    removed.push(p);
    if (isLeak(p)) resolved.push(p);
  }
  const m0 = from.summary.memlockBytes;
  const m1 = to.summary.memlockBytes;
  return {
    schemaVersion: SCHEMA_VERSION,
    from: from.snapshot,
    to: to.snapshot,
    sameBoot,
    added,
    removed,
    newlyLeaked,
    newlyOrphaned,
    resolved,
    statusChanged,
    memlockDelta: { total: m1.total - m0.total, orphaned: m1.orphaned - m0.orphaned, leaked: m1.leaked - m0.leaked },
  };
}

export interface GateThresholds {
  /** null: no limit on the count (only --max-leaked-bytes was given) */
  maxNewLeaks: number | null;
  maxLeakedBytes: number | null;
}

export interface GateResult {
  schemaVersion: number;
  passed: boolean;
  baseline: SnapshotMeta;
  current: SnapshotMeta;
  newLeaks: Pin[];
  newLeakedBytes: number;
  thresholds: GateThresholds;
}

/** New leaks: pins orphaned or leaked now that were absent from the baseline or had another status there. */
export function gate(baseline: SnapshotDoc, current: SnapshotDoc, thresholds: GateThresholds): GateResult {
  const { pairs } = pairUp(baseline, current, baseline.snapshot.bootId === current.snapshot.bootId);
  const newLeaks = pairs.filter(([old, p]) => isLeak(p) && old?.status !== p.status).map(([, p]) => p);
  const newLeakedBytes = memlockOnce(newLeaks);
  const passed = (thresholds.maxNewLeaks === null || newLeaks.length <= thresholds.maxNewLeaks)
    && (thresholds.maxLeakedBytes === null || newLeakedBytes <= thresholds.maxLeakedBytes);
  return { schemaVersion: SCHEMA_VERSION, passed, baseline: baseline.snapshot, current: current.snapshot, newLeaks, newLeakedBytes, thresholds };
}
