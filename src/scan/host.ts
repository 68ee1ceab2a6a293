// One scan of the whole host: processes -> namespaces -> instances -> pins -> holders ->
// references. Phase timings are kept so a slow host can be diagnosed in the field.
import os from 'node:os';
import { MAP_TYPES } from '../kernel/abi.js';
import { readBootId, bootEpochMs, clockTicks, pidMax, pageSize, readCgroup } from '../kernel/procfs.js';
import type { Anchor } from '../kernel/ns.js';
import { containerFromCgroup } from '../analysis/container.js';
import type { BpffsInstance, BpfObject, Container, MountNamespace, ScanError, ScannedPin } from '../model.js';
import { scanProcesses, type Process } from './processes.js';
import { discoverNamespaces } from './namespaces.js';
import { collectInstances, type InstanceAccess } from './instances.js';
import { walkInstance, objectReader } from './pins.js';
import { buildHolders, memlockFixed, type HolderIndex } from './holders.js';
import { readReferenceGraph, cgroupRoots, type ReferenceGraph } from './references.js';
import { contentRefs } from './contents.js';
import { discoverNetns, netnsMounts, type NetnsMount } from './netns.js';
import { collectObjects, type ObjectFacts } from './objects.js';
import type { Unexplained } from '../analysis/liveness.js';
import { liveObjects } from '../analysis/classify.js';
import { mapTypesOf, readCounts, settledResidue } from './counts.js';
import { objectKey, pinObjectKey } from '../model.js';

export interface HostScan {
  takenAt: Date;
  bootId: string;
  hostname: string;
  kernel: string;
  bootEpochMs: number;
  clockTicks: number;
  pidMax: number;
  processes: Map<number, Process>;
  /** live processes whose fds could not be read */
  unreadableProcesses: number[];
  namespaces: MountNamespace[];
  instances: BpffsInstance[];
  pins: ScannedPin[];
  holders: HolderIndex;
  graph: ReferenceGraph;
  /** every map, program and link on the host, by object key */
  objects: Map<string, ObjectFacts>;
  /** object key -> what the kernel counts that no named reference explains (count guard) */
  unexplained: Map<string, Unexplained>;
  errors: ScanError[];
  timings: Record<string, number>;
  /** the cgroup v2 hierarchies queried for attached programs */
  cgroupRoots: string[];
  /** nsfs mounts of network namespaces (paths valid while the anchors live) */
  netnsMounts: NetnsMount[];
  /** how each instance's mounts are reached from this process (valid while the anchors live) */
  access: Map<string, InstanceAccess[]>;
  /** processes holding namespaces open for us; released unless keepAnchors was asked */
  anchors: Anchor[];
}

export type Progress = (phase: string, done?: number, total?: number) => void;

/** keepAnchors: the caller goes on using the access paths (clean) and must release `anchors`. */
export async function scanHost(opts: { onProgress?: Progress; keepAnchors?: boolean; objectCache?: Map<string, BpfObject> } = {}): Promise<HostScan> {
  const progress = opts.onProgress ?? (() => {});
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (phase: string) => {
    const now = performance.now();
    timings[phase] = Math.round((now - t) * 10) / 10;
    t = now;
  };
  const takenAt = new Date();
  const errors: ScanError[] = [];
  const anchors: Anchor[] = [];
  try {
    // The count guard's first read. Its task_file and task_vma records are also every BPF fd
    // and every mapping of a map of every process: the process scan reads no fdinfo and no
    // /proc/<pid>/maps when it has them.
    progress('counts');
    const guard = readCounts();
    if (!guard.ok) {
      errors.push({
        scope: 'count guard',
        message: `BPF iterators unavailable (${guard.why}): verdicts rest on the references pinleak can name; a referrer with no API (a socket filter, an fd in flight, an LWT route) cannot be seen`,
      });
    }
    const kernel = guard.ok ? guard.counts : undefined;
    lap('counts');

    progress('processes');
    const ps = scanProcesses({ mmaps: true, kernel, onProgress: (d, n) => progress('processes', d, n) });
    // exact mmap holders (the iterator's), or none known yet (procfs: guessed from shapes in buildHolders)
    const exactMmaps = kernel?.vmas.filter((v) => v.pid !== process.pid);
    const mmappedMaps = new Set(exactMmaps?.map((v) => v.mapId));
    lap('processes');

    progress('namespaces');
    const views = await discoverNamespaces(ps, anchors, errors);
    const cgroupCache = new Map<number, Container | null>();
    const containerOf = (p: Process): Container | null => {
      if (!cgroupCache.has(p.pid)) {
        const text = p.cgroup ?? readCgroup(p.pid);
        cgroupCache.set(p.pid, text ? containerFromCgroup(text) : null);
      }
      return cgroupCache.get(p.pid)!;
    };
    for (const v of views) {
      const first = v.ns.pids.map((pid) => ps.processes.get(pid)).find((p) => p);
      v.ns.container = first ? containerOf(first) : null;
    }
    lap('namespaces');

    progress('instances');
    const instanceViews = collectInstances(views);
    lap('instances');

    progress('references');
    const host = views.find((v) => v.ns.pids.includes(1)) ?? views.find((v) => v.readerPid !== null);
    const roots = host ? cgroupRoots(host.mounts, host.readerPid) : [];
    const nsMounts = netnsMounts(views);
    const graph = readReferenceGraph({
      // every map's shape, only to guess which map a mapping is (no iterators)
      withMaps: ps.mapMappings.size > 0, cgroupRoots: roots, memlock: true, progCounts: kernel?.progs, progInfo: kernel?.progInfo,
      netns: () => discoverNetns({ pids: ps.processes.keys(), netNsOf: ps.netNsOf, netNsFds: ps.netNsFds, mounts: nsMounts }),
    }, errors);
    lap('references');

    // An object cannot change behind its pin (same instance, inode and ctime): what a pin of
    // the last scan of this boot named comes from the store instead of three syscalls and a
    // read. Programs and links are the graph's (reader.known: what changes of them is there);
    // a map is read again when something holds or uses it and its memory can grow (memlock).
    const reader = objectReader({ mapName: kernel?.mapName, progs: graph.progs, links: graph.links });
    const cache = opts.objectCache;
    if (cache?.size) {
      const busy = new Set(ps.bpfFds.map((f) => objectKey(f.kind, f.id)));
      for (const p of graph.progs.values()) for (const m of p.mapIds) busy.add(objectKey('map', m));
      for (const m of mmappedMaps) busy.add(objectKey('map', m));
      const fixed = (id: number): boolean => {
        const m = kernel?.maps.get(id);
        return m !== undefined && memlockFixed(MAP_TYPES[m.type], m.flags);
      };
      // a mapping procfs cannot tie to one map could be of any map
      const mmaps = ps.mapMappings.size > 0;
      reader.cached = (dev, inode, ctimeMs) => {
        const o = cache.get(pinObjectKey(dev, inode, ctimeMs));
        if (!o) return null;
        if (o.kind === 'prog' || o.kind === 'link') return reader.known(o.kind, o.id, o.memlockBytes);
        if (mmaps || (busy.has(objectKey(o.kind, o.id)) && !fixed(o.id))) return null;
        return { ...o };
      };
    }
    const pins: ScannedPin[] = [];
    const gone = new Set<string>();
    instanceViews.forEach((iv, i) => {
      progress('pins', i, instanceViews.length);
      const found = walkInstance(iv, reader, errors);
      if (found) pins.push(...found);
      else gone.add(iv.instance.dev); // unmounted during the scan: not part of this snapshot
    });
    const liveViews = instanceViews.filter((iv) => !gone.has(iv.instance.dev));
    const access = new Map(liveViews.map((iv) => [iv.instance.dev, iv.accesses]));
    // whether a link is defunct is decided once, on the graph (a link on a process needs its process)
    for (const p of pins) {
      const l = p.object?.kind === 'link' ? graph.links.get(p.object.id) : undefined;
      if (l) Object.assign(p.object!, { defunct: l.defunct, target: l.target });
    }
    lap('pins');


    // after the pins: prog arrays are opened through their pins
    progress('contents');
    graph.refs.push(...contentRefs({ ps, graph, pins, access, mapTypes: mapTypesOf(guard) }, errors));
    lap('contents');

    progress('holders');
    const holders = buildHolders(ps, graph.maps, pageSize(), containerOf, exactMmaps);
    lap('holders');

    // Pinned objects that nothing named keeps alive are the ones whose counts must be explained.
    let unexplained = new Map<string, Unexplained>();
    if (guard.ok) {
      progress('counts');
      const live = liveObjects({ holders: holders.byObject, links: graph.links, refs: graph.refs, unexplained });
      const pinned = new Set<string>();
      for (const p of pins) if (p.object) pinned.add(objectKey(p.object.kind, p.object.id));
      const candidate = (k: string) => pinned.has(k) && !holders.byObject.get(k)?.length && (k.startsWith('link:') || !live.live.has(k));
      unexplained = await settledResidue(guard.counts, pins, graph.refs, candidate);
      timings.counts = (timings.counts ?? 0) + Math.round((performance.now() - t) * 10) / 10;
      t = performance.now();
    }

    progress('objects');
    const heldMaps = new Set([...ps.bpfFds.filter((f) => f.kind === 'map').map((f) => f.id), ...mmappedMaps]);
    const objects = collectObjects({ graph, pins, heldMaps, mapIds: kernel?.maps.keys() }, errors);
    // pinleak's own objects (its iterators, a watch's recorder) are its scan, not the host's
    for (const f of kernel?.files ?? []) if (f.pid === process.pid) objects.delete(objectKey(f.kind, f.id));
    lap('objects');

    return {
      takenAt, bootId: readBootId(), hostname: os.hostname(), kernel: os.release(),
      bootEpochMs: bootEpochMs(), clockTicks: clockTicks(), pidMax: pidMax(),
      processes: ps.processes, unreadableProcesses: ps.unreadable, namespaces: views.map((v) => v.ns), instances: liveViews.map((iv) => iv.instance),
      pins, holders, graph, objects, unexplained, errors, timings,
      cgroupRoots: roots, netnsMounts: nsMounts,
      access,
      anchors: opts.keepAnchors ? anchors : [],
    };
  } catch (e) {
    releaseAll(anchors);
    throw e;
  } finally {
    if (!opts.keepAnchors) releaseAll(anchors);
  }
}

export function releaseAll(anchors: Anchor[]): void {
  for (const a of anchors.splice(0)) a.release();
}
