// One sample of a process tree during `pinleak run`: which BPF objects each process holds.
// Cheap enough to repeat every few milliseconds: one stat per process, fds only for the tree.
import { listPids, readStat, readFdTargets, readCgroup } from '../kernel/procfs.js';
import type { ObjectKind } from '../model.js';
import { bpfFdsOf } from './processes.js';
import { pushTo } from '../lists.js';

export interface TreeSample {
  pids: number[];
  held: { kind: ObjectKind; id: number; pid: number; startTime: number; comm: string; cgroup: string | null }[];
}

export function sampleTree(rootPid: number): TreeSample {
  const children = new Map<number, number[]>();
  const stats = new Map<number, { startTime: number; comm: string }>();
  for (const pid of listPids()) {
    const st = readStat(pid);
    if (!st) continue;
    stats.set(pid, st);
    pushTo(children, st.ppid, pid);
  }
  const tree: number[] = [];
  const queue = stats.has(rootPid) ? [rootPid] : [];
  while (queue.length) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  const held: TreeSample['held'] = [];
  for (const pid of tree) {
    const fds = readFdTargets(pid);
    if (!fds || fds === 'denied') continue;
    const refs = bpfFdsOf(pid, fds);
    if (!refs.length) continue;
    const cgroup = readCgroup(pid);
    const st = stats.get(pid)!;
    for (const r of refs) held.push({ kind: r.kind, id: r.id, pid, startTime: st.startTime, comm: st.comm, cgroup });
  }
  return { pids: tree, held };
}
