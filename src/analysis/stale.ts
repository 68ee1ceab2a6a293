// Stale persistent pins (issue 14): a pin its owner keeps on purpose whose object nothing
// alive uses any more. Persistent-by-design is the tool's intent, not proof of use: such a
// pin stays `persistent` (never a leak, never in clean's default), but is marked stale with
// how long nothing has used it, from the history of stored snapshots.
import type { Pin, Stale } from '../model.js';
import { plural } from '../plural.js';

/** The start of an object's unbroken run of stale snapshots, as the store keeps it. */
export interface StaleRecord {
  /** when the first snapshot of the run found it unused */
  since: string;
  snapshotId: number;
}

/**
 * The staleness of one pin. Only a pin persistent because its owner keeps pins on purpose
 * can be stale: an ignore rule is the user's own decision and a preload iterator the
 * kernel's. `used` is true when something alive reaches the object (a holder, a live
 * reference named or counted, or, for a link, its live target): then it is not stale. The
 * run started in an earlier stored snapshot continues; otherwise it starts with this scan.
 */
export function staleOf(
  persistedByOwner: boolean,
  used: boolean,
  earlier: StaleRecord | undefined,
  takenAt: string,
): Stale | null {
  if (!persistedByOwner || used) return null;
  return earlier ? { since: earlier.since, sinceSnapshot: earlier.snapshotId } : { since: takenAt, sinceSnapshot: null };
}

/** "3 days", "5 h", "12 min", "40 s". */
export function spanText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 129600) return `${Math.round(s / 3600)} h`;
  const d = Math.round(s / 86400);
  return plural(d, 'day');
}

/** The reason a stale pin gives: "stale: nothing alive has used it since snapshot 12 (3 days)". */
export function staleReason(stale: Stale, takenAt: string): string {
  if (stale.sinceSnapshot === null) return 'stale: nothing alive uses it (first found unused by this scan)';
  return `stale: nothing alive has used it since snapshot ${stale.sinceSnapshot} (${spanText(Date.parse(takenAt) - Date.parse(stale.since))})`;
}

export const isStale = (p: Pin): boolean => !!p.stale;

/** How long a stale pin has been unused at `nowMs`; null for a pin that is not stale. */
export function staleForMs(p: Pin, nowMs: number): number | null {
  return p.stale ? nowMs - Date.parse(p.stale.since) : null;
}
