// Network attachments as kernel references (KernelRef): what one network namespace's
// devices run (tc filters, XDP, tcx and netkit entries without a link) and what the
// namespace itself runs (flow dissector, sk_lookup). Pure: the scan reads, this names.
import type { KernelRef } from '../model.js';
import type { XdpMode } from '../kernel/netlink.js';

/** Where on a device a tc filter sits. */
export type TcParent =
  | { kind: 'ingress' | 'egress' }
  | { kind: 'qdisc' | 'class'; handle: number; qdisc: string };

export interface NetnsAttachments {
  ino: number;
  /** block: a shared filter block (tc qdisc add … ingress_block N), named once under the first device using it */
  tc: { ifindex: number; ifname: string; parent: TcParent; pref: number; chain: number; progId: number; block?: number }[];
  xdp: { ifindex: number; ifname: string; mode: XdpMode; progId: number }[];
  /** tcx and netkit entries (bpf_mprog): linkId 0 is an attachment without a link */
  mprog: { ifindex: number; ifname: string; point: 'tcx ingress' | 'tcx egress' | 'netkit primary' | 'netkit peer'; progId: number; linkId: number }[];
  /** BPF_PROG_QUERY on the namespace */
  netns: { point: 'flow dissector' | 'sk_lookup'; attachType: number; progId: number }[];
  /** act_bpf actions of the namespace */
  actions: { index: number; progId: number }[];
  /**
   * What could not be read, and so which program types may be attached here unseen
   * (a dump cut at its budget, a namespace that could not be entered).
   */
  incomplete: { progTypes: string[]; why: string } | null;
}

/**
 * How many references an attachment adds to its program's refcnt, as measured on this
 * kernel with the bpf_prog iterator; null where it was not measured. XDP by netlink, in
 * generic or driver (veth) mode alike: 2 per device (the device's and the installed
 * program's), plus 1 per program for the kernel's XDP dispatcher, however many devices
 * and namespaces run it (measured: one device 3, two 5, a third in another netns 7).
 */
export const ATTACHMENT_REFCOUNT = {
  tc: 1,
  xdp: { generic: 2, driver: 2, offload: null } as Record<XdpMode, number | null>,
  xdpDispatcher: 1,
  mprog: 1,
  netns: 1,
  action: null,
} as const;

/** tc's notation of a handle: `1:`, `1:10`, `ffff:fff2` (hex). */
export function tcHandle(h: number): string {
  const maj = (h >>> 16).toString(16);
  const min = h & 0xffff;
  return min ? `${maj}:${min.toString(16)}` : `${maj}:`;
}

function tcWhat(a: NetnsAttachments['tc'][number], ino: number): string {
  const filter = `filter pref ${a.pref}${a.chain ? ` chain ${a.chain}` : ''}, cls_bpf${a.block ? `, shared block ${a.block}` : ''}`;
  const p = a.parent;
  const where = 'handle' in p ? `tc ${p.kind} ${tcHandle(p.handle)} (${p.qdisc}) of ${a.ifname}` : `tc ${p.kind} of ${a.ifname}`;
  return `${where} in netns ${ino} (${filter})`;
}

/** Links that name an attachment themselves; the same attachment seen again must not count twice. */
export interface AttachLink {
  type: string;
  progId: number;
  defunct: boolean;
  targetId?: number;
  attachType?: number;
}

/**
 * The references of every namespace read. XDP programs behind an XDP link (same ifindex
 * and program) and netns programs behind a netns link of the same namespace and attach
 * type are the link's reference, not a second one.
 */
export function attachmentRefs(
  spaces: NetnsAttachments[],
  links: Iterable<AttachLink>,
  progTypes: Map<number, string>,
): KernelRef[] {
  const xdpLinks = new Set<string>();
  const netnsLinks = new Set<string>();
  // the XDP dispatcher's reference goes with a program's first attachment; an XDP link's program has it counted with the link
  const dispatched = new Set<number>();
  for (const l of links) {
    if (l.defunct || l.targetId === undefined) continue;
    if (l.type === 'xdp') {
      xdpLinks.add(`${l.targetId}/${l.progId}`);
      dispatched.add(l.progId);
    }
    if (l.type === 'netns') netnsLinks.add(`${l.targetId}/${l.attachType}/${l.progId}`);
  }
  const refs: KernelRef[] = [];
  const prog = (id: number) => ({ kind: 'prog' as const, id });
  for (const ns of spaces) {
    for (const a of ns.tc) {
      refs.push({ to: prog(a.progId), from: { kind: 'tc', id: a.ifindex }, what: tcWhat(a, ns.ino), count: ATTACHMENT_REFCOUNT.tc });
    }
    for (const a of ns.xdp) {
      // an XDP link's ifindex has no namespace: a link on the same ifindex in another namespace hides this one (its program is alive through the link either way)
      if (xdpLinks.has(`${a.ifindex}/${a.progId}`)) continue;
      let count = ATTACHMENT_REFCOUNT.xdp[a.mode];
      if (count !== null && !dispatched.has(a.progId)) {
        dispatched.add(a.progId);
        count += ATTACHMENT_REFCOUNT.xdpDispatcher;
      }
      refs.push({ to: prog(a.progId), from: { kind: 'xdp', id: a.ifindex }, what: `XDP (${a.mode}) on ${a.ifname} in netns ${ns.ino}`, count });
    }
    for (const a of ns.mprog) {
      if (a.linkId) continue; // behind a link: the link's reference
      const kind = a.point.startsWith('tcx') ? 'tcx' : 'netkit';
      refs.push({ to: prog(a.progId), from: { kind, id: a.ifindex }, what: `${a.point} of ${a.ifname} in netns ${ns.ino} (no link)`, count: ATTACHMENT_REFCOUNT.mprog });
    }
    for (const a of ns.netns) {
      if (netnsLinks.has(`${ns.ino}/${a.attachType}/${a.progId}`)) continue;
      refs.push({ to: prog(a.progId), from: { kind: 'netns', id: ns.ino }, what: `${a.point} of netns ${ns.ino}`, count: ATTACHMENT_REFCOUNT.netns });
    }
    for (const a of ns.actions) {
      refs.push({ to: prog(a.progId), from: { kind: 'netns', id: ns.ino }, what: `tc action bpf ${a.index} in netns ${ns.ino}`, count: ATTACHMENT_REFCOUNT.action });
    }
    if (ns.incomplete) {
      // never a false leak: every program of a type that could be attached where the scan could not look is assumed attached there
      const types = new Set(ns.incomplete.progTypes);
      for (const [id, type] of progTypes) {
        if (!types.has(type)) continue;
        refs.push({ to: prog(id), from: { kind: 'netns', id: ns.ino }, what: `possibly attached in netns ${ns.ino}, which could not be read in full (${ns.incomplete.why})`, count: null });
      }
    }
  }
  return refs;
}
