// pinleak snapshots: the stored snapshots, oldest first.
import type { Argv } from 'yargs';
import { SCHEMA_VERSION } from '../model.js';
import { listSnapshots } from '../store/index.js';
import { renderSnapshots } from '../report/text.js';
import { type GlobalArgs, openDb, emitJson, say, outStyle } from './common.js';

export const snapshotsCommand = {
  command: 'snapshots',
  describe: 'the stored snapshots (id, time, label, counts)',
  builder: (y: Argv) => y,
  handler: (a: GlobalArgs) => {
    const store = openDb(a, 'read');
    try {
      const list = listSnapshots(store);
      if (a.json) emitJson({ schemaVersion: SCHEMA_VERSION, snapshots: list });
      else say(a, renderSnapshots(list, outStyle(a)));
    } finally {
      store.close();
    }
  },
};
