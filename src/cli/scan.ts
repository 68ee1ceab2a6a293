// pinleak scan: take a snapshot of the whole host, store it, print the summary and the leaks.
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { takeSnapshot } from '../app/snapshot.js';
import { saveSnapshot, namesSnapshotById } from '../store/index.js';
import { renderLeaks, renderSummary } from '../report/text.js';
import { isLeak } from '../analysis/summary.js';
import {
  type GlobalArgs, requirePrivileges, userConfig, openDb, withProgress, emitSnapshot, summary, outStyle, printTimings,
} from './common.js';
import { openHistory } from './common.js';
import { looksLikeFile } from '../app/baseline.js';
import { retentionAfterStore } from '../app/retention.js';
import { announcePartial, refusePartial } from './common.js';

interface Args extends GlobalArgs {
  label?: string;
  store: boolean;
  failOnLeak: boolean;
  timings: boolean;
}

/** A label must not read as something else where SNAPSHOT or a baseline is expected. */
export function checkLabel(label: string): string {
  if (!label.trim() || namesSnapshotById(label) || looksLikeFile(label)) {
    throw new PinleakError(`--label ${JSON.stringify(label)}: a label must not be empty, a number, "latest", "latest~N", contain "/" or end in ".json" (those name snapshots or files)`);
  }
  return label;
}

export const scanCommand = {
  command: 'scan',
  describe: 'take a snapshot of every bpffs pin on the host, store it, print the summary and the leaks',
  builder: (y: Argv) => y
    .option('label', { type: 'string', coerce: checkLabel, describe: 'name this snapshot (e.g. before-deploy)' })
    .option('store', { type: 'boolean', default: true, describe: 'store the snapshot (--no-store: only print it)' })
    .option('fail-on-leak', { type: 'boolean', default: false, describe: 'exit 1 when any pin is orphaned or leaked; exit 2 when the scan could not see the whole host' })
    .option('timings', { type: 'boolean', default: false, describe: 'print the time of each scan phase on stderr' }),
  handler: async (a: Args) => {
    requirePrivileges('pinleak scan');
    const config = userConfig(a);
    const store = a.store ? openDb(a, 'create') : openHistory(a);
    try {
      // only the document, the objects and the timings outlive the scan: what it read of the
      // host (every pin, process and object as found) is garbage before the save
      const { doc, objects, timings } = await withProgress(a, async (onProgress) => {
        const s = await takeSnapshot({ store, config, label: a.label ?? null, onProgress });
        return { doc: s.doc, objects: s.objects, timings: s.scan.timings };
      });
      if (a.store && store) {
        const t0 = performance.now();
        saveSnapshot(store, doc, objects);
        timings.store = Math.round((performance.now() - t0) * 10) / 10;
        retentionAfterStore(store, config);
      }
      if (a.timings || a.debug) {
        printTimings(timings);
      }
      announcePartial(a, doc.snapshot);
      if (a.json) emitSnapshot(doc);
      else if (!a.quiet) {
        const style = outStyle(a);
        summary(a, renderSummary(doc, style));
        if (doc.pins.some(isLeak)) summary(a, '\n' + renderLeaks(doc, style, { perGroup: 10 }));
      }
      if (a.failOnLeak) {
        refusePartial(doc.snapshot, '--fail-on-leak does not judge it');
        if (doc.pins.some(isLeak)) process.exitCode = 1;
      }
    } finally {
      store?.close();
    }
  },
};
