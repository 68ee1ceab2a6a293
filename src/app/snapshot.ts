// From a scan of the host to a classified snapshot document (docs/json.md).
import { SCHEMA_VERSION, sortPins, objectKey, type BpfObject, type HostObject, type Holder, type ObjectRef, type ScannedPin, type SnapshotDoc } from '../model.js';
import { classifyPins, type ClassifyContext, type Sighting } from '../analysis/classify.js';
import { summarize, fillInstanceTotals } from '../analysis/summary.js';
import { loadCatalog } from '../analysis/owners.js';
import { catalogOwners, describeObjects, objectTotals, withHistory, type CatalogOwner } from '../analysis/objects.js';
import type { Config } from '../analysis/config.js';
import {
  earliestHolders, recordedCreators, pinObjectCache, staleRuns, unexplainedSince, pinRecordsOf, watchSessions, type Store,
} from '../store/index.js';
import type { StaleRecord } from '../analysis/stale.js';
import { readBootId } from '../kernel/procfs.js';
import { scanHost, type HostScan, type Progress } from '../scan/host.js';
import { partialReasons } from '../scan/partial.js';
import { pushTo } from '../lists.js';

export interface SnapshotOptions {
  store: Store | null;
  config: Config;
  label?: string | null;
  onProgress?: Progress;
  /** creators `pinleak run` observed during this invocation, not yet stored (evidence 1) */
  creatorHint?: (p: ScannedPin) => Sighting | null;
  /** keep the namespace anchors alive for the caller (see scanHost) */
  keepAnchors?: boolean;
  /** a resident caller's object cache from its previous snapshot (objectCacheOf), instead of the store's latest */
  objectCache?: { bootId: string; objects: Map<string, BpfObject> };
}

/** doc: the snapshot document; objects: every BPF object of the host (stored with it, shown by `objects`). */
export async function takeSnapshot(opts: SnapshotOptions): Promise<{ doc: SnapshotDoc; scan: HostScan; objects: HostObject[] }> {
  const started = performance.now();
  const bootId = readBootId();
  const objectCache = opts.objectCache?.bootId === bootId ? opts.objectCache.objects
    : opts.store ? pinObjectCache(opts.store, bootId) : undefined;
  const cacheMs = performance.now() - started;
  const scan = await scanHost({ onProgress: opts.onProgress, keepAnchors: opts.keepAnchors, objectCache });
  // the object cache read comes first among the phases (--timings)
  scan.timings = { cache: Math.round(cacheMs * 10) / 10, ...scan.timings };
  const t0 = performance.now();
  opts.onProgress?.('classification');
  const pinned = scan.pins.filter((p) => p.object).map((p) => ({ kind: p.object!.kind, id: p.object!.id }));
  let history = new Map<string, Sighting[]>();
  const recorded = new Map<string, Sighting>();
  let stale = new Map<string, StaleRecord>();
  if (opts.store) {
    stale = staleRuns(opts.store, scan.bootId, pinned);
    history = earliestHolders(opts.store, scan.bootId, pinned);
    for (const [k, r] of recordedCreators(opts.store, scan.bootId, pinned)) {
      recorded.set(k, { pid: r.pid, startTime: r.startTime, comm: r.comm, snapshotId: r.snapshotId, container: r.container, source: 'run' });
    }
  }
  // What `pinleak run` saw ranks first in this scan (evidence 1), a run-window guess too;
  // run stores only what it saw held, so a later scan ranks a run-window guess below history.
  if (opts.creatorHint) {
    for (const p of scan.pins) {
      const s = p.object ? opts.creatorHint(p) : null;
      if (s) recorded.set(objectKey(p.object!.kind, p.object!.id), { ...s, source: s.source ?? 'run' });
    }
  }
  const ctx = contextFromScan(scan, opts.config, history, recorded, stale);
  if (opts.store) Object.assign(ctx, watchEvidence(opts.store, scan.bootId, pinned));
  const pins = classifyPins(scan.pins, ctx);
  const objects = describeObjects({
    facts: scan.objects.values(), pins, holders: scan.holders.byObject, refs: scan.graph.refs, unexplained: scan.unexplained,
    catalog: ctx.objectOwners!, bootEpochMs: scan.bootEpochMs, takenAt: scan.takenAt.toISOString(),
  });
  if (opts.store) withHistory(objects, unexplainedSince(opts.store, scan.bootId, objects.filter((o) => o.unexplained)));
  sortPins(pins);
  fillInstanceTotals(scan.instances, pins);
  scan.timings.classification = Math.round((performance.now() - t0) * 10) / 10;

  const blind = partialReasons(scan);
  const doc: SnapshotDoc = {
    schemaVersion: SCHEMA_VERSION,
    snapshot: {
      id: null,
      takenAt: scan.takenAt.toISOString(),
      bootId: scan.bootId,
      hostname: scan.hostname,
      kernel: scan.kernel,
      label: opts.label ?? null,
      durationMs: Math.round(performance.now() - started),
      partial: blind.length > 0,
      partialReasons: blind,
    },
    namespaces: scan.namespaces,
    instances: scan.instances,
    pins,
    summary: { ...summarize(pins, scan.namespaces.length, scan.instances.length), objects: objectTotals(objects) },
    errors: scan.errors,
  };
  return { doc, scan, objects };
}

export function contextFromScan(
  scan: HostScan, config: Config, history: Map<string, Sighting[]>, recorded: Map<string, Sighting>, stale: Map<string, StaleRecord> = new Map(),
): ClassifyContext {
  const holders = new Map<string, Holder[]>(scan.holders.byObject);
  const catalog = catalogOf(config);
  return {
    processes: scan.processes,
    holders,
    mmapNotes: scan.holders.mmapNotes,
    links: scan.graph.links,
    refs: scan.graph.refs,
    unexplained: scan.unexplained,
    recorded,
    history,
    bootEpochMs: scan.bootEpochMs,
    clockTicks: scan.clockTicks,
    pidMax: scan.pidMax,
    catalog,
    config,
    staleRuns: stale,
    takenAt: scan.takenAt.toISOString(),
    objectOwners: objectOwnersOf(scan, catalog),
  };
}

/**
 * One owner catalog per configuration: the glob matches cached per catalog (matchOwner)
 * then carry over from one scan of a resident pinleak to the next (its config stays).
 */
const catalogs = new WeakMap<Config, ReturnType<typeof loadCatalog>>();
function catalogOf(config: Config): ReturnType<typeof loadCatalog> {
  let c = catalogs.get(config);
  if (!c) catalogs.set(config, (c = loadCatalog(config.owners ?? [])));
  return c;
}

/** What the pin recorder stored for this boot: each object's recorded pins, and when a watch recorded every pin. */
function watchEvidence(store: Store, bootId: string, pinned: ObjectRef[]): Pick<ClassifyContext, 'pinRecords' | 'watchCoverage'> {
  const pinRecords = new Map<string, Sighting[]>();
  for (const [k, list] of pinRecordsOf(store, bootId, pinned)) {
    pinRecords.set(k, list.map((r) => ({
      pid: r.pid, startTime: r.startTime, comm: r.comm, snapshotId: null, container: r.container, source: 'watch', pinnedAtMs: Date.parse(r.at),
    })));
  }
  const watchCoverage = watchSessions(store, bootId).filter((w) => w.recording)
    .map((w) => ({ fromMs: Date.parse(w.startedAt), untilMs: Date.parse(w.coveredUntil), pid: w.pid, drops: w.drops }));
  return { pinRecords, watchCoverage };
}

/** The catalog's owner of every object the scan read, by its pin paths and its name. */
function objectOwnersOf(scan: HostScan, catalog: ReturnType<typeof loadCatalog>): Map<string, CatalogOwner> {
  const paths = new Map<string, string[]>();
  for (const p of scan.pins) {
    if (!p.object) continue;
    const k = objectKey(p.object.kind, p.object.id);
    pushTo(paths, k, p.path);
  }
  return catalogOwners(scan.objects.values(), paths, catalog);
}
