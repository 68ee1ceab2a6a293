// Mount namespaces: those processes are in, and those nothing runs in (kept alive by
// an nsfs bind mount or an open fd). Each namespace's mountinfo is read once.
import { PROC, readMountinfo, readStat, parseNsLink, type MountinfoEntry } from '../kernel/procfs.js';
import { enterNamespace, type Anchor } from '../kernel/ns.js';
import type { MountNamespace, ReachedVia, ScanError } from '../model.js';
import { isLive, type ProcessScan } from './processes.js';

export interface NamespaceView {
  ns: MountNamespace;
  /** a pid whose /proc/<pid>/root and mountinfo show this namespace */
  readerPid: number | null;
  mounts: MountinfoEntry[];
}

interface Candidate {
  mntNs: number;
  via: ReachedVia;
  file: string;
  nsfsPath: string | null;
}

/**
 * Finds every mount namespace and reads its mountinfo. Namespaces no process is in are
 * entered through an anchor process (nsenter); the caller must release `anchors`.
 */
export async function discoverNamespaces(ps: ProcessScan, anchors: Anchor[], errors: ScanError[]): Promise<NamespaceView[]> {
  const views = new Map<number, NamespaceView>();
  for (const p of ps.processes.values()) {
    if (p.mntNs === null) continue;
    let v = views.get(p.mntNs);
    if (!v) {
      v = { ns: { mntNs: p.mntNs, reachedVia: 'process', pids: [], processCount: 0, nsfsPaths: [], error: null }, readerPid: null, mounts: [] };
      views.set(p.mntNs, v);
    }
    v.ns.pids.push(p.pid);
    v.ns.processCount++;
  }

  const candidates: Candidate[] = [];
  /** the nsfs mounts seen for namespaces already known, in case those turn out to have no process left */
  const nsfsSeen = new Map<number, Candidate[]>();
  const readAll = (list: NamespaceView[]) => {
    for (const v of list) {
      if (readNamespaceMounts(v) === 'gone') {
        // every process of it exited during the scan: like an instance unmounted meanwhile,
        // it is not part of this snapshot, unless an nsfs mount keeps it: then it is entered through that
        views.delete(v.ns.mntNs);
        candidates.push(...(nsfsSeen.get(v.ns.mntNs) ?? []));
        continue;
      }
      if (v.readerPid === null) continue;
      for (const m of v.mounts) {
        if (m.fstype !== 'nsfs') continue;
        const target = parseNsLink(m.root);
        if (target === null) continue;
        const known = views.get(target);
        const c: Candidate = { mntNs: target, via: 'nsfs', file: `${PROC}/${v.readerPid}/root${m.mountPoint}`, nsfsPath: m.mountPoint };
        if (known) {
          if (!known.ns.nsfsPaths.includes(m.mountPoint)) known.ns.nsfsPaths.push(m.mountPoint);
          nsfsSeen.set(target, [...(nsfsSeen.get(target) ?? []), c]);
        } else {
          candidates.push(c);
        }
      }
    }
  };
  readAll([...views.values()]);
  for (const f of ps.nsFds) {
    if (!views.has(f.mntNs)) candidates.push({ mntNs: f.mntNs, via: 'fd', file: `${PROC}/${f.pid}/fd/${f.fd}`, nsfsPath: null });
  }

  // Entering a namespace can reveal nsfs mounts of yet more namespaces: repeat until none is new.
  while (candidates.length) {
    const batch = candidates.splice(0);
    const fresh: NamespaceView[] = [];
    for (const c of batch) {
      const known = views.get(c.mntNs);
      if (known) {
        if (c.nsfsPath && !known.ns.nsfsPaths.includes(c.nsfsPath)) known.ns.nsfsPaths.push(c.nsfsPath);
        continue;
      }
      const v: NamespaceView = {
        ns: { mntNs: c.mntNs, reachedVia: c.via, pids: [], processCount: 0, nsfsPaths: c.nsfsPath ? [c.nsfsPath] : [], error: null },
        readerPid: null, mounts: [],
      };
      views.set(c.mntNs, v);
      try {
        const anchor = await enterNamespace(c.file, c.mntNs);
        anchors.push(anchor);
        v.readerPid = anchor.pid;
        fresh.push(v);
      } catch (e) {
        v.ns.error = `cannot enter namespace through ${c.file}: ${(e as Error).message}`;
      }
    }
    readAll(fresh);
  }

  for (const v of views.values()) {
    if (v.ns.error) errors.push({ scope: `namespace ${v.ns.mntNs}`, message: v.ns.error });
  }
  return [...views.values()];
}

/**
 * Reads mountinfo once, from the first process of the namespace that still exists.
 * 'gone': it had processes and all of them have exited since they were listed.
 */
function readNamespaceMounts(v: NamespaceView): 'read' | 'gone' | 'unreadable' {
  const tries = v.readerPid !== null ? [v.readerPid] : v.ns.pids;
  for (const pid of tries) {
    const mounts = readMountinfo(pid);
    if (mounts) {
      v.readerPid = pid;
      v.mounts = mounts;
      return 'read';
    }
  }
  v.readerPid = null;
  if (v.ns.reachedVia === 'process' && tries.every((pid) => { const st = readStat(pid); return !st || !isLive(st); })) return 'gone';
  v.ns.error = `could not read the mountinfo of any of its ${tries.length} process(es)`;
  return 'unreadable';
}
