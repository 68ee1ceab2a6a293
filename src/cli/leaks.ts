// pinleak leaks [SNAPSHOT]: the orphaned and leaked pins, grouped by owner and instance.
import type { Argv } from 'yargs';
import { isLeak } from '../analysis/summary.js';
import { renderLeaks, renderStale } from '../report/text.js';
import { type GlobalArgs, openDb, loadStored, emitJson, say, outStyle } from './common.js';
import { pinFilter, placeOptions } from './pins.js';
import { announcePartial, refusePartial } from './common.js';

interface Args extends GlobalArgs {
  snapshot?: string;
  failOnLeak: boolean;
  instance?: string;
  path?: string;
  stale: boolean;
}

export const leaksCommand = {
  command: 'leaks [snapshot]',
  describe: 'the orphaned and leaked pins, with memory totals grouped by owner and instance',
  builder: (y: Argv) => placeOptions(y
    .positional('snapshot', { type: 'string', describe: 'id, label, latest or latest~N (default latest)' })
    .option('fail-on-leak', { type: 'boolean', default: false, describe: 'exit 1 when there is any leak; exit 2 on a snapshot that could not see the whole host' })
    .option('stale', { type: 'boolean', default: false, describe: 'also the persistent pins nothing uses any more (kept on purpose: never counted as leaks)' })),
  handler: (a: Args) => {
    const keep = pinFilter({ instance: a.instance, path: a.path }); // bad arguments fail before the database is opened
    const store = openDb(a, 'read');
    try {
      const doc = loadStored(store, a.snapshot);
      const shown = { ...doc, pins: doc.pins.filter(keep) };
      const leaks = shown.pins.filter(isLeak);
      const stale = a.stale ? shown.pins.filter((p) => p.stale) : [];
      announcePartial(a, doc.snapshot);
      if (a.json) emitJson({ ...shown, pins: [...leaks, ...stale] });
      else {
        const filters = [...(a.instance ? ['--instance', a.instance] : []), ...(a.path ? ['--path', a.path] : [])];
        say(a, renderLeaks(shown, outStyle(a), { filters }) + (a.stale ? '\n\n' + renderStale(shown, outStyle(a), { filters }) : ''));
      }
      if (a.failOnLeak) {
        refusePartial(doc.snapshot, '--fail-on-leak does not judge it');
        if (leaks.length) process.exitCode = 1;
      }
    } finally {
      store.close();
    }
  },
};
