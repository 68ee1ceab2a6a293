// pinleak prune [--keep N] [--older-than DUR]: drop old snapshots and give the space back.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION } from '../model.js';
import { pruneSnapshots } from '../store/index.js';
import { bytes } from '../report/format.js';
import { type GlobalArgs, openDb, dbPath, emitJson, summary, wholeNumber, durationOption } from './common.js';
import { plural } from '../plural.js';

interface Args extends GlobalArgs {
  keep?: number;
  /** ms */
  olderThan?: number;
}

const fileSize = (p: string) => ['', '-wal'].reduce((n, s) => n + (fs.existsSync(p + s) ? fs.statSync(p + s).size : 0), 0);

export const pruneCommand = {
  command: 'prune',
  describe: 'drop old snapshots (the latest always stays) and shrink the database file',
  builder: (y: Argv) => y
    .option('keep', { type: 'string', coerce: wholeNumber('keep', 0), describe: 'keep only the newest N snapshots' })
    .option('older-than', { type: 'string', coerce: durationOption, describe: 'drop snapshots older than this (90s, 15m, 12h, 7d, 2w)' }),
  handler: (a: Args) => {
    if (a.keep === undefined && a.olderThan === undefined) {
      throw new PinleakError('prune needs --keep N or --older-than DUR (or both): it never guesses what to drop');
    }
    const store = openDb(a, 'write');
    const file = dbPath(a);
    try {
      const before = fileSize(file);
      const { removed } = pruneSnapshots(store, { keep: a.keep, olderThanMs: a.olderThan });
      const after = fileSize(file);
      if (a.json) emitJson({ schemaVersion: SCHEMA_VERSION, removed, bytesBefore: before, bytesAfter: after });
      else summary(a, `removed ${plural(removed, 'snapshot')}; ${file} went from ${bytes(before)} to ${bytes(after)}`);
    } finally {
      store.close();
    }
  },
};
