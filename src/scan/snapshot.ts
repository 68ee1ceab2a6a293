// From a scan of the host to a classified snapshot document (docs/json.md).
import { SCHEMA_VERSION, type Holder, type SnapshotDoc } from '../model.js';
import { classifyPins, key, type ClassifyContext, type Sighting } from '../analysis/classify.js';
import { summarize, fillInstanceTotals } from '../analysis/summary.js';
import { loadCatalog } from '../analysis/owners.js';
import type { Config } from '../analysis/config.js';
import { earliestHolders, recordedCreators, pinObjectCache, type Store } from '../store/index.js';
import { readBootId } from '../kernel/procfs.js';
import { scanHost, type HostScan, type Progress } from './host.js';
import type { RawPin } from './pins.js';
import { partialReasons } from './partial.js';

export interface SnapshotOptions {
  store: Store | null;
  config: Config;
  label?: string | null;
  onProgress?: Progress;
  /** creators `pinleak run` observed during this invocation, not yet stored (evidence 1) */
  creatorHint?: (p: RawPin) => Sighting | null;
  /** keep the namespace anchors alive for the caller (see scanHost) */
  keepAnchors?: boolean;
}

export async function takeSnapshot(opts: SnapshotOptions): Promise<{ doc: SnapshotDoc; scan: HostScan }> {
  const started = performance.now();
  const objectCache = opts.store ? pinObjectCache(opts.store, readBootId()) : undefined;
  const scan = await scanHost({ onProgress: opts.onProgress, keepAnchors: opts.keepAnchors, objectCache });
  const t0 = performance.now();
  opts.onProgress?.('classification');
  const objects = scan.pins.filter((p) => p.object).map((p) => ({ kind: p.object!.kind, id: p.object!.id }));
  const history = new Map<string, Sighting[]>();
  const recorded = new Map<string, Sighting>();
  if (opts.store) {
    for (const [k, list] of earliestHolders(opts.store, scan.bootId, objects)) {
      history.set(k, list.map((s) => ({ pid: s.pid, startTime: s.startTime, comm: s.comm, snapshotId: s.snapshotId, container: s.container })));
    }
    for (const [k, r] of recordedCreators(opts.store, scan.bootId, objects)) {
      recorded.set(k, { pid: r.pid, startTime: r.startTime, comm: r.comm, snapshotId: r.snapshotId, container: r.container, source: 'run' });
    }
  }
  if (opts.creatorHint) {
    for (const p of scan.pins) {
      const s = p.object ? opts.creatorHint(p) : null;
      if (s) recorded.set(key(p.object!.kind, p.object!.id), { ...s, source: s.source ?? 'run' });
    }
  }
  const ctx = contextFromScan(scan, opts.config, history, recorded);
  const pins = classifyPins(scan.pins, ctx);
  pins.sort((a, b) => a.instance.localeCompare(b.instance) || a.path.localeCompare(b.path));
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
    summary: summarize(pins, scan.namespaces.length, scan.instances.length),
    errors: scan.errors,
  };
  return { doc, scan };
}

export function contextFromScan(scan: HostScan, config: Config, history: Map<string, Sighting[]>, recorded: Map<string, Sighting>): ClassifyContext {
  const holders = new Map<string, Holder[]>(scan.holders.byObject);
  return {
    processes: scan.processes,
    holders,
    mmapNotes: scan.holders.mmapNotes,
    progs: scan.graph.progs,
    links: scan.graph.links,
    attachments: scan.graph.attachments,
    recorded,
    history,
    bootEpochMs: scan.bootEpochMs,
    clockTicks: scan.clockTicks,
    pidMax: scan.pidMax,
    catalog: loadCatalog(config.owners ?? []),
    config,
  };
}

export { key };
