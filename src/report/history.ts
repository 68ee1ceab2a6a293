// The history report's data: stored series turned into chart columns (one value per
// snapshot), the partial scans, the current leaks and the last change. Pure: no I/O.
import { STATUSES, type Pin, type SnapshotDoc, type SnapshotMeta, type Status } from '../model.js';
import type { HistorySeries, SeriesPoint } from '../store/index.js';
import { ownerName, isLeak } from '../analysis/summary.js';
import { diffSnapshots, type DiffResult } from '../analysis/diff.js';
import { partialReasonsOf } from './text.js';

/** A chart keeps the owners with the most memory; the rest share one series. */
export const MAX_OWNERS = 8;
export const OTHER_OWNERS = 'other owners';

export interface OwnerSeries {
  owner: string;
  values: number[];
}

/** Column data of the charts: index i of every array is the i-th snapshot, oldest first. */
export interface ChartData {
  /** seconds since the Unix epoch (uPlot's time unit) */
  x: number[];
  ids: number[];
  labels: (string | null)[];
  leaked: OwnerSeries[];
  orphaned: OwnerSeries[];
  pins: { status: Status; values: number[] }[];
  /** summary.memlockBytes.leaked of each snapshot: what the leaked owners add up to */
  leakedTotal: number[];
  /** indexes into x of the partial scans */
  partial: number[];
}

export interface PartialScan {
  meta: SnapshotMeta;
  reasons: string[];
}

export interface HistoryModel {
  chart: ChartData;
  /** every partial scan in the range, newest first */
  partialScans: PartialScan[];
  latest: SnapshotDoc | null;
  /** the last two snapshots of the database compared; null with fewer than two */
  change: DiffResult | null;
  since: string | null;
}

/**
 * Why a stored snapshot is partial (empty: it saw the whole host). A snapshot that
 * recorded the verdict of its scan carries it; an older one is judged by what it stored:
 * the namespaces and bpffs instances it could not read.
 */
export function storedPartialReasons(p: SeriesPoint): string[] {
  if (typeof p.meta.partial === 'boolean') return partialReasonsOf(p.meta);
  return p.viewErrors.map((e) => `${e.scope}: ${e.message}`);
}

function ownerColumns(series: HistorySeries, status: 'orphaned' | 'leaked', index: Map<number, number>): OwnerSeries[] {
  const n = index.size;
  const byOwner = new Map<string, number[]>();
  for (const r of series.leakBytes) {
    if (r.status !== status) continue;
    const i = index.get(r.snapshotId);
    if (i === undefined) continue;
    const owner = ownerName(r.owner);
    let col = byOwner.get(owner);
    if (!col) byOwner.set(owner, (col = new Array<number>(n).fill(0)));
    col[i]! += r.bytes;
  }
  const peak = (v: number[]) => v.reduce((a, b) => Math.max(a, b), 0);
  const ranked = [...byOwner].sort((a, b) => peak(b[1]) - peak(a[1]) || (a[0] < b[0] ? -1 : 1));
  const kept = ranked.slice(0, ranked.length > MAX_OWNERS ? MAX_OWNERS - 1 : MAX_OWNERS);
  const rest = ranked.slice(kept.length);
  const out = kept.map(([owner, values]) => ({ owner, values }));
  if (rest.length) {
    const values = new Array<number>(n).fill(0);
    for (const [, v] of rest) v.forEach((b, i) => (values[i]! += b));
    out.push({ owner: OTHER_OWNERS, values });
  }
  return out;
}

export function chartData(series: HistorySeries): ChartData {
  const pts = series.points;
  const index = new Map(pts.map((p, i) => [p.meta.id!, i]));
  return {
    x: pts.map((p) => Date.parse(p.meta.takenAt) / 1000),
    ids: pts.map((p) => p.meta.id!),
    labels: pts.map((p) => p.meta.label),
    leaked: ownerColumns(series, 'leaked', index),
    orphaned: ownerColumns(series, 'orphaned', index),
    pins: STATUSES.map((status) => ({ status, values: pts.map((p) => p.summary.byStatus?.[status] ?? 0) })),
    leakedTotal: pts.map((p) => p.summary.memlockBytes?.leaked ?? 0),
    partial: pts.flatMap((p, i) => (storedPartialReasons(p).length ? [i] : [])),
  };
}

export function historyModel(series: HistorySeries, latest: SnapshotDoc | null, previous: SnapshotDoc | null, since: string | null): HistoryModel {
  const partialScans = series.points
    .map((p) => ({ meta: p.meta, reasons: storedPartialReasons(p) }))
    .filter((p) => p.reasons.length)
    .reverse();
  return {
    chart: chartData(series),
    partialScans,
    latest,
    change: latest && previous ? diffSnapshots(previous, latest) : null,
    since,
  };
}

/** The leaks of a snapshot, the most memory first. */
export function leaksByMemory(pins: readonly Pin[]): Pin[] {
  return pins.filter(isLeak).sort((a, b) => (b.object?.memlockBytes ?? 0) - (a.object?.memlockBytes ?? 0) || (a.path < b.path ? -1 : 1));
}
