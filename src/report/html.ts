// Self-contained HTML pages: the history report (`pinleak report`) and the gate's finding
// (`gate --html`). Everything is inline (styles, scripts, data) and a Content-Security-
// Policy that allows only those exact inline blocks (by hash) and no network at all: the
// file can be opened from a CI artifact store or an e-mail without reaching anything.
// Tables are rendered here, escaped, so they read without JavaScript; the charts are uPlot
// (MIT, inlined from the `uplot` package) drawn by client.ts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { STATUSES, type Pin, type SnapshotDoc, type SnapshotMeta, type Status } from '../model.js';
import type { DiffResult, GateResult } from '../analysis/diff.js';
import { leakCount, memlockOnce } from '../analysis/summary.js';
import { bytes } from './format.js';
import { creatorText, objectText, partialReasonsOf } from './text.js';
import { leaksByMemory, type HistoryModel, type PartialScan } from './history.js';
import { drawCharts, type ClientOptions } from './client.js';
import { plural } from '../plural.js';

export interface ChartLibrary {
  js: string;
  css: string;
}

/** uPlot's minified script and stylesheet, from the installed `uplot` package. */
export function chartLibrary(): ChartLibrary {
  const require = createRequire(import.meta.url);
  const read = (file: string) => fs.readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
  return { js: read('uPlot.iife.min.js'), css: read('uPlot.min.css') };
}

/** A table shows at most this many pins; the rest are counted (the CLI lists them all). */
export const MAX_ROWS = 500;

// Mid-tone colours, readable on the light and on the dark background.
const PALETTE = ['#e15759', '#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];
const STATUS_COLORS: Record<Status, string> = {
  held: '#59a14f', 'in-use': '#4e79a7', orphaned: '#f28e2b', leaked: '#e15759', persistent: '#9c9c9c', unreadable: '#b07aa1',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
    // control characters from hostile pin names stay visible, as in the terminal
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** JSON that cannot end its <script> element early. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const sha256 = (s: string) => `'sha256-${crypto.createHash('sha256').update(s, 'utf8').digest('base64')}'`;

const CSS = `
:root { color-scheme: light dark; --bg: #ffffff; --ink: #1d1d1f; --dim: #5c5c66; --grid: #d8d8de; --panel: #f5f5f7;
  --bad: #b3261e; --warn: #8a5a00; --good: #1e6b34; --partial: #b3261e; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #121214; --ink: #e8e8ec; --dim: #a4a4ae; --grid: #3a3a42; --panel: #1d1d21;
    --bad: #ff8a80; --warn: #ffcc66; --good: #7ddc94; --partial: #ff8a80; }
}
body { background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub, .dim, .empty { color: var(--dim); } .empty { font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { background: var(--panel); border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.bad { color: var(--bad); } .warn { color: var(--warn); } .good { color: var(--good); }
.banner { border: 2px solid var(--bad); border-radius: 8px; padding: 8px 14px; margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--grid); vertical-align: top; }
th { color: var(--dim); font-weight: 600; } td.num, th.num { text-align: right; white-space: nowrap; }
code, .path { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; word-break: break-all; }
.chart { min-height: 60px; } .note { font-size: 12px; color: var(--dim); }
.mark { color: var(--partial); }
.u-legend { color: var(--ink); font-size: 12px; } .u-legend .u-marker { border-radius: 2px; }
${Object.entries(STATUS_COLORS).map(([s, c]) => `.st-${s} { color: ${c}; font-weight: 600; }`).join('\n')}
`;

function page(title: string, body: string, scripts: { data?: unknown; code: string[]; css?: string }): string {
  const css = CSS + (scripts.css ?? '');
  const csp = [
    "default-src 'none'", `style-src ${sha256(css)}`, "img-src data:", "base-uri 'none'", "form-action 'none'",
    ...(scripts.code.length ? [`script-src ${scripts.code.map(sha256).join(' ')}`] : []),
  ].join('; ');
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${css}</style>`,
    '</head>',
    '<body>',
    body,
    ...(scripts.data !== undefined ? [`<script type="application/json" id="pinleak-data">${scriptJson(scripts.data)}</script>`] : []),
    ...scripts.code.map((c) => `<script>${c}</script>`),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

const when = (m: SnapshotMeta) => m.takenAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
const snapshotName = (m: SnapshotMeta) => `snapshot ${m.id ?? '(not stored)'}${m.label ? ` "${escapeHtml(m.label)}"` : ''}`;
const card = (label: string, value: string, cls = '') => `<div class="card"><span class="dim">${label}</span><b class="${cls}">${value}</b></div>`;
const status = (s: Status) => `<span class="st-${s}">${s}</span>`;
const more = (shown: number, total: number, hint: string) =>
  shown < total ? `<p class="note">… and ${total - shown} more (${escapeHtml(hint)} lists them all)</p>` : '';

function containerText(p: Pin): string {
  const c = p.creator?.container ?? p.holders.find((h) => h.container)?.container;
  if (!c) return '-';
  return `${c.runtime}${c.id ? ` ${c.id.slice(0, 12)}` : ''}${c.podUid ? ` (pod ${c.podUid})` : ''}`;
}

/** Leaks with creator, container, owner and path: the first table a reader looks at. */
export function leaksTable(pins: Pin[], hint: string): string {
  if (!pins.length) return '<p class="empty">None.</p>';
  const sorted = leaksByMemory(pins);
  const rows = sorted.slice(0, MAX_ROWS).map((p) => `<tr><td>${status(p.status)}</td>`
    + `<td><span class="path">${escapeHtml(p.path)}</span>${p.mountPaths.map((m) => `<br><span class="dim path">${escapeHtml(m.path)}</span> <span class="dim">(mnt ns ${m.mntNs})</span>`).join('')}</td>`
    + `<td>${escapeHtml(p.instance)}</td><td>${escapeHtml(objectText(p))}</td>`
    + `<td class="num">${p.object ? bytes(p.object.memlockBytes) : '-'}</td>`
    + `<td>${escapeHtml(creatorText(p))}</td><td>${escapeHtml(containerText(p))}</td>`
    + `<td>${escapeHtml(p.owner.tool ?? '-')}</td><td class="dim">${escapeHtml(p.reasons[p.reasons.length > 1 && p.status === 'leaked' ? 1 : 0] ?? '')}</td></tr>`);
  return [
    '<table><thead><tr><th>status</th><th>path (and where it is mounted)</th><th>bpffs</th><th>object</th><th class="num">memory</th>',
    '<th>creator</th><th>container</th><th>owner</th><th>why</th></tr></thead><tbody>',
    ...rows,
    '</tbody></table>',
    more(rows.length, sorted.length, hint),
  ].join('\n');
}

function pinList(title: string, pins: Pin[], hint: string): string {
  if (!pins.length) return '';
  const rows = pins.slice(0, MAX_ROWS).map((p) => `<tr><td>${status(p.status)}</td><td class="path">${escapeHtml(p.path)}</td>`
    + `<td>${escapeHtml(p.instance)}</td><td>${escapeHtml(objectText(p))}</td><td class="num">${p.object ? bytes(p.object.memlockBytes) : '-'}</td>`
    + `<td>${escapeHtml(p.owner.tool ?? '-')}</td></tr>`);
  return `<h3>${title} (${pins.length}, ${bytes(memlockOnce(pins))})</h3>\n<table><tbody>\n${rows.join('\n')}\n</tbody></table>${more(rows.length, pins.length, hint)}`;
}

const signed = (n: number) => (n > 0 ? `+${bytes(n)}` : n < 0 ? `-${bytes(-n)}` : '0 B');

/** What changed between two snapshots, in the sections of `pinleak diff`. */
export function diffSection(d: DiffResult): string {
  const hint = `pinleak diff ${d.from.id ?? ''} ${d.to.id ?? ''}`.trim();
  const counted = new Set([...d.newlyLeaked, ...d.newlyOrphaned]);
  return [
    `<p>${snapshotName(d.from)} (${when(d.from)}) → ${snapshotName(d.to)} (${when(d.to)})${d.sameBoot ? '' : ' <span class="warn">across a reboot: pins matched by mount point, path, kind and name</span>'}</p>`,
    `<p>${d.added.length} added, ${d.removed.length} removed, <b class="bad">${d.newlyLeaked.length} newly leaked</b>, <b class="warn">${d.newlyOrphaned.length} newly orphaned</b>, `
      + `<b class="good">${d.resolved.length} resolved</b>, ${d.statusChanged.length} changed status; memory ${signed(d.memlockDelta.total)} total, `
      + `${signed(d.memlockDelta.leaked)} leaked, ${signed(d.memlockDelta.orphaned)} orphaned</p>`,
    pinList('Newly leaked', d.newlyLeaked, hint),
    pinList('Newly orphaned', d.newlyOrphaned, hint),
    pinList('Resolved', d.resolved, hint),
    pinList('Added', d.added.filter((p) => !counted.has(p)), hint),
    pinList('Removed', d.removed, hint),
  ].filter(Boolean).join('\n');
}

const partialBanner = (m: SnapshotMeta, reasons: string[]) =>
  `<div class="banner"><b class="bad">Partial view</b>: ${snapshotName(m)} could not see the whole host: ${reasons.map(escapeHtml).join('; ')}. Its statuses may be wrong.</div>`;

function partialSection(scans: PartialScan[]): string {
  if (!scans.length) return '<p class="empty">None: every scan in this range saw the whole host.</p>';
  const rows = scans.slice(0, MAX_ROWS).map((s) => `<tr><td>${snapshotName(s.meta)}</td><td>${when(s.meta)}</td>`
    + `<td>${s.reasons.map(escapeHtml).join('<br>')}</td></tr>`);
  return `<p class="note">Marked <span class="mark">▲</span> on the time axis: their statuses may be wrong (a pin shown leaked may be held by a process the scan could not see).</p>
<table><thead><tr><th>snapshot</th><th>taken</th><th>what it could not see</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>${more(rows.length, scans.length, 'pinleak snapshots')}`;
}

function ownerColors(model: HistoryModel): Record<string, string> {
  const owners = [...new Set([...model.chart.leaked, ...model.chart.orphaned].map((o) => o.owner))];
  return Object.fromEntries(owners.map((o, i) => [o, PALETTE[i % PALETTE.length]!]));
}

/** `pinleak report`: the stored history as one self-contained page. */
export function renderReportHtml(model: HistoryModel, lib: ChartLibrary, opts: { version: string; generatedAt: string }): string {
  const latest = model.latest;
  const c = model.chart;
  const n = c.x.length;
  const m = latest?.snapshot;
  const s = latest?.summary;
  const leaks = s ? leakCount(s.byStatus) : 0;
  const partialNow = m && c.partial.includes(n - 1) && c.ids[n - 1] === m.id ? model.partialScans[0] : undefined;
  const range = n ? `${plural(n, 'snapshot')} from ${escapeHtml(new Date(c.x[0]! * 1000).toISOString())} to ${escapeHtml(new Date(c.x[n - 1]! * 1000).toISOString())}` : 'no snapshots';
  const body = [
    `<h1>pinleak report${m ? `: ${escapeHtml(m.hostname)}` : ''}</h1>`,
    `<p class="sub">${range}${model.since ? ` (since ${escapeHtml(model.since)})` : ''}; generated ${escapeHtml(opts.generatedAt)} by pinleak ${escapeHtml(opts.version)}</p>`,
    ...(m && s ? [
      `<div class="cards">${[
        card('latest', `${snapshotName(m)}`),
        card('pins', String(s.pins)),
        card('leaks', String(leaks), leaks ? 'bad' : 'good'),
        card('leaked', bytes(s.memlockBytes.leaked), s.memlockBytes.leaked ? 'bad' : ''),
        card('orphaned', bytes(s.memlockBytes.orphaned), s.memlockBytes.orphaned ? 'warn' : ''),
        card('kernel', escapeHtml(m.kernel ?? '-')),
      ].join('')}</div>`,
    ] : []),
    ...(partialNow ? [partialBanner(m!, partialNow.reasons)] : []),
    '<h2>Leaked memory, by owner</h2>',
    '<p class="note">Pins whose creator has exited and that nothing else uses; each object counted once, stacked: the top line is the total.</p>',
    '<div class="chart" id="chart-leaked"></div>',
    '<h2>Orphaned memory, by owner</h2>',
    '<p class="note">Pins nothing uses whose creator is not known.</p>',
    '<div class="chart" id="chart-orphaned"></div>',
    '<h2>Pins by status</h2>',
    '<div class="chart" id="chart-pins"></div>',
    `<h2>Current leaks${m ? ` (${snapshotName(m)}, ${when(m)})` : ''}</h2>`,
    latest ? leaksTable(latest.pins, `pinleak leaks ${m!.id}`) : '<p class="empty">No snapshot yet: run <code>pinleak scan</code>.</p>',
    '<h2>What changed in the last scan</h2>',
    model.change ? diffSection(model.change) : '<p class="empty">Only one snapshot: nothing to compare yet.</p>',
    '<h2>Partial scans</h2>',
    partialSection(model.partialScans),
    '<p class="note">Charts: uPlot (MIT License, © Leon Sorokin), inlined.</p>',
  ].join('\n');
  const client: ClientOptions = { ownerColors: ownerColors(model), statusColors: STATUS_COLORS };
  const app = `(${drawCharts.toString()})(${scriptJson(client)});`;
  return page(`pinleak report${m ? `: ${m.hostname}` : ''}`, body, { data: { chart: c }, code: [lib.js, app], css: lib.css });
}

function summaryRow(label: string, a: SnapshotDoc['summary'], b: SnapshotDoc['summary'], pick: (s: SnapshotDoc['summary']) => number, fmt: (n: number) => string): string {
  return `<tr><td>${label}</td><td class="num">${fmt(pick(a))}</td><td class="num">${fmt(pick(b))}</td></tr>`;
}

/** `gate --html`: the gate's verdict, its new leaks, and what changed since the baseline. */
export function renderGateHtml(g: GateResult, baseline: SnapshotDoc, current: SnapshotDoc, change: DiffResult,
  opts: { version: string; generatedAt: string }): string {
  const partial = partialReasonsOf(current.snapshot);
  const limits = [
    g.thresholds.maxNewLeaks !== null ? `at most ${g.thresholds.maxNewLeaks} new leaks` : null,
    g.thresholds.maxLeakedBytes !== null ? `at most ${bytes(g.thresholds.maxLeakedBytes)} leaked` : null,
  ].filter(Boolean).join(', ');
  const n = g.newLeaks.length;
  const a = baseline.summary;
  const b = current.summary;
  const body = [
    `<h1>pinleak gate: <span class="${g.passed ? 'good' : 'bad'}">${g.passed ? 'passed' : 'failed'}</span></h1>`,
    ...(partial.length ? [partialBanner(current.snapshot, partial)] : []),
    `<p class="sub">${escapeHtml(current.snapshot.hostname)}; ${plural(n, 'new leak')} holding ${bytes(g.newLeakedBytes)} since ${snapshotName(g.baseline)} (${escapeHtml(limits)}); generated ${escapeHtml(opts.generatedAt)} by pinleak ${escapeHtml(opts.version)}</p>`,
    '<h2>New leaks</h2>',
    leaksTable(g.newLeaks, 'pinleak leaks'),
    '<h2>Baseline and now</h2>',
    `<table><thead><tr><th></th><th class="num">${snapshotName(g.baseline)}<br><span class="dim">${when(g.baseline)}</span></th>`
      + `<th class="num">${snapshotName(g.current)}<br><span class="dim">${when(g.current)}</span></th></tr></thead><tbody>`,
    summaryRow('pins', a, b, (s) => s.pins, String),
    ...STATUSES.map((st) => summaryRow(status(st), a, b, (s) => s.byStatus[st] ?? 0, String)),
    summaryRow('leaked memory', a, b, (s) => s.memlockBytes.leaked, bytes),
    summaryRow('orphaned memory', a, b, (s) => s.memlockBytes.orphaned, bytes),
    summaryRow('all pinned memory', a, b, (s) => s.memlockBytes.total, bytes),
    '</tbody></table>',
    '<h2>What changed</h2>',
    diffSection(change),
  ].join('\n');
  return page(`pinleak gate ${g.passed ? 'passed' : 'failed'}: ${current.snapshot.hostname}`, body, { code: [] });
}
