// pinleak watch [--scan-every DUR] [--textfile FILE]: stay resident until SIGINT/SIGTERM.
// Records every BPF_OBJ_PIN on the host through the pin recorder (src/kernel/recorder.ts)
// into the database, drained every DRAIN_MS in small transactions; scans every DUR like
// `pinleak scan` (stored, retention applied) and writes the Prometheus textfile.
//
// One watch per database: an flock(2) on `<db>.watch-lock`. The kernel releases it when
// the process ends however it ends, so a crashed watch never leaves a stale lock and a
// reused pid can never look like a live watch (a pid row would need both checks).
import path from 'node:path';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { objectCacheOf } from '../model.js';
import { takeSnapshot, type SnapshotOptions } from '../app/snapshot.js';
import { startRecording, DRAIN_MS, type Recording } from '../scan/recording.js';
import {
  saveSnapshot, savePinRecords, prunePinRecords, openWatchSession, coverWatchSession, endWatchSession, type Store,
} from '../store/index.js';
import { parseDuration, DEFAULT_RETENTION, type Config } from '../analysis/config.js';
import { isLeak } from '../analysis/summary.js';
import { renderPrometheus, type PrometheusOptions } from '../report/prometheus.js';
import { readBootId, readStat } from '../kernel/procfs.js';
import { tryLockFile } from '../kernel/fs.js';
import { closeFd } from '../kernel/bpf.js';
import { packageVersion } from '../package.js';
import { type GlobalArgs, printTimings, requirePrivileges, userConfig, openDb, dbPath, summary } from './common.js';
import { retentionAfterStore } from '../app/retention.js';
import { writeFileAtomic } from '../app/files.js';

interface Args extends GlobalArgs {
  scanEvery: string;
  textfile?: string;
  timings: boolean;
}

/** Coverage is stored at least this often without new records (a row update, not per drain). */
const COVER_MS = 5000;
/**
 * A pin is covered once a drain that started this long after it was stored: the inode
 * (its ctime) is made a little before the syscall returns and the record is pushed.
 */
const IN_FLIGHT_MS = 100;

export const watchLockPath = (db: string): string => `${path.resolve(db)}.watch-lock`;

export const watchCommand = {
  command: 'watch',
  describe: 'stay resident: record every BPF_OBJ_PIN on the host (who pinned what), scan every DUR, write the metrics',
  builder: (y: Argv) => y
    .option('scan-every', { type: 'string', default: '5m', describe: 'take a snapshot this often (e.g. 90s, 5m, 1h)' })
    .option('textfile', { type: 'string', describe: 'write the Prometheus metrics of every scan to this file (node_exporter textfile collector)' })
    .option('timings', { type: 'boolean', default: false, describe: 'after each scan, print the time of each phase on stderr (with store, total and CPU)' }),
  handler: async (a: Args) => {
    const every = parseDuration(a.scanEvery);
    if (every < 1000) throw new PinleakError(`--scan-every ${a.scanEvery}: scan at most once a second`);
    if (a.textfile !== undefined && a.textfile.trim() === '') throw new PinleakError('--textfile needs a file name');
    requirePrivileges('pinleak watch');
    const config = userConfig(a);
    const db = dbPath(a);
    const store = openDb(a, 'create');
    let lockFd: number | null = null;
    try {
      try {
        lockFd = tryLockFile(watchLockPath(db));
      } catch (e) {
        throw new PinleakError(`cannot lock ${watchLockPath(db)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      if (lockFd === null) throw new PinleakError(`another pinleak watch is running on ${db} (it holds ${watchLockPath(db)})`);
      await watch(a, store, config, every);
    } finally {
      store.close();
      if (lockFd !== null) closeFd(lockFd);
    }
  },
};

async function watch(a: Args, store: Store, config: Config, every: number): Promise<void> {
  // before anything is attached or said: a SIGTERM right after the first line ends it cleanly
  let stopping = false;
  let wake: (() => void) | null = null;
  const stop = () => {
    stopping = true;
    wake?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const bootId = readBootId();
  const recording = startRecording();
  const rec: Recording | null = 'refused' in recording ? null : recording;
  const me = readStat(process.pid);
  const session = openWatchSession(store, bootId, {
    pid: process.pid, startTime: me?.startTime ?? 0, startedAt: new Date().toISOString(), recording: rec !== null,
    note: 'refused' in recording ? recording.refused : null,
  });
  if ('refused' in recording) {
    process.stderr.write(`pinleak: the pin recorder cannot run here (${recording.refused}): watch only scans\n`);
  } else {
    summary(a, `pinleak watch: recording every pin (program ${rec!.recorder.progId}, link ${rec!.recorder.linkId}); scanning every ${a.scanEvery}`);
  }

  let lastCover = 0;
  let reportedDrops = 0;
  /** Stores what the recorder has; covers the session up to the drain's start. */
  const drain = () => {
    if (!rec) return;
    const started = Date.now();
    const records = rec.drain(session);
    savePinRecords(store, bootId, records.map((r) => r.stored));
    const drops = rec.recorder.drops();
    if (drops > reportedDrops) {
      process.stderr.write(`pinleak: warning: the pin recorder dropped ${drops - reportedDrops} pins (queue full); ${drops} since watch started\n`);
      reportedDrops = drops;
    }
    if (records.length || started - lastCover >= COVER_MS) {
      coverWatchSession(store, session, new Date(started - IN_FLIGHT_MS).toISOString(), drops);
      lastCover = started;
    }
  };

  /** the objects of the last scan's pins: the next scan takes them from here (no store read) */
  let objectCache: SnapshotOptions['objectCache'];
  const drainTimer = setInterval(() => {
    try {
      drain();
    } catch (e) {
      process.stderr.write(`pinleak: warning: pin records not stored: ${(e as Error).message}\n`);
    }
  }, DRAIN_MS);
  try {
    while (!stopping) {
      drain(); // the scan sees every pin recorded so far
      objectCache = await scanOnce(a, store, config, { recording: rec !== null, droppedPins: reportedDrops }, objectCache) ?? objectCache;
      if (stopping) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, every);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    clearInterval(drainTimer);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    try {
      drain();
    } finally {
      rec?.close();
      endWatchSession(store, session, new Date().toISOString());
    }
  }
}

/** One scan, as `pinleak scan` stores it; a failed scan is a warning: watch keeps recording. */
async function scanOnce(
  a: Args, store: Store, config: Config, recorder: PrometheusOptions['watch'], objectCache: SnapshotOptions['objectCache'],
): Promise<SnapshotOptions['objectCache'] | null> {
  try {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const { doc, scan, objects } = await takeSnapshot({ store, config, objectCache });
    const t1 = performance.now();
    // remembered: the next scan compares its pins with these instead of hashing them
    const id = saveSnapshot(store, doc, objects, { remember: true });
    if (a.timings || a.debug) {
      const cpu = process.cpuUsage(cpu0);
      const ms = (x: number) => Math.round(x * 10) / 10;
      printTimings({ ...scan.timings, store: ms(performance.now() - t1), total: ms(performance.now() - t0), cpu: ms((cpu.user + cpu.system) / 1000) });
    }
    retentionAfterStore(store, config);
    const olderThan = parseDuration(config.retention?.olderThan ?? DEFAULT_RETENTION.olderThan!);
    prunePinRecords(store, new Date(Date.now() - olderThan).toISOString());
    if (a.textfile !== undefined) writeFileAtomic(a.textfile, renderPrometheus(doc, { version: packageVersion(), watch: recorder }), { refuse: [dbPath(a)] });
    const leaks = doc.pins.filter(isLeak).length;
    summary(a, `snapshot ${id}: ${doc.pins.length} pins, ${leaks} leaks${doc.snapshot.partial ? ' (PARTIAL VIEW)' : ''}`);
    return { bootId: doc.snapshot.bootId, objects: objectCacheOf(doc.pins) };
  } catch (e) {
    if (a.debug) process.stderr.write(`${(e as Error).stack}\n`);
    process.stderr.write(`pinleak: warning: scan failed: ${(e as Error).message}\n`);
    return null;
  }
}
