// pinleak clean [SNAPSHOT]: unpin the leaked pins of a snapshot (default the latest), a dry
// run unless --yes. Every candidate is re-checked against a fresh scan, and once more right
// before its unlink; every unlink goes into the audit table.
import os from 'node:os';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { STATUSES, type Status } from '../model.js';
import { selectCandidates } from '../analysis/clean.js';
import { LEAK_STATUSES, isLeakStatus } from '../analysis/summary.js';
import { takeSnapshot } from '../app/snapshot.js';
import { clean, verifyFreed, type CleanResult } from '../app/clean.js';
import { releaseAll } from '../scan/host.js';
import { recordAction, resolveSnapshot, loadSnapshot, writeTransaction } from '../store/index.js';
import { renderClean } from '../report/changes.js';
import {
  type GlobalArgs, requirePrivileges, userConfig, openDb, withProgress, emitJson, summary, outStyle, listOf, durationOption,
} from './common.js';
import { pinFilter, placeOptions } from './pins.js';
import { refusePartial } from './common.js';

export type { CleanResult };

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

/** Who ran the clean, for the audit table. */
function actor(): string {
  const u = os.userInfo();
  const sudo = process.env.SUDO_USER ? ` via sudo by ${process.env.SUDO_USER}` : '';
  return `${u.username} (uid ${u.uid})${sudo}`;
}
