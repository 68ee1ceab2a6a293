// Which pins `clean` may remove: pure selection and re-checking against a fresh look.
// Only orphaned and leaked pins are ever candidates, whatever the filters say.
import type { Pin, SnapshotDoc, Status } from '../model.js';

export const CLEANABLE: readonly Status[] = ['leaked', 'orphaned'];

export interface CleanFilter {
  statuses: Status[];
  instance?: string;
  keep: (p: Pin) => boolean;
  /** only pins made before this time (ms since the epoch) */
  createdBefore?: number;
}

export function selectCandidates(doc: SnapshotDoc, f: CleanFilter): Pin[] {
  return doc.pins.filter((p) => CLEANABLE.includes(p.status) && f.statuses.includes(p.status) && !!p.object
    && f.keep(p) && (f.createdBefore === undefined || Date.parse(p.createdAt) < f.createdBefore));
}

/** Compares a candidate with the fresh look: null when it still qualifies, else why not. */
export function recheck(candidate: Pin, fresh: Pin | undefined, statuses: Status[]): string | null {
  const o = candidate.object!;
  if (!fresh) return 'the pin is gone since the snapshot';
  if (!fresh.object) return `the pin cannot be read now (${fresh.reasons[0] ?? 'unreadable'})`;
  if (fresh.object.kind !== o.kind || fresh.object.id !== o.id) {
    return `the path now holds ${fresh.object.kind} ${fresh.object.id}, not ${o.kind} ${o.id}`;
  }
  if (fresh.inode !== candidate.inode) return 'the pin was replaced (another inode) since the snapshot';
  if (!statuses.includes(fresh.status)) return `it is ${fresh.status} now: ${fresh.reasons[0] ?? ''}`.trimEnd();
  return null;
}

export const pinKey = (p: Pick<Pin, 'instance' | 'path'>) => `${p.instance}\u0000${p.path}`;
