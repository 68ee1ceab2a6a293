// pinleak gate --baseline SNAPSHOT: scan now, compare with the baseline, exit 1 past the thresholds.
import type { Argv } from 'yargs';
import { diffSnapshots, gate } from '../analysis/diff.js';
import { takeSnapshot } from '../app/snapshot.js';
import { retentionAfterStore } from '../app/retention.js';
import { saveSnapshot } from '../store/index.js';
import { renderGate, renderJunit } from '../report/changes.js';
import { type GlobalArgs, requirePrivileges, userConfig, openDb, withProgress, wholeNumber, dbPath, emitJson, summary, outStyle } from './common.js';
import { loadBaseline } from '../app/baseline.js';
import { openHistory } from './common.js';
import { refusePartial } from './common.js';
import { writeFileAtomic } from '../app/files.js';
import { renderGateHtml } from '../report/html.js';
import { packageVersion } from '../package.js';

interface Args extends GlobalArgs {
  baseline: string;
  maxNewLeaks?: number;
  maxLeakedBytes?: number;
  junit?: string;
  html?: string;
  allowPartial: boolean;
  store: boolean;
}

export const gateCommand = {
  command: 'gate',
  describe: 'scan now, diff against a baseline, exit 1 when new leaks pass the thresholds (CI gate)',
  builder: (y: Argv) => y
    .option('baseline', { type: 'string', demandOption: true, describe: 'snapshot (id, label, latest~N) or `scan --json` file' })
    .option('max-new-leaks', { type: 'string', coerce: wholeNumber('max-new-leaks', 0), describe: 'new leaks allowed (default 0, or no limit when only --max-leaked-bytes is given)' })
    .option('max-leaked-bytes', { type: 'string', coerce: wholeNumber('max-leaked-bytes', 0), describe: 'memory the new leaks may hold' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report here (one case per new leak)' })
    .option('html', { type: 'string', describe: 'write a self-contained HTML page of the finding here (new leaks, baseline vs now)' })
    .option('allow-partial', { type: 'boolean', default: false, describe: 'judge even a scan that could not see the whole host' })
    .option('store', { type: 'boolean', default: true, describe: 'store the scan with label "gate" (--no-store: do not)' }),
  handler: async (a: Args) => {
    const { maxNewLeaks, maxLeakedBytes } = a;
    requirePrivileges('pinleak gate');
    const config = userConfig(a);
    const store = a.store ? openDb(a, 'create') : openHistory(a);
    try {
      const baseline = loadBaseline(store, a.baseline); // resolved before scanning: a typo fails fast
      const { doc, objects } = await withProgress(a, (onProgress) => takeSnapshot({ store, config, label: 'gate', onProgress }));
      if (!a.allowPartial) refusePartial(doc.snapshot, 'the gate does not judge it (pass --allow-partial to judge anyway)');
      if (a.store && store) {
        saveSnapshot(store, doc, objects);
        retentionAfterStore(store, config);
      }
      const result = gate(baseline, doc, {
        maxNewLeaks: maxNewLeaks ?? (maxLeakedBytes !== undefined ? null : 0),
        maxLeakedBytes: maxLeakedBytes ?? null,
      });
      if (a.junit) writeFileAtomic(a.junit, renderJunit(result), { refuse: [dbPath(a)] });
      if (a.html) {
        const page = renderGateHtml(result, baseline, doc, diffSnapshots(baseline, doc), { version: packageVersion(), generatedAt: new Date().toISOString() });
        writeFileAtomic(a.html, page, { refuse: [dbPath(a)] });
      }
      if (a.json) emitJson(result);
      else summary(a, renderGate(result, outStyle(a)));
      if (!result.passed) process.exitCode = 1;
    } finally {
      store?.close();
    }
  },
};
