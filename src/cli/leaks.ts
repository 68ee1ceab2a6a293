// pinleak leaks [SNAPSHOT]: the orphaned and leaked pins, grouped by owner and instance.
import type { Argv } from 'yargs';
import { isLeak } from '../analysis/summary.js';
import { renderLeaks } from '../report/text.js';
import { type GlobalArgs, openDb, loadStored, emitJson, say, outStyle } from './common.js';

interface Args extends GlobalArgs {
  snapshot?: string;
  failOnLeak: boolean;
}

export const leaksCommand = {
  command: 'leaks [snapshot]',
  describe: 'the orphaned and leaked pins, with memory totals grouped by owner and instance',
  builder: (y: Argv) => y
    .positional('snapshot', { type: 'string', describe: 'id, label, latest or latest~N (default latest)' })
    .option('fail-on-leak', { type: 'boolean', default: false, describe: 'exit 1 when there is any leak' }),
  handler: (a: Args) => {
    const store = openDb(a, false);
    try {
      const doc = loadStored(store, a.snapshot);
      const leaks = doc.pins.filter(isLeak);
      if (a.json) emitJson({ ...doc, pins: leaks });
      else say(a, renderLeaks(doc, outStyle(a)));
      if (a.failOnLeak && leaks.length) process.exitCode = 1;
    } finally {
      store.close();
    }
  },
};
