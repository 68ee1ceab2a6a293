// Which pins `clean` may remove: pure selection and re-checking against a fresh look.
// Only orphaned and leaked pins are candidates, and stale persistent pins when asked for by
// name (--status persistent --stale), whatever the other filters say.
import type { Pin, SnapshotDoc, Status } from '../model.js';
import { isLeakStatus } from './summary.js';

export interface CleanFilter {
  statuses: Status[];
  /** the place filters (--instance, --path) */
  keep: (p: Pin) => boolean;
  /** only pins made before this time (ms since the epoch); stale pins: unused since before it */
  createdBefore?: number;
  /** --stale: persistent pins that nothing uses (statuses must name persistent too) */
  stale?: boolean;
}

/** Is this pin one `clean` may remove under these statuses? Persistent ones only when stale and asked for. */
function qualifies(p: Pin, statuses: Status[], stale: boolean): boolean {
  if (!statuses.includes(p.status)) return false;
  return isLeakStatus(p.status) || (stale && p.status === 'persistent' && !!p.stale);
}

/** When a candidate's age is measured from: a stale pin's unused run, any other pin's making. */
const ageFrom = (p: Pin): number => Date.parse(p.stale?.since ?? p.createdAt);

export function selectCandidates(doc: SnapshotDoc, f: CleanFilter): Pin[] {
  return doc.pins.filter((p) => qualifies(p, f.statuses, !!f.stale) && !!p.object
    && f.keep(p) && (f.createdBefore === undefined || ageFrom(p) < f.createdBefore));
}

/** Compares a candidate with the fresh look: null when it still qualifies, else why not. */
export function recheck(candidate: Pin, fresh: Pin | undefined, statuses: Status[], stale = false): string | null {
  const o = candidate.object!;
  if (!fresh) return 'the pin is gone since the snapshot';
  if (!fresh.object) return `the pin cannot be read now (${fresh.reasons[0] ?? 'unreadable'})`;
  if (fresh.object.kind !== o.kind || fresh.object.id !== o.id) {
    return `the path now holds ${fresh.object.kind} ${fresh.object.id}, not ${o.kind} ${o.id}`;
  }
  if (fresh.inode !== candidate.inode) return 'the pin was replaced (another inode) since the snapshot';
  if (!qualifies(fresh, statuses, stale)) {
    return fresh.status === 'persistent' ? `it is persistent and not stale now: ${fresh.reasons[0] ?? ''}`.trimEnd()
      : `it is ${fresh.status} now: ${fresh.reasons[0] ?? ''}`.trimEnd();
  }
  return null;
}

