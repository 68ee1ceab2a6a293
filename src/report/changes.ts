// Human renderers for diff, gate and run: what changed, what leaked, how much, who made it.
import type { Pin } from '../model.js';
import type { DiffResult, GateResult } from '../analysis/diff.js';
import { memlockOnce } from '../analysis/summary.js';
import { bytes, paint, safe, type Style } from './format.js';
import { creatorText, objectText, snapshotRef, statusText } from './text.js';
import { plural } from '../plural.js';

const signed = (n: number) => (n > 0 ? `+${bytes(n)}` : n < 0 ? `-${bytes(-n)}` : '0 B');

export function pinLines(pins: Pin[], style: Style, indent = '  '): string[] {
  const out: string[] = [];
  for (const p of pins) {
    out.push(`${indent}${statusText(style, p.status)} ${safe(p.path)} in bpffs ${p.instance}  ${objectText(p)}  ${p.object ? bytes(p.object.memlockBytes) : ''}`);
    if (p.creator) out.push(`${indent}  made by ${creatorText(p)}${p.owner.tool ? `, owner ${p.owner.tool}` : ''}`);
    else if (p.owner.tool) out.push(`${indent}  owner ${p.owner.tool}`);
    if (p.reasons[0]) out.push(`${indent}  ${paint(style, 'dim', safe(p.reasons[p.reasons.length > 1 && p.status === 'leaked' ? 1 : 0]!))}`);
    for (const m of p.mountPaths) out.push(`${indent}  at ${safe(m.path)} (mount namespace ${m.mntNs})`);
  }
  return out;
}

export function renderDiff(d: DiffResult, style: Style): string {
  const out = [
    `${paint(style, 'bold', `${snapshotRef(d.from)} -> ${snapshotRef(d.to)}`)}${d.sameBoot ? '' : paint(style, 'yellow', ' (across a reboot: pins matched by mount point, path, kind and name)')}`,
    `  ${d.added.length} added, ${d.removed.length} removed, ${d.newlyLeaked.length} newly leaked, ${d.newlyOrphaned.length} newly orphaned, ${d.resolved.length} resolved, ${d.statusChanged.length} changed status`,
    `  memory: ${signed(d.memlockDelta.total)} total, ${signed(d.memlockDelta.leaked)} leaked, ${signed(d.memlockDelta.orphaned)} orphaned`,
  ];
  const section = (title: string, pins: Pin[]) => {
    if (!pins.length) return;
    out.push('', `${paint(style, 'bold', title)} (${pins.length}, ${bytes(memlockOnce(pins))}):`, ...pinLines(pins, style));
  };
  section('Newly leaked', d.newlyLeaked);
  section('Newly orphaned', d.newlyOrphaned);
  section('Resolved', d.resolved);
  const otherAdded = d.added.filter((p) => !d.newlyLeaked.includes(p) && !d.newlyOrphaned.includes(p));
  section('Added', otherAdded);
  section('Removed', d.removed);
  const changed = d.statusChanged.filter((c) => !d.newlyLeaked.includes(c.pin) && !d.newlyOrphaned.includes(c.pin) && !d.resolved.includes(c.pin));
  if (changed.length) {
    out.push('', paint(style, 'bold', `Status changed (${changed.length}):`));
    for (const c of changed) out.push(`  ${safe(c.pin.path)} in bpffs ${c.pin.instance}: ${c.from} -> ${statusText(style, c.to)}`);
  }
  if (d.to.id !== null && (d.newlyLeaked.length || d.newlyOrphaned.length)) {
    out.push('', `look closer: pinleak leaks ${d.to.id}`);
  }
  return out.join('\n');
}

export function renderGate(g: GateResult, style: Style): string {
  const limits = [
    g.thresholds.maxNewLeaks !== null ? `at most ${g.thresholds.maxNewLeaks} new leaks` : null,
    g.thresholds.maxLeakedBytes !== null ? `at most ${bytes(g.thresholds.maxLeakedBytes)} leaked` : null,
  ].filter(Boolean).join(', ');
  const verdict = g.passed ? paint(style, 'green', 'gate passed') : paint(style, 'red', 'gate failed');
  const out = [
    `${verdict}: ${plural(g.newLeaks.length, 'new leak')} holding ${bytes(g.newLeakedBytes)} since ${snapshotRef(g.baseline)} (${limits})`,
  ];
  if (g.newLeaks.length) out.push(...pinLines(g.newLeaks, style));
  return out.join('\n');
}

const xml = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
  // XML 1.0 cannot carry most control characters at all
  // eslint-disable-next-line no-control-regex
  .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** JUnit XML: one uniquely named failing case per new leak, or one passing case. */
export function renderJunit(g: GateResult): string {
  const cases: string[] = [];
  const seen = new Map<string, number>();
  for (const p of g.newLeaks) {
    let name = `${p.instance}:${p.path}`;
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    if (n > 1) name += ` #${n}`;
    const detail = [
      `status ${p.status}; ${p.object ? `${p.object.kind} ${p.object.id} ${p.object.name} (${p.object.type}), ${p.object.memlockBytes} bytes` : 'object unknown'}`,
      ...p.reasons,
      ...p.mountPaths.map((m) => `at ${m.path} (mount namespace ${m.mntNs})`),
    ].join('\n');
    cases.push(`    <testcase classname="pinleak.leak" name="${xml(name)}">\n      <failure message="${xml(`new ${p.status} pin ${p.path}`)}" type="${p.status}">${xml(detail)}</failure>\n    </testcase>`);
  }
  if (!cases.length) cases.push('    <testcase classname="pinleak.gate" name="no new leaks"/>');
  const failures = g.newLeaks.length;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="pinleak" tests="${cases.length}" failures="${failures}">`,
    `  <testsuite name="pinleak gate" tests="${cases.length}" failures="${failures}" errors="0" timestamp="${g.current.takenAt}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

export function renderRun(r: { command: string[]; exitCode: number; samples: number; pinRecords?: number | null; created: Pin[]; leftBehind: Pin[] }, style: Style): string {
  const cmd = r.command.map((c) => (/[\s'"\\]/.test(c) ? JSON.stringify(c) : c)).join(' ');
  const how = r.pinRecords === undefined || r.pinRecords === null
    ? `${plural(r.samples, 'sample')} of its process tree`
    : `the pin recorder saw its process tree pin ${plural(r.pinRecords, 'time')}`;
  const out = [
    `${paint(style, 'bold', safe(cmd))} exited with code ${r.exitCode} (${how})`,
    `  created ${plural(r.created.length, 'pin')}, left ${r.leftBehind.length} behind holding ${bytes(memlockOnce(r.leftBehind))}`,
  ];
  if (r.leftBehind.length) out.push('', paint(style, 'red', 'Left behind:'), ...pinLines(r.leftBehind, style));
  const kept = r.created.filter((p) => !r.leftBehind.includes(p));
  if (kept.length) out.push('', 'Created and still in use or kept on purpose:', ...pinLines(kept, style));
  return out.join('\n');
}

export function renderClean(r: { dryRun: boolean; removed: Pin[]; skipped: { pin: Pin; why: string }[]; freedBytes: number; notFreed: { kind: string; id: number }[]; removedDirectories: string[]; warnings: string[] }, style: Style): string {
  const n = r.removed.length;
  const out: string[] = [];
  if (r.dryRun) {
    out.push(`${paint(style, 'bold', 'dry run')}: would unpin ${plural(n, 'pin')}, freeing ${bytes(r.freedBytes)}${n ? ' (run again with --yes to do it)' : ''}`);
  } else {
    out.push(`unpinned ${plural(n, 'pin')}, freed ${bytes(r.freedBytes)} (checked: the kernel has let go of the objects)`);
  }
  for (const p of r.removed) {
    out.push(`  ${r.dryRun ? 'would unpin' : 'unpinned'} ${safe(p.path)} in bpffs ${p.instance}  ${objectText(p)}  ${p.object ? bytes(p.object.memlockBytes) : ''}`);
  }
  for (const d of r.removedDirectories) out.push(`  removed the empty directory ${safe(d)}`);
  if (r.notFreed.length) {
    out.push(paint(style, 'yellow', `  still in the kernel after their last pin went: ${r.notFreed.map((o) => `${o.kind} ${o.id}`).join(', ')} (something else references them)`));
  }
  for (const w of r.warnings) out.push(paint(style, 'yellow', `  warning: ${safe(w)}`));
  if (r.skipped.length) {
    out.push('', `skipped ${r.skipped.length}:`);
    for (const s of r.skipped) out.push(`  ${safe(s.pin.path)} in bpffs ${s.pin.instance}: ${safe(s.why)}`);
  }
  return out.join('\n');
}
