// pinleak clean [SNAPSHOT]: unpin the leaked pins of a snapshot (default the latest), a dry
// run unless --yes. Every candidate is re-checked against a fresh scan, and once more right
// before its unlink; every unlink goes into the audit table.
import os from 'node:os';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION, STATUSES, objectKey, pinPlace, type Pin, type Status } from '../model.js';
import { recheck, selectCandidates } from '../analysis/clean.js';
import { LEAK_STATUSES, isLeakStatus, memlockOnce } from '../analysis/summary.js';
import { allIds } from '../kernel/bpf.js';
import { takeSnapshot } from '../scan/snapshot.js';
import { releaseAll } from '../scan/host.js';
import { objectReader } from '../scan/pins.js';
import { openPin } from '../scan/unpin.js';
import { usageProbe } from '../scan/usage.js';
import { recordAction, resolveSnapshot, loadSnapshot, writeTransaction } from '../store/index.js';
import { renderClean } from '../report/changes.js';
import {
  type GlobalArgs, requirePrivileges, userConfig, openDb, withProgress, emitJson, summary, outStyle, listOf, durationOption,
} from './common.js';
import { pinFilter, placeOptions } from './pins.js';
import { refusePartial } from './partial.js';

interface Args extends GlobalArgs {
  snapshot?: string;
  status: Status[];
  instance?: string;
  path?: string;
  /** ms */
  olderThan?: number;
  stale: boolean;
  yes: boolean;
}

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

export const cleanCommand = {
  command: 'clean [snapshot]',
  describe: 'unpin leaked pins (a dry run unless --yes); never held, in-use or persistent ones',
  builder: (y: Argv) => placeOptions(y
    .positional('snapshot', { type: 'string', describe: 'the snapshot whose leaks to remove (default latest); each is re-checked now' })
    .option('status', { type: 'string', default: 'leaked', coerce: listOf(STATUSES, 'status', [...LEAK_STATUSES, 'persistent']), describe: 'which leaks: leaked, orphaned or both (comma-separated); persistent only with --stale' }))
    .option('stale', { type: 'boolean', default: false, describe: 'with --status persistent: the persistent pins nothing uses any more (see leaks --stale)' })
    .option('older-than', { type: 'string', coerce: durationOption, describe: 'only pins made longer ago than this (90s, 15m, 12h, 7d, 2w); stale pins: unused for longer' })
    .option('yes', { type: 'boolean', default: false, describe: 'really unpin (without it, only show what would go)' }),
  handler: async (a: Args) => {
    const statuses = a.status;
    checkCleanStatuses(statuses, a.stale);
    const keep = pinFilter({ instance: a.instance, path: a.path });
    requirePrivileges('pinleak clean');
    const config = userConfig(a);
    const store = openDb(a, 'write');
    try {
      const id = resolveSnapshot(store, a.snapshot ?? 'latest');
      const stored = loadSnapshot(store, id);
      // no override: on a partial view a pin that looks orphaned may be held by a process the scan could not see
      refusePartial(stored.snapshot, 'clean never acts on a partial view (run `pinleak scan` where it sees the whole host, and clean that)');
      const candidates = selectCandidates(stored, {
        statuses, keep, createdBefore: a.olderThan !== undefined ? Date.now() - a.olderThan : undefined, stale: a.stale,
      });
      const { doc: fresh, scan } = await withProgress(a, (onProgress) => takeSnapshot({ store, config, onProgress, keepAnchors: true }));
      try {
        refusePartial(fresh.snapshot, 'clean never acts on a partial view: nothing was removed');
        if (fresh.snapshot.bootId !== stored.snapshot.bootId) {
          throw new PinleakError(`snapshot ${id} is from another boot: its object ids mean nothing now; run \`pinleak scan\` and clean that`);
        }
        const result = clean(candidates, fresh.pins, statuses, a.stale, scan, !a.yes, (pin) => recordAction(store, {
          at: new Date().toISOString(), action: 'unpin', instance: pin.instance, path: pin.path,
          objectKind: pin.object!.kind, objectId: pin.object!.id, bytes: pin.object!.memlockBytes, actor: actor(), snapshotId: id,
        }), (fn) => writeTransaction(store, fn));
        if (!result.dryRun) await verifyFreed(result, fresh.pins);
        if (a.json) emitJson(result);
        else summary(a, renderClean(result, outStyle(a)));
      } finally {
        releaseAll(scan.anchors);
      }
    } finally {
      store.close();
    }
  },
};

/** leaked and orphaned; persistent only named together with --stale, and --stale only with it. */
function checkCleanStatuses(statuses: Status[], stale: boolean): void {
  const refused = statuses.filter((s) => !isLeakStatus(s) && !(s === 'persistent' && stale));
  if (refused.includes('persistent')) {
    throw new PinleakError('clean removes persistent pins only with --stale (--status persistent --stale: those nothing uses any more)');
  }
  if (refused.length) throw new PinleakError(`clean never removes ${refused.join(', ')} pins: --status takes leaked and orphaned (and persistent with --stale)`);
  if (stale && !statuses.includes('persistent')) throw new PinleakError('--stale selects stale persistent pins: name them with --status persistent');
}

function clean(
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
async function verifyFreed(result: CleanResult, all: Pin[]): Promise<void> {
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

/** Who ran the clean, for the audit table. */
function actor(): string {
  const u = os.userInfo();
  const sudo = process.env.SUDO_USER ? ` via sudo by ${process.env.SUDO_USER}` : '';
  return `${u.username} (uid ${u.uid})${sudo}`;
}
