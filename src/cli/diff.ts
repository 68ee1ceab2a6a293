// pinleak diff [FROM] [TO]: what changed between two snapshots (default latest~1 -> latest).
import type { Argv } from 'yargs';
import { diffSnapshots } from '../analysis/diff.js';
import { PinleakError } from '../errors.js';
import { listSnapshots } from '../store/index.js';
import { renderDiff } from '../report/changes.js';
import { type GlobalArgs, openDb, emitJson, say, outStyle } from './common.js';
import { loadBaseline } from '../app/baseline.js';
import { openHistory } from './common.js';
import { announcePartial } from './common.js';

interface Args extends GlobalArgs {
  from?: string;
  to?: string;
}

export const diffCommand = {
  command: 'diff [from] [to]',
  describe: 'compare two snapshots: pins added, removed, newly leaked, memory gained',
  builder: (y: Argv) => y
    .positional('from', { type: 'string', describe: 'snapshot or `scan --json` file (default latest~1)' })
    .positional('to', { type: 'string', describe: 'snapshot or `scan --json` file (default latest)' }),
  handler: (a: Args) => {
    const store = openHistory(a);
    try {
      if (a.from === undefined && store && listSnapshots(store).length < 2) {
        throw new PinleakError('diff needs two snapshots and there is at most one: run `pinleak scan` again (or name FROM and TO)');
      }
      const from = loadBaseline(store, a.from ?? 'latest~1');
      const to = loadBaseline(store, a.to ?? 'latest');
      const d = diffSnapshots(from, to);
      announcePartial(a, from.snapshot);
      announcePartial(a, to.snapshot);
      if (a.json) emitJson(d);
      else say(a, renderDiff(d, outStyle(a)));
    } finally {
      store?.close();
    }
  },
};
