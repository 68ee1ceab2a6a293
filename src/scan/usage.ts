// "Is anything using this object right now?" for clean's last check before an unlink:
// holders (fds, mmaps), live kernel references and the count guard, from one sweep at most
// maxAgeMs old.
import { pageSize } from '../kernel/procfs.js';
import { liveObjects } from '../analysis/classify.js';
import { scanProcesses } from './processes.js';
import { readReferenceGraph } from './references.js';
import { buildHolders } from './holders.js';
import { mapTypesOf, readCounts, residue } from './counts.js';
import { unexplainedReason, type Unexplained } from '../analysis/liveness.js';
import { contentRefs } from './contents.js';
import type { InstanceAccess } from './instances.js';
import { objectKey, type ScannedPin } from '../model.js';
import { discoverNetns, type NetnsMount } from './netns.js';

export interface UsageProbe {
  /** why the object is held or in use now, or null when nothing alive reaches it */
  check(kind: string, id: number): string | null;
}

/**
 * Where to look, from the scan: cgroup hierarchies, the nsfs mounts of network namespaces,
 * and the instances' access paths (prog arrays are opened through their pins, see
 * contents.ts); pinsNow: every pin as the caller knows it now (the scan's, less what it
 * unlinked since).
 */
export function usageProbe(
  scope: { cgroupRoots: string[]; netnsMounts: NetnsMount[]; access: Map<string, InstanceAccess[]> },
  pinsNow: () => ScannedPin[],
  maxAgeMs = 250,
): UsageProbe {
  let takenAt = 0;
  let sweep: ((kind: string, id: number) => string | null) | null = null;
  const take = () => {
    // The counts and the pins at the same moment: an unlink made after this read is in both.
    const guard = readCounts();
    const pins = pinsNow();
    // the counts' task_file/task_vma records give every BPF fd and every mapping of a map
    // exactly, as in a scan: the graph then opens no map by id (no prog array either)
    const ps = scanProcesses({ mmaps: true, kernel: guard.ok ? guard.counts : undefined });
    const errors: { scope: string; message: string }[] = [];
    const graph = readReferenceGraph({
      withMaps: ps.mapMappings.size > 0, cgroupRoots: scope.cgroupRoots,
      netns: () => discoverNetns({ pids: ps.processes.keys(), netNsOf: ps.netNsOf, netNsFds: ps.netNsFds, mounts: scope.netnsMounts }),
    }, errors);
    graph.refs.push(...contentRefs({ ps, graph, pins, access: scope.access, mapTypes: mapTypesOf(guard) }, errors));
    const exactMmaps = guard.ok ? guard.counts.vmas.filter((v) => v.pid !== process.pid) : undefined;
    const holders = buildHolders(ps, graph.maps, pageSize(), () => null, exactMmaps);
    const live = liveObjects({ holders: holders.byObject, links: graph.links, refs: graph.refs, unexplained: new Map() });
    // any referrer the kernel counts that nothing names keeps an object
    const left = guard.ok ? residue(guard.counts, pins, graph.refs) : new Map<string, Unexplained>();
    sweep = (kind, id) => {
      // a kernel graph read only in part cannot prove that nothing uses the object
      if (errors.length) return `cannot confirm it is unused: ${errors[0]!.scope}: ${errors[0]!.message}`;
      if (ps.unreadable.length) return `cannot confirm it is unused: the fds of pid ${ps.unreadable[0]} could not be read`;
      const h = holders.byObject.get(objectKey(kind, id));
      if (h?.length) return `held by pid ${h[0]!.pid} (${h[0]!.comm}) now`;
      const why = kind !== 'link' ? live.live.get(objectKey(kind, id)) : undefined;
      if (why !== undefined) return `in use now: ${why}`;
      const unexplained = left.get(objectKey(kind, id));
      if (unexplained) return `in use now: ${unexplainedReason(unexplained)}`;
      return null;
    };
    takenAt = Date.now();
  };
  return {
    check(kind, id) {
      if (!sweep || Date.now() - takenAt > maxAgeMs) take();
      return sweep!(kind, id);
    },
  };
}
