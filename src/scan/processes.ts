// Every process on the host, with what the later phases need from it: identity
// (pid, start time), mount namespace, and the BPF objects and namespaces its fds point at.
import { kindOfFdTarget } from '../kernel/bpf.js';
import {
  listPids, readStat, type ProcStat, readMntNs, readFdTargets, readBpfFdinfo, parseNsLink,
  readBpfMapMappings, readCgroup, type MapMapping,
} from '../kernel/procfs.js';
import type { ObjectKind } from '../model.js';

export interface Process {
  pid: number;
  startTime: number;
  comm: string;
  ppid: number;
  mntNs: number | null;
  /** raw /proc/<pid>/cgroup, kept so the container outlives the process */
  cgroup: string | null;
}

export interface FdRef {
  pid: number;
  fd: number;
  kind: ObjectKind;
  id: number;
}

export interface NsFdRef {
  pid: number;
  fd: number;
  mntNs: number;
}

export interface ProcessScan {
  /** the live processes (see isLive): a zombie has exited */
  processes: Map<number, Process>;
  /** live processes whose fds could not be listed (permission): their holdings are unknown */
  unreadable: number[];
  bpfFds: FdRef[];
  nsFds: NsFdRef[];
  /** pid -> address ranges of its mappings of BPF maps (held with no fd) */
  mapMappings: Map<number, MapMapping[]>;
}

/**
 * SPEC: a process is alive only when its (pid, startTime) is and it is not a zombie. A
 * zombie (state Z, or X while being reaped) has exited, however long its parent takes to
 * reap it; the exception is a thread-group leader that called pthread_exit: it shows Z
 * while its other threads still run (num_threads > 1), and that process is alive.
 */
export function isLive(stat: Pick<ProcStat, 'state' | 'threads'>): boolean {
  return !((stat.state === 'Z' || stat.state === 'X') && !(stat.threads > 1));
}

export function scanProcesses(opts: { mmaps: boolean; onProgress?: (done: number, total: number) => void }): ProcessScan {
  const processes = new Map<number, Process>();
  const bpfFds: FdRef[] = [];
  const nsFds: NsFdRef[] = [];
  const mapMappings = new Map<number, MapMapping[]>();
  const unreadable: number[] = [];
  const pids = listPids();
  const self = process.pid;
  let done = 0;
  for (const pid of pids) {
    if (++done % 200 === 0) opts.onProgress?.(done, pids.length);
    if (pid === self) continue; // pinleak's own fds are its scan, not holders
    const stat = readStat(pid);
    if (!stat || !isLive(stat)) continue; // exited (since the directory listing, or a zombie)
    const proc: Process = {
      pid, startTime: stat.startTime, comm: stat.comm, ppid: stat.ppid,
      mntNs: readMntNs(pid), cgroup: null,
    };
    const fds = readFdTargets(pid);
    if (fds === 'denied') unreadable.push(pid);
    let interesting = false;
    if (fds && fds !== 'denied') {
      const held = bpfFdsOf(pid, fds);
      if (held.length) {
        bpfFds.push(...held);
        interesting = true;
      }
      for (const [fd, target] of fds) {
        if (target.startsWith('mnt:[')) {
          const ns = parseNsLink(target);
          if (ns !== null) nsFds.push({ pid, fd, mntNs: ns });
        }
      }
    }
    if (opts.mmaps) {
      const ranges = readBpfMapMappings(pid);
      if (ranges.length) {
        mapMappings.set(pid, ranges);
        interesting = true;
      }
    }
    // Containers only matter for processes a report names: holders (and, via history, creators).
    if (interesting) proc.cgroup = readCgroup(pid);
    processes.set(pid, proc);
  }
  opts.onProgress?.(pids.length, pids.length);
  return { processes, unreadable, bpfFds, nsFds, mapMappings };
}

/** The BPF objects among a process's fds, with their ids from fdinfo (fdinfo read for bpf fds only). */
export function bpfFdsOf(pid: number, fds: Map<number, string>): FdRef[] {
  const out: FdRef[] = [];
  for (const [fd, target] of fds) {
    const kind = kindOfFdTarget(target);
    if (!kind) continue;
    const info = readBpfFdinfo(pid, fd);
    if (info?.id != null && info.kind === kind) out.push({ pid, fd, kind, id: info.id });
  }
  return out;
}
