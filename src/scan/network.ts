// What every network namespace runs: tc filters and XDP programs (rtnetlink), tcx and
// netkit entries (BPF_PROG_QUERY by ifindex), flow dissector and sk_lookup (BPF_PROG_QUERY
// on the namespace). Netlink sockets and ifindexes belong to the calling thread's
// namespace, so the device reads run inside it (kernel/netns.ts).
//
// Entering with setns from the main thread rather than a helper process: measured here,
// 52 namespaces (a veth pair and clsact each) are read in 10-29 ms (0.2-0.5 ms each, all
// dumps and queries), where only starting `nsenter --net=… node` costs ~59 ms per namespace.
import { closeFd, progQuery, progQueryLinks, KernelError } from '../kernel/bpf.js';
import { inNetns } from '../kernel/netns.js';
import {
  RouteSocket, DumpInterrupted, DumpTruncated, linkDumpRequest, qdiscDumpRequest, tcDumpRequest, actionDumpRequest,
  parseLink, parseTc, parseClsBpf, parseActions, type DumpBudget, type LinkEntry, type NlMessage, type TcEntry,
} from '../kernel/netlink.js';
import { NetAttachType, RtmType, TC_H_MAJ_MASK, TC_H_MIN_INGRESS, TC_H_MIN_EGRESS, TC_H_ROOT } from '../kernel/abi.js';
import type { NetnsAttachments, TcParent } from '../analysis/attachments.js';
import type { ScanError } from '../model.js';
import { openNetns, type NetnsTarget } from './netns.js';

/** Which kinds of attachment can hold a loaded program at all (nothing to read for the others). */
export interface NetworkNeeds {
  tc: boolean;
  act: boolean;
  xdp: boolean;
  tcx: boolean;
  netns: boolean;
}

const PROG_TYPES_OF = {
  tc: ['sched_cls'], act: ['sched_act'], xdp: ['xdp'], tcx: ['sched_cls'], netns: ['flow_dissector', 'sk_lookup'],
} as const satisfies Record<keyof NetworkNeeds, readonly string[]>;

export function networkNeeds(progTypes: Iterable<string>): NetworkNeeds | null {
  const types = new Set(progTypes);
  const has = (k: keyof NetworkNeeds) => PROG_TYPES_OF[k].some((t) => types.has(t));
  const needs: NetworkNeeds = { tc: has('tc'), act: has('act'), xdp: has('xdp'), tcx: has('tcx'), netns: has('netns') };
  return Object.values(needs).some(Boolean) ? needs : null;
}

/** What one namespace may make a scan read: a container controls its own devices and filters. */
export const NETNS_BUDGET = { messages: 20_000, bytes: 16 << 20, ms: 3_000 };

/** Reads one namespace; null when every way into it has gone (the namespace with it). */
export function readNetnsAttachments(t: NetnsTarget, needs: NetworkNeeds, errors: ScanError[], limits = NETNS_BUDGET): NetnsAttachments | null {
  const out: NetnsAttachments = { ino: t.ino, tc: [], xdp: [], mprog: [], netns: [], actions: [], incomplete: null };
  const fail = (types: readonly string[], e: unknown) => {
    const why = (e as Error).message;
    out.incomplete = { progTypes: [...new Set([...(out.incomplete?.progTypes ?? []), ...types])], why };
    errors.push({ scope: `netns ${t.ino}`, message: why });
  };
  let fd: number | null;
  try {
    fd = openNetns(t);
  } catch (e) {
    fail(Object.values(PROG_TYPES_OF).flat(), e);
    return out;
  }
  if (fd === null) return null;
  try {
    if (needs.netns) {
      try {
        readNetnsQueries(fd, out);
      } catch (e) {
        fail(PROG_TYPES_OF.netns, e);
      }
    }
    if (needs.tc || needs.act || needs.xdp || needs.tcx) {
      const deviceTypes = (['tc', 'act', 'xdp', 'tcx'] as const).filter((k) => needs[k]).flatMap((k) => PROG_TYPES_OF[k]);
      try {
        inNetns(fd, t.ino, () => readDevices(out, needs, limits));
      } catch (e) {
        fail(deviceTypes, e);
      }
    }
  } finally {
    closeFd(fd);
  }
  return out;
}

function readNetnsQueries(fd: number, out: NetnsAttachments): void {
  const points = [['flow dissector', NetAttachType.FLOW_DISSECTOR], ['sk_lookup', NetAttachType.SK_LOOKUP]] as const;
  for (const [point, attachType] of points) {
    for (const progId of progQuery(fd, attachType)) out.netns.push({ point, attachType, progId });
  }
}

/** A dump read again once if the kernel says it changed meanwhile. */
function dumpStable(s: RouteSocket, req: { type: number; body: Buffer }, budget: DumpBudget, what: string): NlMessage[] {
  try {
    return s.dump(req, budget, what);
  } catch (e) {
    if (!(e instanceof DumpInterrupted)) throw e;
    return s.dump(req, budget, what);
  }
}

function readDevices(out: NetnsAttachments, needs: NetworkNeeds, limits: typeof NETNS_BUDGET): void {
  const budget: DumpBudget = { messages: limits.messages, bytes: limits.bytes, deadline: Date.now() + limits.ms };
  const s = RouteSocket.open();
  try {
    const devices = new Map<number, LinkEntry>();
    for (const m of dumpStable(s, linkDumpRequest(), budget, 'devices')) {
      if (m.type !== RtmType.NEWLINK) continue;
      const d = parseLink(m.payload);
      devices.set(d.ifindex, d);
    }
    if (needs.xdp) {
      for (const d of devices.values()) for (const x of d.xdp) out.xdp.push({ ifindex: d.ifindex, ifname: d.ifname, mode: x.mode, progId: x.progId });
    }
    if (needs.tcx) readMprog(devices, out, budget);
    if (needs.tc) readTcFilters(s, devices, out, budget);
    if (needs.act) readActions(s, out, budget);
  } finally {
    s.close();
  }
}

const MPROG_POINTS = {
  tcx: [['tcx ingress', NetAttachType.TCX_INGRESS], ['tcx egress', NetAttachType.TCX_EGRESS]],
  netkit: [['netkit primary', NetAttachType.NETKIT_PRIMARY], ['netkit peer', NetAttachType.NETKIT_PEER]],
} as const;

function readMprog(devices: Map<number, LinkEntry>, out: NetnsAttachments, budget: DumpBudget): void {
  for (const d of devices.values()) {
    if (Date.now() > budget.deadline) throw new DumpTruncated(`tcx queries: out of time after ${out.mprog.length} entries`);
    const points = d.kind === 'netkit' ? [...MPROG_POINTS.tcx, ...MPROG_POINTS.netkit] : MPROG_POINTS.tcx;
    for (const [point, attachType] of points) {
      let r: { progIds: number[]; linkIds: number[] };
      try {
        r = progQueryLinks(d.ifindex, attachType);
      } catch (e) {
        if (e instanceof KernelError && (e.code === 'ENODEV' || e.code === 'ENOENT')) break; // the device went away
        throw e;
      }
      r.progIds.forEach((progId, i) => out.mprog.push({ ifindex: d.ifindex, ifname: d.ifname, point, progId, linkId: r.linkIds[i] ?? 0 }));
    }
  }
}

/** Every place a filter can hang: both sides of clsact / ingress, each qdisc with a handle, the root, each class. */
function filterParents(qdiscs: TcEntry[], classes: TcEntry[]): { ifindex: number; parent: number; where: TcParent }[] {
  const out: { ifindex: number; parent: number; where: TcParent }[] = [];
  const qdiscKind = new Map<string, string>();
  for (const q of qdiscs) {
    const maj = (q.handle & TC_H_MAJ_MASK) >>> 0;
    qdiscKind.set(`${q.ifindex}/${maj}`, q.kind);
    if (q.kind === 'clsact' || q.kind === 'ingress') {
      out.push({ ifindex: q.ifindex, parent: (maj | TC_H_MIN_INGRESS) >>> 0, where: { kind: 'ingress' } });
      if (q.kind === 'clsact') out.push({ ifindex: q.ifindex, parent: (maj | TC_H_MIN_EGRESS) >>> 0, where: { kind: 'egress' } });
    } else if (maj) {
      out.push({ ifindex: q.ifindex, parent: maj, where: { kind: 'qdisc', handle: maj, qdisc: q.kind } });
    } else if (q.parent === TC_H_ROOT) {
      // a default root qdisc has no handle: parent 0 names the root
      out.push({ ifindex: q.ifindex, parent: 0, where: { kind: 'qdisc', handle: 0, qdisc: q.kind } });
    }
  }
  for (const c of classes) {
    const qdisc = qdiscKind.get(`${c.ifindex}/${(c.handle & TC_H_MAJ_MASK) >>> 0}`) ?? c.kind;
    out.push({ ifindex: c.ifindex, parent: c.handle >>> 0, where: { kind: 'class', handle: c.handle >>> 0, qdisc } });
  }
  return out;
}

function readTcFilters(s: RouteSocket, devices: Map<number, LinkEntry>, out: NetnsAttachments, budget: DumpBudget): void {
  const qdiscs = dumpStable(s, qdiscDumpRequest(), budget, 'qdiscs').filter((m) => m.type === RtmType.NEWQDISC).map((m) => parseTc(m.payload));
  // classes only exist under classful qdiscs: dump them only for devices that have one with a handle
  const classful = new Set(qdiscs.filter((q) => q.handle & TC_H_MAJ_MASK && q.kind !== 'clsact' && q.kind !== 'ingress').map((q) => q.ifindex));
  const classes: TcEntry[] = [];
  for (const ifindex of classful) {
    for (const m of dumpStable(s, tcDumpRequest(RtmType.GETTCLASS, ifindex), budget, `classes of ifindex ${ifindex}`)) {
      if (m.type === RtmType.NEWTCLASS) classes.push(parseTc(m.payload));
    }
  }
  // a shared block (tc qdisc add … ingress_block N) shows the same filters under every device using it
  const blocks = new Map<string, number>();
  for (const q of qdiscs) {
    const maj = (q.handle & TC_H_MAJ_MASK) >>> 0;
    if (q.ingressBlock) blocks.set(`${q.ifindex}/${(maj | TC_H_MIN_INGRESS) >>> 0}`, q.ingressBlock);
    if (q.egressBlock) blocks.set(`${q.ifindex}/${(maj | TC_H_MIN_EGRESS) >>> 0}`, q.egressBlock);
  }
  const seen = new Set<string>();
  for (const p of filterParents(qdiscs, classes)) {
    const dev = devices.get(p.ifindex);
    if (!dev) continue; // a device that appeared after the device dump
    let msgs: NlMessage[];
    try {
      msgs = dumpStable(s, tcDumpRequest(RtmType.GETTFILTER, p.ifindex, p.parent), budget, `filters of ${dev.ifname}`);
    } catch (e) {
      if (e instanceof KernelError && (e.code === 'ENODEV' || e.code === 'ENOENT')) continue; // the device or qdisc went away
      throw e;
    }
    const block = blocks.get(`${p.ifindex}/${p.parent}`);
    for (const m of msgs) {
      if (m.type !== RtmType.NEWTFILTER) continue;
      const f = parseTc(m.payload);
      if (f.kind !== 'bpf' || !f.options) continue;
      const bpf = parseClsBpf(f.options);
      if (!bpf) continue;
      const key = `${block !== undefined ? `block ${block}` : `${p.ifindex}/${p.parent}`}/${f.chain}/${f.info}/${f.handle}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.tc.push({ ifindex: dev.ifindex, ifname: dev.ifname, parent: p.where, pref: f.info >>> 16, chain: f.chain ?? 0, progId: bpf.progId, ...(block !== undefined ? { block } : {}) });
    }
  }
}

function readActions(s: RouteSocket, out: NetnsAttachments, budget: DumpBudget): void {
  let msgs: NlMessage[];
  try {
    msgs = dumpStable(s, actionDumpRequest('bpf'), budget, 'bpf actions');
  } catch (e) {
    if (e instanceof KernelError && (e.code === 'EINVAL' || e.code === 'ENOENT' || e.code === 'EOPNOTSUPP')) return; // no act_bpf in this kernel
    throw e;
  }
  // a dump's answers carry the request's type (RTM_GETACTION), as seen on this kernel
  for (const m of msgs) if (m.type === RtmType.GETACTION || m.type === RtmType.NEWACTION) for (const a of parseActions(m.payload)) out.actions.push({ index: a.index, progId: a.progId });
}
