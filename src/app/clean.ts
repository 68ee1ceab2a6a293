// Clean, the use case: re-check every candidate against a fresh scan, then once more right
// before its unlink (the usage probe: holders, named references and the count guard), unlink
// it with its audit row in one transaction, and verify the kernel freed what went.
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION, objectKey, pinPlace, type Pin, type Status } from '../model.js';
import { recheck } from '../analysis/clean.js';
import { memlockOnce } from '../analysis/summary.js';
import { allIds } from '../kernel/bpf.js';
import type { takeSnapshot } from './snapshot.js';
import { objectReader } from '../scan/pins.js';
import { openPin } from '../scan/unpin.js';
import { usageProbe } from '../scan/usage.js';

export interface CleanResult {
  schemaVersion: number;
  dryRun: boolean;
  removed: Pin[];
  skipped: { pin: Pin; why: string }[];
  freedBytes: number;
  /** objects whose last pin was removed but that the kernel still had after the wait */
  notFreed: { kind: string; id: number }[];
  removedDirectories: string[];
  /** what went wrong after an unpin succeeded */
  warnings: string[];
}

export function clean(
  candidates: Pin[], freshPins: Pin[], statuses: Status[], stale: boolean, scan: Awaited<ReturnType<typeof takeSnapshot>>['scan'],
  dryRun: boolean, audit: (p: Pin) => void, transaction: (fn: () => void) => void,
): CleanResult {
  const freshByPlace = new Map(freshPins.map((p) => [pinPlace(p), p]));
  const reader = objectReader();
  const unlinked = new Set<string>();
  const usage = usageProbe(scan, () => scan.pins.filter((p) => !unlinked.has(pinPlace(p))));
  const result: CleanResult = { schemaVersion: SCHEMA_VERSION, dryRun, removed: [], skipped: [], freedBytes: 0, notFreed: [], removedDirectories: [], warnings: [] };
  for (const c of candidates) {
    const fresh = freshByPlace.get(pinPlace(c));
    const why = recheck(c, fresh, statuses, stale);
    if (why) {
      result.skipped.push({ pin: fresh ?? c, why });
      continue;
    }
    const pin = fresh!;
    let handle;
    try {
      handle = openPin({ instance: pin.instance, path: pin.path, inode: pin.inode, kind: pin.object!.kind, id: pin.object!.id },
        scan.access.get(pin.instance) ?? [], reader);
    } catch (e) {
      result.skipped.push({ pin, why: `cannot reach it safely: ${(e as Error).message}` });
      continue;
    }
    try {
      // The last look, right before the unlink.
      const changed = handle.verify() ?? usage.check(pin.object!.kind, pin.object!.id);
      if (changed) {
        result.skipped.push({ pin, why: changed });
        continue;
      }
      if (!dryRun) {
        try {
          // the audit row and the unlink go together: a failed unlink rolls the row back
          transaction(() => {
            audit(pin);
            handle!.unlink();
          });
          unlinked.add(pinPlace(pin));
        } catch (e) {
          // the database (locked, full, read-only): no unpin can be recorded, so none is done
          if (e instanceof PinleakError) throw e;
          result.skipped.push({ pin, why: `unlink failed: ${(e as Error).message}` });
          continue;
        }
      }
      result.removed.push(pin);
      if (dryRun) continue;
      try {
        result.removedDirectories.push(...handle.removeEmptyParents());
      } catch (e) {
        result.warnings.push(`${pin.path}: unpinned, but its emptied directory stays: ${(e as Error).message}`);
      }
    } finally {
      handle.close();
    }
  }
  // Freed: objects all of whose pins (anywhere) go; in a dry run, what would be freed.
  result.freedBytes = memlockOnce(lastPins(result.removed, freshPins));
  return result;
}

const objectKeyOf = (p: Pin): string => objectKey(p.object!.kind, p.object!.id);

/** Removed pins whose object has no other pin left. */
function lastPins(removed: Pin[], all: Pin[]): Pin[] {
  const gone = new Set(removed.map(pinPlace));
  const stillPinned = new Set(all.filter((p) => p.object && !gone.has(pinPlace(p))).map(objectKeyOf));
  return removed.filter((p) => !stillPinned.has(objectKeyOf(p)));
}

/** The kernel frees an object once its last reference goes; it may take a moment (RCU). */
export async function verifyFreed(result: CleanResult, all: Pin[]): Promise<void> {
  const last = lastPins(result.removed, all);
  const pending = new Map(last.map((p) => [objectKeyOf(p), p]));
  const deadline = Date.now() + 3000;
  while (pending.size && Date.now() < deadline) {
    // Walk the id tables, never open by id: opening a prog array with no user reference
    // left makes the kernel clear it, and was seen to leave it allocated (KERNEL-FACTS).
    const alive = { map: new Set(allIds('map')), prog: new Set(allIds('prog')), link: new Set(allIds('link')) };
    for (const [k, p] of pending) {
      if (!alive[p.object!.kind as 'map' | 'prog' | 'link']?.has(p.object!.id)) pending.delete(k);
    }
    if (pending.size) await new Promise((r) => setTimeout(r, 50));
  }
  result.notFreed = [...pending.values()].map((p) => ({ kind: p.object!.kind, id: p.object!.id }));
  result.freedBytes = memlockOnce(last.filter((p) => !pending.has(objectKeyOf(p))));
}

