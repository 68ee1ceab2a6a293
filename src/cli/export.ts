// pinleak export prometheus [--output FILE]: metrics of the latest stored snapshot (no
// scan) for node_exporter's textfile collector. With --output the file is written next
// to its final name and renamed, so the collector never reads half a file.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION } from '../model.js';
import { listSnapshots, resolveSnapshot, loadSnapshot } from '../store/index.js';
import { renderPrometheus } from '../report/prometheus.js';
import { type GlobalArgs, openDb, emitJson, summary, dbPath, outputOption } from './common.js';
import { writeFileAtomic } from '../app/files.js';
import { packageVersion } from '../package.js';
import { plural } from '../plural.js';

const FORMATS = ['prometheus'] as const;

const formatOption = (format: string): string => {
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new PinleakError(`export ${JSON.stringify(format)}: unknown format; the only format is prometheus (pinleak export prometheus)`);
  }
  return format;
};

interface Args extends GlobalArgs {
  format: string;
  output?: string;
}

export const exportCommand = {
  command: 'export <format>',
  describe: 'metrics of the latest stored snapshot (no scan) for node_exporter\'s textfile collector',
  builder: (y: Argv) => y
    .positional('format', { type: 'string', coerce: formatOption, describe: `output format: ${FORMATS.join(', ')}` })
    .option('output', {
      type: 'string',
      coerce: outputOption,
      describe: 'write to this file (via a temporary file in the same directory, then rename) instead of stdout',
    })
    .example('$0 export prometheus --output /var/lib/node_exporter/textfile_collector/pinleak.prom', ''),
  handler: (a: Args) => {
    if (a.json && a.output === undefined) {
      throw new PinleakError('--json: export prints metrics on stdout; give --output FILE to get a JSON summary of what was written');
    }
    const store = openDb(a, 'read');
    try {
      let id: number;
      try {
        id = resolveSnapshot(store, 'latest');
      } catch (e) {
        if (e instanceof PinleakError && listSnapshots(store).length === 0) {
          throw new PinleakError(`${dbPath(a)} holds no snapshot yet: run \`pinleak scan\` first`);
        }
        throw e;
      }
      const doc = loadSnapshot(store, id);
      const text = renderPrometheus(doc, { version: packageVersion() });
      if (a.output === undefined) {
        process.stdout.write(text);
        return;
      }
      writeFileAtomic(a.output, text, { refuse: [dbPath(a)] });
      const samples = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
      if (a.json) {
        emitJson({ schemaVersion: SCHEMA_VERSION, format: a.format, output: a.output, snapshot: doc.snapshot, samples });
      } else {
        summary(a, `wrote ${plural(samples, 'sample')} of snapshot ${doc.snapshot.id} to ${a.output}`);
      }
    } finally {
      store.close();
    }
  },
};
