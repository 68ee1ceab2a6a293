// Prometheus text exposition format (version 0.0.4) of one stored snapshot, for
// node_exporter's textfile collector.
//
// Cardinality: labels are status (6 values), owner tool (the catalog's few dozen, or
// "unknown") and bpffs instance (MAJ:MIN); only the combinations that occur are
// written. Never a pin path, an object id or a pid: a host with 30,000 pins still
// gives a few dozen series.
//
// The bpffs instance label is called `bpffs_instance`, not `instance`: Prometheus sets
// `instance` on every scraped series (the node_exporter target), and a scraped
// `instance` label would be renamed to `exported_instance` at scrape time.
//
// No timestamps on samples: the textfile collector refuses them. The snapshot's time
// is a metric of its own.
import { STATUSES, type Pin, type SnapshotDoc, type Status } from '../model.js';
import { isLeak, memlockOnce, ownerName } from '../analysis/summary.js';
import { pushTo } from '../lists.js';

export interface PrometheusOptions {
  /** pinleak's own version, for pinleak_info */
  version: string;
  /** written by `pinleak watch`: whether its pin recorder runs, and the pins it could not queue */
  watch?: { recording: boolean; droppedPins: number };
}

type Labels = Record<string, string>;

interface Sample {
  labels: Labels;
  value: number;
}

interface Metric {
  name: string;
  help: string;
  samples: Sample[];
}

/** Label values: backslash, double quote and line feed are escaped (the only three the format defines). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed are escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's ParseFloat reads every JS number rendering; only the non-finite ones need spelling out. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function sampleLine(name: string, s: Sample): string {
  const entries = Object.entries(s.labels);
  const labels = entries.length ? `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
  return `${name}${labels} ${formatValue(s.value)}`;
}

export const ownerLabel = (p: Pin): string => ownerName(p.owner?.tool);

interface Group {
  status: Status;
  owner: string;
  instance: string;
  pins: Pin[];
}

/** Pins grouped by (status, owner, instance), in a stable order: status order, then owner, then instance. */
export function groupPins(pins: readonly Pin[]): Group[] {
  const groups = new Map<string, Group>();
  for (const p of pins) {
    const owner = ownerLabel(p);
    const key = JSON.stringify([p.status, owner, p.instance]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { status: p.status, owner, instance: p.instance, pins: [] }));
    g.pins.push(p);
  }
  const rank = (s: Status) => STATUSES.indexOf(s);
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...groups.values()].sort((a, b) => rank(a.status) - rank(b.status) || cmp(a.owner, b.owner) || cmp(a.instance, b.instance));
}

/** Stale persistent pins by owner tool (sorted): kept on purpose, used by nothing alive. */
function staleByOwner(pins: readonly Pin[]): [string, Pin[]][] {
  const byOwner = new Map<string, Pin[]>();
  for (const p of pins) {
    if (!p.stale) continue;
    pushTo(byOwner, ownerLabel(p), p);
  }
  return [...byOwner].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The metrics of one snapshot document, as the text exposition format (ends with a newline). */
export function renderPrometheus(doc: SnapshotDoc, opts: PrometheusOptions): string {
  const m = doc.snapshot;
  const groups = groupPins(doc.pins);
  const leaks = doc.pins.filter(isLeak);
  const takenAt = Date.parse(m.takenAt) / 1000;
  const durationS = (m.durationMs ?? 0) / 1000;
  const one = (value: number): Sample[] => [{ labels: {}, value }];
  const groupLabels = (g: Group): Labels => ({ status: g.status, owner: g.owner, bpffs_instance: g.instance });
  const stale = staleByOwner(doc.pins);

  const metrics: Metric[] = [
    {
      name: 'pinleak_info',
      help: 'pinleak version and the host of the latest stored snapshot (always 1)',
      samples: [{ labels: { version: opts.version, kernel: m.kernel ?? '', hostname: m.hostname ?? '' }, value: 1 }],
    },
    {
      name: 'pinleak_pins',
      help: 'bpffs pins in the latest snapshot, by status, owner tool and bpffs instance (MAJ:MIN)',
      samples: groups.map((g) => ({ labels: groupLabels(g), value: g.pins.length })),
    },
    {
      name: 'pinleak_memlock_bytes',
      help: 'kernel memory (memlock) of the objects behind the pins, by status, owner tool and bpffs instance; each object counted once per series',
      samples: groups.map((g) => ({ labels: groupLabels(g), value: memlockOnce(g.pins) })),
    },
    {
      name: 'pinleak_leaks',
      help: 'pins counted as leaks (status orphaned or leaked) in the latest snapshot',
      samples: one(leaks.length),
    },
    {
      name: 'pinleak_leaked_bytes',
      help: 'kernel memory held only by pins counted as leaks (orphaned or leaked), each object counted once',
      samples: one(memlockOnce(leaks)),
    },
    ...(doc.summary.objects ? [{
      name: 'pinleak_unexplained_bytes',
      help: 'kernel memory of BPF objects alive with no pin, no holder and no reference pinleak can name (pinleak objects --unexplained); never cleanable',
      samples: one(doc.summary.objects.unexplainedBytes),
    }, {
      name: 'pinleak_unexplained_objects',
      help: 'BPF objects alive with no pin, no holder and no reference pinleak can name',
      samples: one(doc.summary.objects.unexplained),
    }] : []),
    {
      name: 'pinleak_stale_pins',
      help: 'persistent pins that nothing alive uses any more (kept on purpose by their owner tool, not leaks), by owner tool',
      samples: stale.map(([owner, pins]) => ({ labels: { owner }, value: pins.length })),
    },
    {
      name: 'pinleak_stale_bytes',
      help: 'kernel memory of stale persistent pins (kept on purpose, used by nothing alive), by owner tool; each object counted once',
      samples: stale.map(([owner, pins]) => ({ labels: { owner }, value: memlockOnce(pins) })),
    },
    {
      name: 'pinleak_namespaces',
      help: 'mount namespaces seen by the latest snapshot',
      samples: one(doc.summary.namespaces),
    },
    {
      name: 'pinleak_instances',
      help: 'bpffs instances (superblocks) seen by the latest snapshot',
      samples: one(doc.summary.instances),
    },
    {
      name: 'pinleak_scan_errors',
      help: 'errors the latest snapshot recorded (namespaces or instances it could not read); non-zero means a partial view',
      samples: one(doc.errors.length),
    },
    {
      name: 'pinleak_scan_partial',
      help: '1 when the latest snapshot could not see the whole host (a child pid namespace, unreadable processes, namespaces or instances): its leak counts cannot be trusted; pinleak scan says why',
      samples: one(m.partial ? 1 : 0),
    },
    {
      name: 'pinleak_snapshot_id',
      help: 'id of the latest snapshot in the database (pinleak pins ID shows its pins)',
      samples: one(m.id ?? 0),
    },
    {
      name: 'pinleak_snapshot_duration_seconds',
      help: 'how long the latest snapshot took to scan the host',
      samples: one(durationS),
    },
    {
      name: 'pinleak_snapshot_timestamp_seconds',
      help: 'when the latest snapshot was taken (start of the scan), seconds since the Unix epoch',
      samples: one(takenAt),
    },
    {
      name: 'pinleak_last_success_timestamp_seconds',
      help: 'when the latest successful stored scan finished, seconds since the Unix epoch; alert when time() minus this grows (a dead timer or cron job)',
      samples: one(Math.round((takenAt + durationS) * 1000) / 1000),
    },
    ...(opts.watch ? [{
      name: 'pinleak_watch_recording',
      help: '1 while pinleak watch records every BPF_OBJ_PIN; 0 when the kernel refused its pin recorder (watch only scans)',
      samples: one(opts.watch.recording ? 1 : 0),
    }, {
      name: 'pinleak_watch_dropped_pins',
      help: 'pins the recorder of this pinleak watch saw but could not queue (their pinners are unknown), since it started',
      samples: one(opts.watch.droppedPins),
    }] : []),
  ];

  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
    lines.push(`# TYPE ${metric.name} gauge`);
    for (const s of metric.samples) lines.push(sampleLine(metric.name, s));
  }
  return lines.join('\n') + '\n';
}
