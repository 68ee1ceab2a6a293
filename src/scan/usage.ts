// "Is anything using this object right now?" for clean's last check before an unlink:
// holders (fds, mmaps) and live kernel references, from a sweep at most maxAgeMs old.
import { pageSize } from '../kernel/procfs.js';
import { liveness, key } from '../analysis/classify.js';
import { emptyConfig } from '../analysis/config.js';
import { scanProcesses } from './processes.js';
import { readReferenceGraph } from './references.js';
import { buildHolders } from './holders.js';

export interface UsageProbe {
  /** why the object is held or in use now, or null when nothing alive reaches it */
  check(kind: string, id: number): string | null;
}

export function usageProbe(cgroupRoots: string[], maxAgeMs = 250): UsageProbe {
  let takenAt = 0;
  let sweep: ((kind: string, id: number) => string | null) | null = null;
  const take = () => {
    const ps = scanProcesses({ mmaps: true });
    const errors: { scope: string; message: string }[] = [];
    const graph = readReferenceGraph({ withMaps: ps.mapMappings.size > 0, cgroupRoots }, errors);
    const holders = buildHolders(ps, graph.maps, pageSize(), () => null);
    const live = liveness({
      processes: ps.processes, holders: holders.byObject, mmapNotes: holders.mmapNotes, progs: graph.progs, links: graph.links,
      attachments: graph.attachments, recorded: new Map(), history: new Map(), bootEpochMs: 0, clockTicks: 100, pidMax: 0,
      catalog: [], config: emptyConfig(),
    });
    sweep = (kind, id) => {
      // a kernel graph read only in part cannot prove that nothing uses the object
      if (errors.length) return `cannot confirm it is unused: ${errors[0]!.scope}: ${errors[0]!.message}`;
      if (ps.unreadable.length) return `cannot confirm it is unused: the fds of pid ${ps.unreadable[0]} could not be read`;
      const h = holders.byObject.get(key(kind, id));
      if (h?.length) return `held by pid ${h[0]!.pid} (${h[0]!.comm}) now`;
      if (kind === 'map' && live.liveMaps.has(id)) return `in use now: ${live.liveMaps.get(id)}`;
      if (kind === 'prog' && live.liveProgs.has(id)) return `in use now: ${live.liveProgs.get(id)}`;
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
