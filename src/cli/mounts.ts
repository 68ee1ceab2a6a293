// pinleak mounts [SNAPSHOT]: bpffs instances, their namespaces, mount points and delegation.
import type { Argv } from 'yargs';
import { renderMounts } from '../report/text.js';
import { type GlobalArgs, openDb, loadStored, emitJson, say, outStyle } from './common.js';
import { announcePartial } from './common.js';

interface Args extends GlobalArgs {
  snapshot?: string;
}

export const mountsCommand = {
  command: 'mounts [snapshot]',
  describe: 'bpffs instances: namespaces, mount points, delegation options, pins, memory',
  builder: (y: Argv) => y.positional('snapshot', { type: 'string', describe: 'id, label, latest or latest~N (default latest)' }),
  handler: (a: Args) => {
    const store = openDb(a, 'read');
    try {
      const doc = loadStored(store, a.snapshot);
      announcePartial(a, doc.snapshot);
      if (a.json) emitJson(doc);
      else say(a, renderMounts(doc, outStyle(a)));
    } finally {
      store.close();
    }
  },
};
