// A small rtnetlink client: the dumps that name BPF programs attached to network devices
// (links with XDP, qdiscs, classes, tc filters with cls_bpf, act_bpf actions). Pure parsers
// first, bounds-checked everywhere (a container controls its own netns: its devices and
// filters are hostile input); then the socket, through koffi. A netlink socket belongs to
// the network namespace of the thread that made it (see netns.ts).
import fs from 'node:fs';
import koffi from 'koffi';
import {
  AF_NETLINK, SOCK_RAW, SOCK_CLOEXEC, NETLINK_ROUTE, SOL_SOCKET, SO_RCVBUF, SO_RCVTIMEO, SOL_NETLINK,
  NETLINK_GET_STRICT_CHK, MSG_TRUNC, SockaddrNl, Timeval, NLMSG_HDRLEN, NlmsgType, NLM_F_REQUEST,
  NLM_F_DUMP, NLM_F_DUMP_INTR, NLA_HDRLEN, NLA_TYPE_MASK, NLA_F_NESTED, Nlmsghdr, Nlattr, IFINFOMSG_INDEX, Tcmsg, RtmType, IFINFOMSG_LEN, TCMSG_LEN, TCAMSG_LEN,
  IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_EXT_MASK, IFLA_XDP, RTEXT_FILTER_SKIP_STATS, IflaXdp,
  XdpAttached, TCA_KIND, TCA_OPTIONS, TCA_CHAIN, TCA_DUMP_INVISIBLE, TCA_INGRESS_BLOCK, TCA_EGRESS_BLOCK, TcaBpf,
  TCA_BPF_FLAG_ACT_DIRECT, TCA_ROOT_TAB, TcaAct, TcaActBpf, sizeOf,
} from './abi.js';
import { libcFunction } from './libc.js';
import { KernelError } from './bpf.js';

// ---- parsers (pure) ----

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** the bytes after the header */
  payload: Buffer;
}

/** Splits a datagram into netlink messages; a message that does not fit is an error, not a guess. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off + Nlmsghdr.LEN);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink message: length ${len} at offset ${off} of ${buf.length}`);
    out.push({ type: buf.readUInt16LE(off + Nlmsghdr.TYPE), flags: buf.readUInt16LE(off + Nlmsghdr.FLAGS), seq: buf.readUInt32LE(off + Nlmsghdr.SEQ), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

const align4 = (n: number) => (n + 3) & ~3;

/** Attributes from `start` to the end of `buf`, by type (nested and byte-order flags dropped); the first of a type wins. */
export function parseAttrs(buf: Buffer, start = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const [type, value] of attrList(buf, start)) if (!out.has(type)) out.set(type, value);
  return out;
}

/** Attributes in order, duplicates kept (action tables number their entries). */
export function attrList(buf: Buffer, start = 0): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let off = start;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off + Nlattr.LEN);
    if (len < NLA_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink attribute: length ${len} at offset ${off} of ${buf.length}`);
    out.push([buf.readUInt16LE(off + Nlattr.TYPE) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len)]);
    off += align4(len);
  }
  return out;
}

const u32Of = (b: Buffer | undefined): number | null => (b && b.length >= 4 ? b.readUInt32LE(0) : null);
/** A NUL-terminated string attribute, capped (names are at most a few dozen bytes). */
const strOf = (b: Buffer | undefined): string | null => {
  if (!b) return null;
  const end = b.indexOf(0);
  return b.subarray(0, Math.min(end < 0 ? b.length : end, 256)).toString('utf8');
};

export type XdpMode = 'generic' | 'driver' | 'offload';

export interface LinkEntry {
  ifindex: number;
  ifname: string;
  /** IFLA_LINKINFO kind: veth, netkit, …; null for devices without one (lo, physical) */
  kind: string | null;
  /** programs attached by XDP, per mode */
  xdp: { mode: XdpMode; progId: number }[];
}

function need(payload: Buffer, len: number, what: string): void {
  if (payload.length < len) throw new Error(`malformed ${what}: ${payload.length} bytes, need ${len}`);
}

/** One RTM_NEWLINK message of a GETLINK dump. */
export function parseLink(payload: Buffer): LinkEntry {
  need(payload, IFINFOMSG_LEN, 'ifinfomsg');
  const ifindex = payload.readInt32LE(IFINFOMSG_INDEX);
  const attrs = parseAttrs(payload, IFINFOMSG_LEN);
  const info = attrs.get(IFLA_LINKINFO);
  const kind = info ? strOf(parseAttrs(info).get(IFLA_INFO_KIND)) : null;
  const xdp: LinkEntry['xdp'] = [];
  const x = attrs.get(IFLA_XDP);
  if (x) {
    const a = parseAttrs(x);
    const attached = a.get(IflaXdp.ATTACHED)?.[0] ?? XdpAttached.NONE;
    const add = (mode: XdpMode, id: number | null) => { if (id) xdp.push({ mode, progId: id }); };
    // one mode: IFLA_XDP_PROG_ID; several: one id per mode
    add('generic', u32Of(a.get(IflaXdp.SKB_PROG_ID)));
    add('driver', u32Of(a.get(IflaXdp.DRV_PROG_ID)));
    add('offload', u32Of(a.get(IflaXdp.HW_PROG_ID)));
    if (!xdp.length && attached !== XdpAttached.NONE && attached !== XdpAttached.MULTI) {
      const mode: XdpMode = attached === XdpAttached.SKB ? 'generic' : attached === XdpAttached.DRV ? 'driver' : 'offload';
      add(mode, u32Of(a.get(IflaXdp.PROG_ID)));
    }
  }
  return { ifindex, ifname: strOf(attrs.get(IFLA_IFNAME)) ?? `if${ifindex}`, kind, xdp };
}

export interface TcEntry {
  ifindex: number;
  handle: number;
  parent: number;
  /** tcm_info: a filter's priority (high 16 bits) and protocol (low 16 bits) */
  info: number;
  kind: string;
  chain: number | null;
  /** shared block indexes of an ingress or clsact qdisc (0: its own block) */
  ingressBlock: number;
  egressBlock: number;
  /** TCA_OPTIONS, unparsed */
  options: Buffer | null;
}

/** One qdisc, class or filter message (struct tcmsg + TCA_* attributes). */
export function parseTc(payload: Buffer): TcEntry {
  need(payload, TCMSG_LEN, 'tcmsg');
  const attrs = parseAttrs(payload, TCMSG_LEN);
  return {
    ifindex: payload.readInt32LE(Tcmsg.IFINDEX), handle: payload.readUInt32LE(Tcmsg.HANDLE), parent: payload.readUInt32LE(Tcmsg.PARENT),
    info: payload.readUInt32LE(Tcmsg.INFO),
    kind: strOf(attrs.get(TCA_KIND)) ?? '', chain: u32Of(attrs.get(TCA_CHAIN)),
    ingressBlock: u32Of(attrs.get(TCA_INGRESS_BLOCK)) ?? 0, egressBlock: u32Of(attrs.get(TCA_EGRESS_BLOCK)) ?? 0,
    options: attrs.get(TCA_OPTIONS) ?? null,
  };
}

export interface ClsBpf {
  progId: number;
  name: string | null;
  directAction: boolean;
}

/** cls_bpf's options: the program id, its name as tc shows it, direct-action. */
export function parseClsBpf(options: Buffer): ClsBpf | null {
  const a = parseAttrs(options);
  const id = u32Of(a.get(TcaBpf.ID));
  if (!id) return null; // a classic-BPF (ops) filter has no program id
  return { progId: id, name: strOf(a.get(TcaBpf.NAME)), directAction: ((u32Of(a.get(TcaBpf.FLAGS)) ?? 0) & TCA_BPF_FLAG_ACT_DIRECT) !== 0 };
}

export interface ActBpf {
  index: number;
  progId: number;
  name: string | null;
}

/** The act_bpf actions of one RTM_NEWACTION message of a GETACTION dump. */
export function parseActions(payload: Buffer): ActBpf[] {
  need(payload, TCAMSG_LEN, 'tcamsg');
  const tab = parseAttrs(payload, TCAMSG_LEN).get(TCA_ROOT_TAB);
  if (!tab) return [];
  const out: ActBpf[] = [];
  for (const [, entry] of attrList(tab)) {
    const a = parseAttrs(entry);
    if (strOf(a.get(TcaAct.KIND)) !== 'bpf') continue;
    const opts = a.get(TcaAct.OPTIONS);
    if (!opts) continue;
    const o = parseAttrs(opts);
    const id = u32Of(o.get(TcaActBpf.ID));
    if (!id) continue;
    // tc_act_bpf parms start with the index
    out.push({ index: u32Of(a.get(TcaAct.INDEX)) ?? u32Of(o.get(TcaActBpf.PARMS)) ?? 0, progId: id, name: strOf(o.get(TcaActBpf.NAME)) });
  }
  return out;
}

// ---- requests (pure) ----

/** One attribute (struct nlattr + value, padded to 4 bytes). */
export function encodeAttr(type: number, value: Buffer): Buffer {
  const len = NLA_HDRLEN + value.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, Nlattr.LEN);
  b.writeUInt16LE(type, Nlattr.TYPE);
  value.copy(b, NLA_HDRLEN);
  return b;
}

const u32Buf = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

export function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  hdr.writeUInt32LE(NLMSG_HDRLEN + body.length, Nlmsghdr.LEN);
  hdr.writeUInt16LE(type, Nlmsghdr.TYPE);
  hdr.writeUInt16LE(flags, Nlmsghdr.FLAGS);
  hdr.writeUInt32LE(seq, Nlmsghdr.SEQ);
  return Buffer.concat([hdr, body]);
}

/** GETLINK dump of every device, without statistics. */
export function linkDumpRequest(): { type: number; body: Buffer } {
  return { type: RtmType.GETLINK, body: Buffer.concat([Buffer.alloc(IFINFOMSG_LEN), encodeAttr(IFLA_EXT_MASK, u32Buf(RTEXT_FILTER_SKIP_STATS))]) };
}

function tcmsg(ifindex: number, parent: number): Buffer {
  const b = Buffer.alloc(TCMSG_LEN);
  b.writeInt32LE(ifindex, Tcmsg.IFINDEX);
  b.writeUInt32LE(parent >>> 0, Tcmsg.PARENT);
  return b;
}

/** GETQDISC of every device, the kernel's default qdiscs included. */
export function qdiscDumpRequest(): { type: number; body: Buffer } {
  return { type: RtmType.GETQDISC, body: Buffer.concat([tcmsg(0, 0), encodeAttr(TCA_DUMP_INVISIBLE, Buffer.alloc(0))]) };
}

/** GETTCLASS of one device, or GETTFILTER of one parent of one device (every chain). */
export function tcDumpRequest(type: number, ifindex: number, parent = 0): { type: number; body: Buffer } {
  return { type, body: tcmsg(ifindex, parent) };
}

/** GETACTION dump of the actions of one kind. */
export function actionDumpRequest(kind: string): { type: number; body: Buffer } {
  // the table's first entry (entries are numbered from 1)
  const entry = encodeAttr(1, encodeAttr(TcaAct.KIND, Buffer.from(kind + '\0')));
  return { type: RtmType.GETACTION, body: Buffer.concat([Buffer.alloc(TCAMSG_LEN), encodeAttr(TCA_ROOT_TAB | NLA_F_NESTED, entry)]) };
}

// ---- the socket ----

/** How much one netns may make a scan read (hostile containers control their netns). */
export interface DumpBudget {
  messages: number;
  bytes: number;
  deadline: number;
}

export class DumpTruncated extends Error {}

const socket = libcFunction<(domain: number, type: number, proto: number) => number>('int socket(int domain, int type, int protocol)');
const setsockopt = libcFunction<(fd: number, level: number, name: number, value: Buffer, len: number) => number>(
  'int setsockopt(int fd, int level, int name, void *value, uint32_t len)');
const sendto = libcFunction<(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number>(
  'long sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t alen)');
const recv = libcFunction<(fd: number, buf: Buffer, len: number, flags: number) => number>('long recv(int fd, void *buf, size_t len, int flags)');

const RECV_BUF = 64 * 1024;

export class RouteSocket {
  private seq = 0;
  private readonly buf = Buffer.alloc(RECV_BUF);
  private constructor(readonly fd: number) {}

  /** A NETLINK_ROUTE socket in the calling thread's network namespace; recv waits at most timeoutMs. */
  static open(timeoutMs = 2000): RouteSocket {
    const fd = Number(socket()(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (fd < 0) throw new KernelError('socket(AF_NETLINK)', koffi.errno());
    const s = new RouteSocket(fd);
    try {
      const tv = Buffer.alloc(sizeOf(Timeval));
      koffi.encode(tv, Timeval, { tv_sec: Math.floor(timeoutMs / 1000), tv_usec: (timeoutMs % 1000) * 1000 });
      s.opt(SOL_SOCKET, SO_RCVTIMEO, tv, 'SO_RCVTIMEO');
      s.opt(SOL_SOCKET, SO_RCVBUF, u32Buf(1 << 20), 'SO_RCVBUF');
      // strict checking: the kernel filters dumps by the header fields we send and rejects what it does not know
      s.opt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, u32Buf(1), 'NETLINK_GET_STRICT_CHK');
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  private opt(level: number, name: number, value: Buffer, what: string): void {
    if (Number(setsockopt()(this.fd, level, name, value, value.length)) < 0) throw new KernelError(`setsockopt ${what}`, koffi.errno());
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /**
   * One dump: every message's payload until NLMSG_DONE. Throws KernelError for the
   * kernel's error answer, DumpTruncated past the budget (which it charges).
   */
  dump(req: { type: number; body: Buffer }, budget: DumpBudget, what: string): NlMessage[] {
    const seq = ++this.seq;
    const msg = message(req.type, NLM_F_REQUEST | NLM_F_DUMP, seq, req.body);
    const sa = Buffer.alloc(sizeOf(SockaddrNl));
    koffi.encode(sa, SockaddrNl, { nl_family: AF_NETLINK, nl_pad: 0, nl_pid: 0, nl_groups: 0 });
    if (Number(sendto()(this.fd, msg, msg.length, 0, sa, sa.length)) < 0) throw new KernelError(`netlink send (${what})`, koffi.errno());
    const out: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      if (Date.now() > budget.deadline) throw new DumpTruncated(`${what}: out of time`);
      const n = Number(recv()(this.fd, this.buf, this.buf.length, MSG_TRUNC));
      if (n < 0) throw new KernelError(`netlink recv (${what})`, koffi.errno());
      if (n > this.buf.length) throw new Error(`${what}: a netlink datagram of ${n} bytes exceeds ${this.buf.length}`);
      budget.bytes -= n;
      if (budget.bytes < 0) throw new DumpTruncated(`${what}: over the byte budget`);
      for (const m of parseMessages(Buffer.from(this.buf.subarray(0, n)))) {
        if (m.seq !== seq) continue; // a late answer to an earlier request
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NlmsgType.DONE || m.type === NlmsgType.ERROR) {
          const err = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
          if (err < 0) throw new KernelError(`netlink dump (${what})`, -err);
          // read to the end first, so the socket is ready for the next request
          if (interrupted) throw new DumpInterrupted(`${what}: changed while being read`);
          return out;
        }
        if (m.type === NlmsgType.NOOP || m.type === NlmsgType.OVERRUN) continue;
        if (--budget.messages < 0) throw new DumpTruncated(`${what}: over the message budget`);
        out.push(m);
      }
    }
  }
}

/** The kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR): the caller reads again. */
export class DumpInterrupted extends Error {}
