// Every process on the host, with what the later phases need from it: identity
// (pid, start time), mount namespace, and the BPF objects and namespaces its fds point at.
import { kindOfFdTarget } from '../kernel/bpf.js';
import { mapTypeName, EXIT_DEAD, EXIT_ZOMBIE, PF_KTHREAD } from '../kernel/abi.js';
import { netnsOfFile } from '../kernel/netns.js';
import {
  PROC, listPids, readStat, type ProcStat, readMntNs, readFdTargets, readFdTarget, readBpfFdinfo, parseNsLink,
  readBpfMapMappings, readCgroup, clockTicks, type MapMapping,
} from '../kernel/procfs.js';
import type { ObjectKind } from '../model.js';
import { readTasks, type KernelCounts } from '../kernel/iterators.js';

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
  /** maps: their type, from fdinfo (so a map's contents can be read without opening it by id) */
  mapType?: string;
}

/** An fd of a perf event (`anon_inode:[perf_event]`): it may run a BPF program. */
export interface PerfFd {
  pid: number;
  fd: number;
}

export interface NsFdRef {
  pid: number;
  fd: number;
  mntNs: number;
}

/** An fd of a network namespace (it may be the only thing keeping the namespace alive). */
export interface NetNsFdRef {
  pid: number;
  fd: number;
  netNs: number;
}

export interface ProcessScan {
  /** the live processes (see isLive): a zombie has exited */
  processes: Map<number, Process>;
  /** live processes whose fds could not be listed (permission): their holdings are unknown */
  unreadable: number[];
  bpfFds: FdRef[];
  nsFds: NsFdRef[];
  netNsFds: NetNsFdRef[];
  /** pid -> address ranges of its mappings of BPF maps (held with no fd) */
  mapMappings: Map<number, MapMapping[]>;
  perfFds: PerfFd[];
  /** pid -> its network namespace's inode, where the task iterator gave it (else read from procfs when needed) */
  netNsOf: Map<number, number>;
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

/**
 * `kernel`: one read of the task_file/task_vma iterators (the count guard's). It names every
 * BPF fd of every task with its id, so no process's fdinfo is read, and every mapping of a
 * map exactly, so no /proc/<pid>/maps is read either (`mapMappings` then stays empty: the
 * mappings are the iterator's `vmas`). Without it (iterators refused) procfs gives both.
 */
export function scanProcesses(opts: { mmaps: boolean; kernel?: KernelCounts; onProgress?: (done: number, total: number) => void }): ProcessScan {
  const processes = new Map<number, Process>();
  const bpfFds: FdRef[] = [];
  const nsFds: NsFdRef[] = [];
  const netNsFds: NetNsFdRef[] = [];
  const mapMappings = new Map<number, MapMapping[]>();
  const unreadable: number[] = [];
  const perfFds: PerfFd[] = [];
  const self = process.pid;
  const kernel = opts.kernel;
  // With the iterators: the stat fields and mount namespace of every process in one read.
  // /proc still says which processes there are: the task iterator does not visit every one
  // (on this kernel it never shows pid 1), and those are read from procfs as before.
  const tasks = kernel ? taskStats() : null;
  const pids = listPids();
  /** the namespaces and perf events among a process's fds, by the fd's link */
  const noteFd = (pid: number, fd: number, target: string): void => {
    if (target.startsWith('mnt:[')) {
      const ns = parseNsLink(target);
      if (ns !== null) nsFds.push({ pid, fd, mntNs: ns });
    } else if (target === 'anon_inode:[perf_event]') {
      perfFds.push({ pid, fd });
    } else if (target.startsWith('net:[')) {
      const ns = parseNsLink(target, 'net');
      if (ns !== null) netNsFds.push({ pid, fd, netNs: ns });
    } else if (target === '/' || target.includes('/netns/')) {
      // opened through an nsfs bind mount (ip netns, docker, CNI), or one since unmounted
      const ns = netnsOfFile(`${PROC}/${pid}/fd/${fd}`);
      if (ns !== null) netNsFds.push({ pid, fd, netNs: ns });
    }
  };
  const readViaProcfs = new Set<number>();
  let done = 0;
  for (const pid of pids) {
    if (++done % 200 === 0) opts.onProgress?.(done, pids.length);
    if (pid === self) continue; // pinleak's own fds are its scan, not holders
    const fromKernel = tasks?.get(pid);
    const stat = fromKernel ? fromKernel.stat : readStat(pid);
    if (!stat || !isLive(stat)) continue; // exited (since the directory listing, or a zombie)
    const proc: Process = {
      pid, startTime: stat.startTime, comm: stat.comm, ppid: stat.ppid,
      mntNs: fromKernel ? fromKernel.mntNs : readMntNs(pid), cgroup: null,
    };
    let interesting = false;
    // With the iterators, the kernel named every fd worth a look (below); else every fd's
    // link. A process the task iterator did not show may be one the file and vma iterators
    // did not visit either: it is read from procfs, as without iterators.
    const viaProcfs = !kernel || (tasks !== null && !tasks.has(pid));
    if (viaProcfs) readViaProcfs.add(pid);
    const fds = viaProcfs ? readFdTargets(pid) : null;
    if (fds === 'denied') unreadable.push(pid);
    if (fds && fds !== 'denied') {
      const held = bpfFdsOf(pid, fds);
      if (held.length) {
        bpfFds.push(...held);
        interesting = true;
      }
      for (const [fd, target] of fds) noteFd(pid, fd, target);
    }
    if (opts.mmaps && viaProcfs) {
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
  if (kernel) {
    // namespaces and perf events held by fds: the few the iterator named, in pid and fd order
    const others = kernel.otherFiles.filter((f) => processes.has(f.pid) && !readViaProcfs.has(f.pid)).sort((a, b) => a.pid - b.pid || a.fd - b.fd);
    for (const f of others) {
      const target = readFdTarget(f.pid, f.fd);
      if (target !== null) noteFd(f.pid, f.fd, target); // null: closed since the read
    }
    bpfFds.push(...kernelFds(kernel, processes, readViaProcfs));
    const named = new Set([...bpfFds.map((f) => f.pid), ...kernel.vmas.map((v) => v.pid)]);
    for (const pid of named) {
      const p = processes.get(pid);
      if (p && !readViaProcfs.has(pid)) p.cgroup = readCgroup(pid); // (read in the loop when procfs named it)
    }
  }
  opts.onProgress?.(pids.length, pids.length);
  const netNsOf = new Map<number, number>();
  for (const [pid, t] of tasks ?? []) if (t.netNs !== null && processes.has(pid)) netNsOf.set(pid, t.netNs);
  return { processes, unreadable, bpfFds, nsFds, netNsFds, mapMappings, perfFds, netNsOf };
}

/**
 * Every process's /proc/<pid>/stat fields and mount namespace, from the task iterator: the
 * start time in clock ticks as procfs computes it (start_boottime / (1e9 / USER_HZ)), state
 * Z or X from exit_state. A kernel thread's procfs comm can be longer than task->comm
 * (its full name, a workqueue's description), so kernel threads are read from procfs.
 */
function taskStats(): Map<number, { stat: ProcStat | null; mntNs: number | null; netNs: number | null }> | null {
  const tasks = readTasks();
  if (!tasks) return null; // the task iterator was refused: procfs, as without iterators
  const nsPerTick = BigInt(Math.round(1e9 / clockTicks()));
  const out = new Map<number, { stat: ProcStat | null; mntNs: number | null; netNs: number | null }>();
  for (const t of tasks) {
    if (t.flags & PF_KTHREAD) {
      out.set(t.pid, { stat: readStat(t.pid), mntNs: t.mntNs || null, netNs: t.netNs || null });
      continue;
    }
    const state = t.exitState & EXIT_ZOMBIE ? 'Z' : t.exitState & EXIT_DEAD ? 'X' : 'S';
    out.set(t.pid, {
      stat: { pid: t.pid, comm: t.comm, state, ppid: t.ppid, threads: t.threads, startTime: Number(t.startNs / nsPerTick) },
      mntNs: t.mntNs || null, netNs: t.netNs || null,
    });
  }
  return out;
}

/** The BPF fds of the live processes (pinleak's own are its scan), in pid and fd order as procfs lists them. */
function kernelFds(kernel: KernelCounts, processes: Map<number, Process>, readViaProcfs: Set<number>): FdRef[] {
  const out: FdRef[] = [];
  for (const f of kernel.files) {
    if (!processes.has(f.pid) || readViaProcfs.has(f.pid)) continue; // pinleak itself, a zombie, gone since the read, or read from procfs
    const r: FdRef = { pid: f.pid, fd: f.fd, kind: f.kind, id: f.id };
    const type = f.kind === 'map' ? kernel.maps.get(f.id)?.type : undefined;
    if (type !== undefined) r.mapType = mapTypeName(type);
    out.push(r);
  }
  return out.sort((a, b) => a.pid - b.pid || a.fd - b.fd);
}

/** The BPF objects among a process's fds, with their ids from fdinfo (fdinfo read for bpf fds only). */
export function bpfFdsOf(pid: number, fds: Map<number, string>): FdRef[] {
  const out: FdRef[] = [];
  for (const [fd, target] of fds) {
    const kind = kindOfFdTarget(target);
    if (!kind) continue;
    const info = readBpfFdinfo(pid, fd);
    if (info?.id == null || info.kind !== kind) continue;
    const f: FdRef = { pid, fd, kind, id: info.id };
    if (info.mapType !== undefined) f.mapType = mapTypeName(info.mapType);
    out.push(f);
  }
  return out;
}
