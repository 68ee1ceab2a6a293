// pinleak report [--since DUR] [--output FILE]: the stored history as one self-contained
// HTML page (no scan). With --output the file is written next to its final name and renamed.
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION } from '../model.js';
import { historySeries, loadSnapshot, resolveSnapshot, type Store } from '../store/index.js';
import { historyModel } from '../report/history.js';
import { chartLibrary, renderReportHtml } from '../report/html.js';
import { packageVersion } from '../package.js';
import { type GlobalArgs, openDb, emitJson, summary, dbPath, durationOption, outputOption } from './common.js';
import { writeFileAtomic } from '../app/files.js';
import { plural } from '../plural.js';

interface Args extends GlobalArgs {
  /** ms */
  since?: number;
  output?: string;
}

const stored = (store: Store, spec: string) => {
  try {
    return loadSnapshot(store, resolveSnapshot(store, spec));
  } catch (e) {
    if (e instanceof PinleakError) return null; // fewer snapshots than that
    throw e;
  }
};

export const reportCommand = {
  command: 'report',
  describe: 'the stored history as one self-contained HTML page: leaked memory over time by owner, current leaks (no scan)',
  builder: (y: Argv) => y
    .option('since', { type: 'string', coerce: durationOption, describe: 'only snapshots taken within this long before now (90s, 15m, 12h, 7d, 2w)' })
    .option('output', { type: 'string', coerce: outputOption, describe: 'write to this file (via a temporary file in the same directory, then rename) instead of stdout' })
    .example('$0 report --since 7d --output pinleak.html', ''),
  handler: (a: Args) => {
    if (a.json && a.output === undefined) {
      throw new PinleakError('--json: report prints HTML on stdout; give --output FILE to get a JSON summary of what was written');
    }
    const now = new Date();
    const since = a.since !== undefined ? new Date(now.getTime() - a.since).toISOString() : null;
    const store = openDb(a, 'read');
    let html: string;
    let snapshots: number;
    try {
      const latest = stored(store, 'latest');
      if (!latest) throw new PinleakError(`${dbPath(a)} holds no snapshot yet: run \`pinleak scan\` first`);
      const series = historySeries(store, since ?? '');
      snapshots = series.points.length;
      const model = historyModel(series, latest, stored(store, 'latest~1'), since);
      html = renderReportHtml(model, chartLibrary(), { version: packageVersion(), generatedAt: now.toISOString() });
    } finally {
      store.close();
    }
    if (a.output === undefined) {
      process.stdout.write(html);
      return;
    }
    writeFileAtomic(a.output, html, { refuse: [dbPath(a)] });
    if (a.json) emitJson({ schemaVersion: SCHEMA_VERSION, output: a.output, snapshots, bytes: Buffer.byteLength(html) });
    else summary(a, `wrote the report of ${plural(snapshots, 'snapshot')} to ${a.output}`);
  },
};
