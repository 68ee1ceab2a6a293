// Human renderers for snapshot documents: what leaked, how much memory, who made it,
// where it is in each namespace, and the command to look closer.
import type { ObjectTotals, Pin, SnapshotDoc, SnapshotMeta, Status } from '../model.js';
import type { SnapshotListEntry } from '../store/index.js';
import { isLeak, leakCount, memlockOnce } from '../analysis/summary.js';
import { ago, bytes, paint, safe, table, type Style } from './format.js';
import { plural } from '../plural.js';
import { pushTo } from '../lists.js';

const STATUS_COLOR: Record<Status, 'red' | 'yellow' | 'green' | 'dim' | 'cyan'> = {
  held: 'green', 'in-use': 'green', orphaned: 'yellow', leaked: 'red', persistent: 'dim', unreadable: 'cyan',
};


export const statusText = (style: Style, s: Status) => paint(style, STATUS_COLOR[s], s);

export function snapshotRef(m: SnapshotMeta): string {
  return m.id === null ? 'this scan (not stored)' : `snapshot ${m.id}${m.label ? ` "${safe(m.label)}"` : ''}`;
}

export function objectText(p: Pin): string {
  if (!p.object) return '-';
  const o = p.object;
  return `${o.kind} ${o.id}${o.name ? ` ${safe(o.name)}` : ''} (${o.type})`;
}

export function creatorText(p: Pin): string {
  const c = p.creator;
  if (!c) return '-';
  return `${c.pid}${c.comm ? ` ${safe(c.comm)}` : ''}${c.alive ? '' : ' (exited)'}`;
}

export function holdersText(p: Pin): string {
  if (!p.holders.length) return '-';
  const first = p.holders.slice(0, 2).map((h) => `${h.pid} ${safe(h.comm)}${h.mmapped && !h.fds.length ? ' (mmap)' : ''}`);
  return first.join(', ') + (p.holders.length > 2 ? ` +${p.holders.length - 2}` : '');
}

/** The reasons a snapshot is partial; empty when it saw the whole host (or predates the field). */
export const partialReasonsOf = (m: SnapshotMeta): string[] => (m.partial ? m.partialReasons ?? ['reason not recorded'] : []);

/** The first thing every view of a partial snapshot says, or null when it is whole. */
export function partialBanner(m: SnapshotMeta, style: Style): string | null {
  const why = partialReasonsOf(m);
  if (!why.length) return null;
  return [
    `${paint(style, 'red', 'PARTIAL VIEW')}: ${snapshotRef(m)} could not see the whole host:`,
    ...why.map((r) => `  - ${safe(r)}`),
    '  its statuses may be wrong (a pin shown orphaned or leaked may be held by a process it could not see); clean never acts on it',
  ].join('\n');
}

export function renderSummary(doc: SnapshotDoc, style: Style): string {
  const s = doc.summary;
  const m = doc.snapshot;
  const lines = [
    `${paint(style, 'bold', snapshotRef(m))} of ${safe(m.hostname)} (kernel ${m.kernel}), taken ${m.takenAt} in ${m.durationMs} ms`,
    `  ${plural(s.namespaces, 'mount namespace')}, ${plural(s.instances, 'bpffs instance')}, ${plural(s.pins, 'pin')} holding ${bytes(s.memlockBytes.total)}`,
    '  ' + (Object.entries(s.byStatus) as [Status, number][])
      .map(([k, v]) => (v ? `${statusText(style, k)} ${v}` : `${k} 0`)).join('  '),
  ];
  const leaked = leakCount(s.byStatus);
  if (leaked) {
    lines.push(`  ${paint(style, 'red', plural(leaked, 'leak'))}: ${bytes(s.memlockBytes.leaked)} leaked, ${bytes(s.memlockBytes.orphaned)} orphaned`);
  } else {
    lines.push(`  ${paint(style, 'green', 'no leaks')}`);
  }
  if (s.stale?.pins) {
    const hint = m.id !== null ? ` (pinleak leaks ${m.id} --stale)` : '';
    lines.push(`  ${paint(style, 'yellow', plural(s.stale.pins, 'stale persistent pin'))}: ${bytes(s.stale.memlockBytes)} kept on purpose that nothing uses any more${hint}`);
  }
  if (s.objects) lines.push(objectsSummaryLine(s.objects, m, style));
  for (const e of doc.errors) lines.push(`  ${paint(style, 'yellow', 'warning')}: ${safe(e.scope)}: ${safe(e.message)}`);
  return lines.join('\n');
}

/** Every object on the host in one line, and what nothing explains (issue 16). */
function objectsSummaryLine(o: ObjectTotals, m: SnapshotMeta, style: Style): string {
  const line = `  ${plural(o.progs, 'program')}, ${plural(o.maps, 'map')}, ${plural(o.links, 'link')} loaded, holding ${bytes(o.memlockBytes)}`;
  if (!o.unexplained) return `${line}; nothing unexplained`;
  const what = paint(style, 'yellow', `${plural(o.unexplained, 'object')} nothing explains`);
  return `${line}; ${what} (${bytes(o.unexplainedBytes)}): pinleak objects${m.id === null ? '' : ` ${m.id}`} --unexplained`;
}

export function renderPins(pins: Pin[], style: Style): string {
  if (!pins.length) return 'no pins';
  const rows = pins.map((p) => [
    statusText(style, p.status),
    p.instance,
    safe(p.path),
    objectText(p),
    p.object ? bytes(p.object.memlockBytes) : '-',
    holdersText(p),
    creatorText(p),
    safe(p.reasons[0] ?? ''),
  ]);
  return table(['STATUS', 'INSTANCE', 'PATH', 'OBJECT', 'MEMLOCK', 'HOLDERS', 'CREATOR', 'WHY'], rows, style);
}

export function renderMounts(doc: SnapshotDoc, style: Style): string {
  if (!doc.instances.length) return 'no bpffs instances';
  const rows: string[][] = [];
  for (const i of doc.instances) {
    i.mounts.forEach((m, n) => {
      rows.push([
        n === 0 ? i.dev : '',
        String(m.mntNs),
        safe(m.mountPoint),
        safe(m.root),
        n === 0 ? String(i.pinCount) : '',
        n === 0 ? bytes(i.memlockBytes) : '',
        n === 0 ? delegationText(i.delegation) + (i.error ? ` ${paint(style, 'yellow', `error: ${safe(i.error)}`)}` : '') : '',
      ]);
    });
  }
  const nsRows = doc.namespaces.map((n) => [
    String(n.mntNs), n.reachedVia, String(n.processCount),
    n.pids.slice(0, 5).join(',') + (n.pids.length > 5 ? ',…' : ''),
    n.nsfsPaths.map(safe).join(', ') || '-',
    n.error ? paint(style, 'yellow', safe(n.error)) : '',
  ]);
  return [
    table(['INSTANCE', 'MNT NS', 'MOUNT POINT', 'ROOT', 'PINS', 'MEMLOCK', 'DELEGATION'], rows, style),
    '',
    table(['MNT NS', 'REACHED VIA', 'PROCESSES', 'PIDS', 'NSFS', 'ERROR'], nsRows, style),
  ].join('\n');
}

function delegationText(d: SnapshotDoc['instances'][number]['delegation']): string {
  if (!d) return '-';
  return Object.entries(d).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ');
}

export function renderSnapshots(list: SnapshotListEntry[], style: Style): string {
  if (!list.length) return 'no snapshots yet: run `pinleak scan`';
  return table(['ID', 'TAKEN', 'LABEL', 'PINS', 'LEAKS', 'LEAKED', 'BOOT'], list.map((s) => [
    String(s.id), `${s.takenAt} (${ago(s.takenAt)})`, safe(s.label ?? '-'), String(s.pins),
    s.leaks ? paint(style, 'red', String(s.leaks)) : '0', bytes(s.leakedBytes), s.bootId.slice(0, 8),
  ]), style);
}

export interface LeaksView {
  /** at most this many pins per group (the rest is counted) */
  perGroup?: number;
  /** the filters the reader used, repeated in the hints: e.g. ['--instance', '0:39'] */
  filters?: string[];
}

/** Leaks grouped by owner and instance, each group with its memory (objects counted once). */
export function renderLeaks(doc: SnapshotDoc, style: Style, view: LeaksView = {}): string {
  const leaks = doc.pins.filter(isLeak);
  if (!leaks.length) return `${paint(style, 'green', 'no leaks')} in ${snapshotRef(doc.snapshot)}`;
  const out: string[] = [
    `${paint(style, 'red', plural(leaks.length, 'leak'))} holding ${bytes(memlockOnce(leaks))} in ${snapshotRef(doc.snapshot)}`,
    ...groupLines(leaks, style, view),
  ];
  if (doc.snapshot.id !== null) {
    const statuses = [...new Set(leaks.map((p) => p.status))].sort().join(',');
    const tail = filterText(view);
    out.push('', `all of them: pinleak leaks ${doc.snapshot.id}${tail}`);
    out.push(`look closer: pinleak pins ${doc.snapshot.id} --status ${statuses}${tail}`);
    out.push(`remove them (dry run first): pinleak clean ${doc.snapshot.id} --status ${statuses}${tail}`);
  }
  return out.join('\n');
}

/** The filters the reader used, quoted for a shell, to repeat in hints. */
function filterText(view: LeaksView): string {
  const filters = (view.filters ?? []).map((f) => (/^[\w.,:\/-]+$/.test(f) ? f : `'${f.replace(/'/g, `'\\''`)}'`)).join(' ');
  return filters ? ` ${filters}` : '';
}

/**
 * Stale persistent pins (issue 14), grouped like leaks: kept on purpose by their owner,
 * but nothing alive uses them any more. Never called leaks.
 */
export function renderStale(doc: SnapshotDoc, style: Style, view: LeaksView = {}): string {
  const stale = doc.pins.filter((p) => p.stale);
  if (!stale.length) return `no stale persistent pins in ${snapshotRef(doc.snapshot)}`;
  const out = [
    `${paint(style, 'yellow', plural(stale.length, 'stale persistent pin'))} holding ${bytes(memlockOnce(stale))} in ${snapshotRef(doc.snapshot)}: kept on purpose by their owner, unused (not leaks)`,
    ...groupLines(stale, style, view),
  ];
  if (doc.snapshot.id !== null) {
    const tail = filterText(view);
    out.push('', `look closer: pinleak pins ${doc.snapshot.id} --stale${tail}`);
    out.push(`remove them (dry run first): pinleak clean ${doc.snapshot.id} --status persistent --stale${tail}`);
  }
  return out.join('\n');
}

/** Pins grouped by owner and instance, largest memory first, each pin with its reasons and paths. */
function groupLines(pins: Pin[], style: Style, view: LeaksView): string[] {
  const groups = new Map<string, Pin[]>();
  for (const p of pins) {
    const g = `${p.owner.tool ?? 'unknown owner'}\u0000${p.instance}`;
    pushTo(groups, g, p);
  }
  const out: string[] = [];
  for (const [g, pins] of [...groups].sort((a, b) => memlockOnce(b[1]) - memlockOnce(a[1]))) {
    const [owner, dev] = g.split('\u0000');
    out.push('', `${paint(style, 'bold', owner!)} in bpffs ${dev}: ${plural(pins.length, 'pin')}, ${bytes(memlockOnce(pins))}`);
    const shown = view.perGroup !== undefined ? pins.slice(0, view.perGroup) : pins;
    for (const p of shown) {
      out.push(`  ${statusText(style, p.status)} ${safe(p.path)}  ${objectText(p)}  ${p.object ? bytes(p.object.memlockBytes) : ''}`);
      if (p.creator) out.push(`    made by ${creatorText(p)}${p.creator.container ? ` in ${p.creator.container.runtime} ${p.creator.container.id ?? ''}` : ''}`);
      for (const r of p.reasons) out.push(`    ${paint(style, 'dim', safe(r))}`);
      for (const m of p.mountPaths) out.push(`    at ${safe(m.path)} in mount namespace ${m.mntNs}`);
    }
    if (shown.length < pins.length) out.push(`  … and ${pins.length - shown.length} more`);
  }
  return out;
}
