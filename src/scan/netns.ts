// Network namespaces, reached like mount namespaces: those processes are in
// (/proc/<pid>/ns/net), those an nsfs bind mount keeps (`ip netns add` makes
// /run/netns/<name>; found in the mountinfo of every mount namespace the scan read), and
// those only an fd keeps. Identity is the nsfs inode.
import fs from 'node:fs';
import { PROC, parseNsLink, readNetNs, type MountinfoEntry } from '../kernel/procfs.js';
import type { NetNsFdRef } from './processes.js';

export interface NetnsTarget {
  ino: number;
  /** paths that open it, best first (a process may exit, a mount may go, between discovery and use) */
  files: string[];
}

/** An nsfs bind mount of a network namespace, as a path this process can open. */
export interface NetnsMount {
  ino: number;
  file: string;
}

/** Processes of one namespace kept as ways in: enough that one of them is still there. */
const PIDS_PER_NETNS = 3;

/** The nsfs mounts of network namespaces in the mount tables the scan read. */
export function netnsMounts(views: { readerPid: number | null; mounts: MountinfoEntry[] }[]): NetnsMount[] {
  const out: NetnsMount[] = [];
  for (const v of views) {
    if (v.readerPid === null) continue;
    for (const m of v.mounts) {
      if (m.fstype !== 'nsfs') continue;
      const ino = parseNsLink(m.root, 'net');
      if (ino !== null) out.push({ ino, file: `${PROC}/${v.readerPid}/root${m.mountPoint}` });
    }
  }
  return out;
}

/**
 * Every network namespace: each process's (from `netNsOf`, the task iterator's, else one
 * readlink), plus the mounts and fds already found.
 */
export function discoverNetns(input: {
  pids: Iterable<number>; netNsOf?: Map<number, number>; netNsFds: NetNsFdRef[]; mounts: NetnsMount[];
}): NetnsTarget[] {
  const byIno = new Map<number, NetnsTarget>();
  const add = (ino: number, file: string) => {
    let t = byIno.get(ino);
    if (!t) byIno.set(ino, (t = { ino, files: [] }));
    if (!t.files.includes(file)) t.files.push(file);
  };
  const viaPids = new Map<number, number>();
  for (const m of input.mounts) add(m.ino, m.file);
  // this process's own namespace (a scan skips its own pid)
  const own = readNetNs('thread-self');
  if (own !== null) add(own, `${PROC}/thread-self/ns/net`);
  for (const pid of input.pids) {
    const ino = input.netNsOf?.get(pid) ?? readNetNs(pid);
    if (ino === null) continue;
    const n = viaPids.get(ino) ?? 0;
    if (n >= PIDS_PER_NETNS) continue;
    viaPids.set(ino, n + 1);
    add(ino, `${PROC}/${pid}/ns/net`);
  }
  for (const f of input.netNsFds) add(f.netNs, `${PROC}/${f.pid}/fd/${f.fd}`);
  return [...byIno.values()];
}

/**
 * Opens a namespace through the first of its paths that still leads to it (the inode is
 * checked: a reused pid may now be in another namespace). null: every way in is gone.
 * Other failures (permissions) throw.
 */
export function openNetns(t: NetnsTarget): number | null {
  let failure: Error | null = null;
  for (const file of t.files) {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ESRCH') failure ??= e as Error;
      continue;
    }
    if (fs.fstatSync(fd).ino === t.ino) return fd;
    fs.closeSync(fd);
  }
  if (failure) throw failure;
  return null;
}
