// `pinleak objects`: what tools are running and how much memory each uses, then every
// object with its pins, holders and references; and what nothing explains.
import type { HostObject, ObjectsDoc, ObjectTotals, UsedBy } from '../model.js';
import { ownerGroup } from '../analysis/objects.js';
import { ago, bytes, paint, safe, type Style } from './format.js';
import { snapshotRef, statusText } from './text.js';
import { plural } from '../plural.js';
import { pushTo } from '../lists.js';

/** How many references of one object a line lists before it counts the rest. */
const REFS_SHOWN = 5;

function totalsText(t: ObjectTotals): string {
  const parts = [t.progs && plural(t.progs, 'program'), t.maps && plural(t.maps, 'map'), t.links && plural(t.links, 'link')].filter(Boolean);
  return `${parts.join(', ') || 'no objects'}, ${bytes(t.memlockBytes)}`;
}

function objectLine(o: HostObject): string {
  const size = o.memlockBytes === null ? 'size unknown' : bytes(o.memlockBytes);
  const loaded = o.loadedAt ? `  loaded ${o.loadedAt}${o.loaderUid === null ? '' : ` by uid ${o.loaderUid}`}` : '';
  return `${o.kind} ${o.id}${o.name ? ` ${safe(o.name)}` : ''} (${safe(o.type)})  ${size}${loaded}`;
}

function refsText(list: UsedBy[], text: (r: UsedBy) => string): string {
  const shown = list.slice(0, REFS_SHOWN).map(text).join('; ');
  return list.length > REFS_SHOWN ? `${shown}; and ${list.length - REFS_SHOWN} more` : shown;
}

export function unexplainedText(o: HostObject, now?: number): string {
  const u = o.unexplained!;
  const counts = u.refs === null
    ? 'the kernel\'s reference counts were not read'
    : [u.refs && plural(u.refs, 'reference'), u.users && plural(u.users, 'user reference')].filter(Boolean).join(' and ') + ' the kernel counts that nothing names';
  const since = `since ${u.since} (${ago(u.since, now)}${u.sinceSnapshot === null ? '' : `, snapshot ${u.sinceSnapshot}`})`;
  return `no pin, no holder, no reference pinleak can name: kept by something inside the kernel (an fd in flight, an LWT route, an iptables rule, or a kernel-side leak); ${counts}; ${since}; nothing to unpin, so never cleaned`;
}

function objectDetails(o: HostObject, style: Style): string[] {
  const out: string[] = [];
  for (const p of o.pins) out.push(`pinned at ${safe(p.path)} in bpffs ${p.instance} (${statusText(style, p.status)})`);
  for (const h of o.holders) {
    const how = h.fds.length ? `fd ${h.fds.join(',')}` : 'mmap';
    const where = h.container ? ` in ${h.container.runtime} ${safe(h.container.id ?? '')}`.trimEnd() : '';
    out.push(`held by pid ${h.pid} (${safe(h.comm)}) ${how}${where}`);
  }
  if (o.referencedBy.length) out.push(`referenced: ${refsText(o.referencedBy, (r) => safe(r.via ?? `${r.kind} ${r.id}`))}`);
  if (o.references.length) out.push(`references: ${refsText(o.references, (r) => `${r.kind} ${r.id}`)}`);
  if (o.owner?.via && o.owner.from === 'referrer') out.push(`owner ${safe(o.owner.tool)}: ${safe(o.owner.via)}`);
  if (o.unexplained) out.push(paint(style, 'yellow', unexplainedText(o)));
  if (o.note) out.push(safe(o.note));
  return out;
}

/** The text of `pinleak objects`. */
export function renderObjects(doc: ObjectsDoc, style: Style, view: { unexplained?: boolean } = {}): string {
  const s = doc.summary;
  const where = snapshotRef(doc.snapshot);
  if (!doc.objects.length) return view.unexplained ? `${paint(style, 'green', 'nothing unexplained')} in ${where}` : `no objects in ${where}`;
  const out: string[] = [];
  if (view.unexplained) {
    out.push(`${paint(style, 'yellow', `${plural(s.unexplained, 'object')} nothing explains`)}, holding ${bytes(s.unexplainedBytes)} in ${where}`);
  } else {
    out.push(`${paint(style, 'bold', `${totalsText(s)}`)} in ${where}`);
    if (s.unexplained) out.push(`${paint(style, 'yellow', `${plural(s.unexplained, 'object')} nothing explains`)} (${bytes(s.unexplainedBytes)}): add --unexplained`);
  }
  const unknownSize = doc.objects.filter((o) => o.memlockBytes === null).length;
  if (unknownSize) out.push(`${plural(unknownSize, 'object')} of unknown size not counted`);
  out.push('');
  for (const g of s.byOwner) out.push(`${paint(style, 'bold', safe(g.owner))}: ${totalsText(g)}`);
  const byGroup = new Map<string, HostObject[]>();
  for (const o of doc.objects) {
    const g = ownerGroup(o);
    pushTo(byGroup, g, o);
  }
  for (const g of s.byOwner) {
    out.push('', `${paint(style, 'bold', safe(g.owner))}: ${totalsText(g)}`);
    for (const o of byGroup.get(g.owner) ?? []) {
      out.push(`  ${objectLine(o)}`);
      for (const d of objectDetails(o, style)) out.push(`    ${d}`);
    }
  }
  return out.join('\n');
}
