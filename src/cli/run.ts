// pinleak run -- CMD ARGS...: snapshot, run CMD with the pin recorder attached (every
// BPF_OBJ_PIN of its process tree, exactly; sampling which objects the tree holds where
// the kernel refuses the recorder, or with --no-record), snapshot after, and report the
// pins CMD created and left behind.
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { SCHEMA_VERSION, objectKey, type Pin, type SnapshotMeta } from '../model.js';
import { takeSnapshot } from '../app/snapshot.js';
import { sampleTree, type TreeSample } from '../scan/sample.js';
import { readStat, clockTicks } from '../kernel/procfs.js';
import { containerFromCgroup } from '../analysis/container.js';
import { isLeak } from '../analysis/summary.js';
import type { Sighting } from '../analysis/classify.js';
import { pinKeyer } from '../analysis/diff.js';
import { retentionAfterStore } from '../app/retention.js';
import { startRecording, DRAIN_MS } from '../scan/recording.js';
import type { PinRecord } from '../kernel/recorder.js';
import { announcePartial, refusePartial } from './common.js';
import { saveSnapshot, recordCreators, savePinRecords, type StoredPinRecord } from '../store/index.js';
import { renderRun } from '../report/changes.js';
import { type GlobalArgs, requirePrivileges, userConfig, openDb, progressReporter, endProgress, emitJson, summary, outStyle, wholeNumber } from './common.js';

interface Args extends GlobalArgs {
  failOnLeak: boolean;
  interval: number;
  record: boolean;
  '--'?: (string | number)[];
}

export interface RunResult {
  schemaVersion: number;
  command: string[];
  exitCode: number;
  before: SnapshotMeta;
  after: SnapshotMeta;
  samples: number;
  /** pins the recorder saw CMD's process tree make (failed ones too); null when it sampled instead */
  pinRecords: number | null;
  created: Pin[];
  leftBehind: Pin[];
}

export const runCommand = {
  command: 'run',
  describe: 'run a command and report the pins its process tree created and left behind: pinleak run -- CMD ARGS...',
  builder: (y: Argv) => y
    .parserConfiguration({ 'populate--': true })
    .option('fail-on-leak', { type: 'boolean', default: false, describe: 'exit 1 when the command left pins behind' })
    .option('interval', { type: 'string', default: '100', coerce: wholeNumber('interval', 1), describe: 'how often to sample the command\'s process tree, in ms (without the recorder)' })
    .option('record', { type: 'boolean', default: true, describe: 'attach the pin recorder while CMD runs (--no-record: sample its process tree instead)' }),
  handler: async (a: Args) => {
    const command = (a['--'] ?? []).map(String);
    if (!command.length) throw new PinleakError('run needs a command after --, e.g. pinleak run -- ./my-loader --flag');
    requirePrivileges('pinleak run');
    const config = userConfig(a);
    const store = openDb(a, 'create');
    try {
      // stored only once the command has run: a command that cannot start leaves nothing behind
      const before = await takeSnapshot({ store, config, label: 'run:before', onProgress: progressReporter(a) });
      endProgress(a);

      const recording = a.record ? startRecording() : null;
      if (recording && 'refused' in recording) {
        process.stderr.write(`pinleak: the pin recorder cannot run here (${recording.refused}): run samples the process tree instead\n`);
      }
      const recorder = recording && !('refused' in recording) ? recording : null;
      const recorded: { raw: PinRecord; stored: StoredPinRecord }[] = [];
      const startedMs = Date.now();
      const child = spawn(command[0]!, command.slice(1), { stdio: a.json ? ['inherit', 2, 'inherit'] : 'inherit' });
      const sightings = new Map<string, Sighting>();
      let samples = 0;
      // assigned inside sample(): TS cannot see that, hence the widening cast
      let root = null as { pid: number; startTime: number; comm: string } | null;
      const sample = () => {
        if (!child.pid) return;
        if (!root) {
          const st = readStat(child.pid);
          if (st) root = { pid: child.pid, startTime: st.startTime, comm: st.comm };
        }
        if (recorder) {
          recorded.push(...recorder.drain(null));
          return;
        }
        const s: TreeSample = sampleTree(child.pid);
        samples++;
        for (const h of s.held) {
          const k = objectKey(h.kind, h.id);
          if (!sightings.has(k)) {
            sightings.set(k, { pid: h.pid, startTime: h.startTime, comm: h.comm, snapshotId: null, container: h.cgroup ? containerFromCgroup(h.cgroup) : null });
          }
        }
      };
      const forward = (sig: NodeJS.Signals) => () => child.pid && child.kill(sig);
      // Ctrl-C reaches the command through the terminal's process group; pinleak stays to take the after-snapshot.
      const onInt = () => {};
      const onTerm = forward('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      const timer = setInterval(sample, recorder ? DRAIN_MS : a.interval);
      sample();
      const exitCode = await new Promise<number>((resolve, reject) => {
        child.on('error', (e: NodeJS.ErrnoException) => reject(new PinleakError(`cannot run ${command[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.code === 'EACCES' ? 'permission denied (not executable?)' : e.message}`)));
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
      }).finally(() => {
        clearInterval(timer);
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
      });
      const endedMs = Date.now();
      if (recorder) {
        recorded.push(...recorder.drain(null));
        recorder.close();
      }
      // before the after-snapshot, whose creators it is evidence for
      saveSnapshot(store, before.doc, before.objects);
      savePinRecords(store, before.doc.snapshot.bootId, recorded.map((r) => r.stored));
      const treePins = child.pid && recorder ? pinsOfTree(recorded, child.pid, startedMs, endedMs) : null;
      const treeObjects = new Set(treePins?.filter((r) => r.stored.ret === 0).map((r) => objectKey(r.stored.kind, r.stored.id)));

      // Pins new since `before`: CMD's when its tree was seen holding the object, or when
      // they were pinned while it ran (a short-lived process can slip between samples).
      const beforeKey = pinKeyer(before.doc, true);
      const existed = new Set(before.doc.pins.map(beforeKey));
      const slack = (2 * 1000) / clockTicks() + 50;
      const rootProc = root;
      const after = await takeSnapshot({
        store, config, label: 'run:after', onProgress: progressReporter(a),
        creatorHint: (p) => {
          const k = objectKey(p.object!.kind, p.object!.id);
          if (existed.has(beforeKey(p))) return null;
          if (treePins) return null; // the stored records are the evidence: exact, no time window
          const seen = sightings.get(k);
          if (seen) return seen;
          // Weaker evidence: pinned while CMD ran, but never seen held by its tree. Reported,
          // not recorded, so it never outranks what later scans learn.
          if (rootProc && p.ctimeMs >= startedMs - slack && p.ctimeMs <= endedMs + slack) {
            return { pid: rootProc.pid, startTime: rootProc.startTime, comm: rootProc.comm, snapshotId: null, container: null, source: 'run-window' };
          }
          return null;
        },
      });
      endProgress(a);
      const afterId = saveSnapshot(store, after.doc, after.objects);
      retentionAfterStore(store, config);
      const afterKey = pinKeyer(after.doc, true);
      const byTree = (p: Pin) => (treePins
        ? !!p.object && treeObjects.has(objectKey(p.object.kind, p.object.id))
        : p.creator?.source === 'run' || p.creator?.source === 'run-window');
      const created = after.doc.pins.filter((p) => byTree(p) && !existed.has(afterKey(p)));
      recordCreators(store, after.doc.snapshot.bootId, created.filter((p) => p.creator!.source === 'run').map((p) => ({
        kind: p.object!.kind, id: p.object!.id, pid: p.creator!.pid, startTime: p.creator!.startTime ?? 0,
        comm: p.creator!.comm ?? '', container: p.creator!.container ?? null, source: 'run', snapshotId: afterId,
      })));
      const result: RunResult = {
        schemaVersion: SCHEMA_VERSION, command, exitCode, before: before.doc.snapshot, after: after.doc.snapshot,
        samples, pinRecords: treePins ? treePins.length : null, created, leftBehind: created.filter(isLeak),
      };
      announcePartial(a, after.doc.snapshot);
      if (a.json) emitJson(result);
      else summary(a, renderRun(result, outStyle(a)));
      if (exitCode !== 0) process.exitCode = exitCode;
      else if (a.failOnLeak) {
        refusePartial(after.doc.snapshot, '--fail-on-leak does not judge it');
        if (result.leftBehind.length) process.exitCode = 1;
      }
    } finally {
      store.close();
    }
  },
};

/**
 * The records of pins CMD's process tree made: the pinner is CMD's root process or has it
 * among its recorded ancestors (so a grandchild that lived 1 ms counts, through parents
 * that pinned nothing), within CMD's lifetime (the root's pid is not reused before it is
 * reaped, which is after `endedMs`).
 */
export function pinsOfTree<R extends { raw: PinRecord; stored: StoredPinRecord }>(records: R[], rootPid: number, startedMs: number, endedMs: number): R[] {
  const slack = 1000; // the records' wall-clock times come from CLOCK_BOOTTIME and /proc/uptime
  return records.filter(({ raw, stored }) => {
    const at = Date.parse(stored.at);
    return at >= startedMs - slack && at <= endedMs + slack && (raw.pid === rootPid || raw.ancestors.includes(rootPid));
  });
}

/** A command killed by a signal exits like a shell reports it: 128 + the signal's number. */
function signalNumber(signal: NodeJS.Signals): number {
  return (os.constants.signals as Record<string, number>)[signal] ?? 0;
}
