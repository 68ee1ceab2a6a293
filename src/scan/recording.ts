// The pin recorder at work for `watch` and `run`: attach it (or say in one line why the
// kernel refuses it), drain its records and turn them into stored ones: wall-clock times,
// the cgroup's path and container, resolved while the cgroup most likely still exists.
import { startRecorder, recorderRefusal, type PinRecord, type Recorder } from '../kernel/recorder.js';
import { cgroupResolver, type CgroupResolver } from '../kernel/cgroups.js';
import { bootEpochMs } from '../kernel/procfs.js';
import { containerFromPath } from '../analysis/container.js';
import type { StoredPinRecord } from '../store/index.js';

/** How often `watch` and `run` drain the queue: it holds 8192 pins, so ~40,000 pins a second fit. */
export const DRAIN_MS = 200;

export interface Recording {
  recorder: Recorder;
  /** the records since the last call, resolved (the raw ones too, for `run`'s ancestry) */
  drain(sessionId: number | null): { raw: PinRecord; stored: StoredPinRecord }[];
  close(): void;
}

/** The recorder attached, or why not (one line) when the kernel refuses it. */
export function startRecording(): Recording | { refused: string } {
  let recorder: Recorder;
  try {
    recorder = startRecorder();
  } catch (e) {
    return { refused: recorderRefusal(e) };
  }
  const cgroups = cgroupResolver();
  // CLOCK_BOOTTIME's epoch, read once: /proc/uptime is read at ms resolution
  const epochMs = bootEpochMs();
  return {
    recorder,
    drain(sessionId) {
      return recorder.drain().map((raw) => ({ raw, stored: storedRecord(raw, epochMs, cgroups, sessionId) }));
    },
    close: () => recorder.close(),
  };
}

export function storedRecord(r: PinRecord, epochMs: number, cgroups: CgroupResolver, sessionId: number | null): StoredPinRecord {
  const cgroupPath = cgroups.pathOf(r.cgroupId);
  return {
    at: new Date(epochMs + Number(r.bootNs / 1000n) / 1000).toISOString(), kind: r.kind, id: r.id, ret: r.ret,
    pid: r.pid, startTime: r.startTime, comm: r.comm, ppid: r.ppid, parentStartTime: r.parentStartTime,
    cgroupId: r.cgroupId, cgroupPath, container: cgroupPath ? containerFromPath(cgroupPath) : null, mntNs: r.mntNs,
    path: r.path, pathTruncated: r.pathTruncated, bpfFd: r.bpfFd, fileFlags: r.fileFlags, pathFd: r.pathFd, sessionId,
  };
}
