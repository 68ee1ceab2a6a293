// Every kernel ABI struct pinleak uses, declared once as koffi structs
// (include/uapi/linux/bpf.h). Nothing outside this file knows an offset: the
// rest of the code encodes and decodes through these types.
import koffi, { type TypeObject } from 'koffi';

const u32 = 'uint32';
const s32 = 'int32';
const u64 = 'uint64';
const name16 = koffi.array('uint8', 16, 'Typed');

/** enum bpf_cmd */
export const BpfCmd = {
  MAP_CREATE: 0,
  PROG_LOAD: 5,
  OBJ_PIN: 6,
  OBJ_GET: 7,
  PROG_ATTACH: 8,
  PROG_GET_NEXT_ID: 11,
  MAP_GET_NEXT_ID: 12,
  PROG_GET_FD_BY_ID: 13,
  MAP_GET_FD_BY_ID: 14,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  LINK_CREATE: 28,
  LINK_GET_FD_BY_ID: 30,
  LINK_GET_NEXT_ID: 31,
} as const;

/** file_flags of BPF_OBJ_GET / open_flags of *_GET_FD_BY_ID */
export const BPF_F_RDONLY = 1 << 3;
export const BPF_F_MMAPABLE = 1 << 10;

/** BPF_OBJ_PIN, BPF_OBJ_GET */
export const ObjAttr = koffi.struct('bpf_attr_obj', {
  pathname: u64,
  bpf_fd: u32,
  file_flags: u32,
  path_fd: s32,
});

/** BPF_OBJ_GET_INFO_BY_FD */
export const InfoAttr = koffi.struct('bpf_attr_info', {
  bpf_fd: u32,
  info_len: u32,
  info: u64,
});

/** BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (start_id and map_id/prog_id/link_id share offset 0) */
export const IdAttr = koffi.struct('bpf_attr_id', {
  id: u32,
  next_id: u32,
  open_flags: u32,
});

/** BPF_MAP_CREATE */
export const MapCreateAttr = koffi.struct('bpf_attr_map_create', {
  map_type: u32,
  key_size: u32,
  value_size: u32,
  max_entries: u32,
  map_flags: u32,
  inner_map_fd: u32,
  numa_node: u32,
  map_name: name16,
});

/** BPF_PROG_LOAD */
export const ProgLoadAttr = koffi.struct('bpf_attr_prog_load', {
  prog_type: u32,
  insn_cnt: u32,
  insns: u64,
  license: u64,
  log_level: u32,
  log_size: u32,
  log_buf: u64,
  kern_version: u32,
  prog_flags: u32,
  prog_name: name16,
  prog_ifindex: u32,
  expected_attach_type: u32,
});

/** BPF_LINK_CREATE (the common head; target-specific parts stay zero) */
export const LinkCreateAttr = koffi.struct('bpf_attr_link_create', {
  prog_fd: u32,
  target_fd: u32,
  attach_type: u32,
  flags: u32,
});

/** BPF_PROG_QUERY */
export const ProgQueryAttr = koffi.struct('bpf_attr_prog_query', {
  target_fd: u32,
  attach_type: u32,
  query_flags: u32,
  attach_flags: u32,
  prog_ids: u64,
  prog_cnt: u32,
  _pad: u32,
  prog_attach_flags: u64,
  link_ids: u64,
  link_attach_flags: u64,
  revision: u64,
});

/** struct bpf_insn: code, dst_reg:4|src_reg:4, off, imm */
export const Insn = koffi.struct('bpf_insn', {
  code: 'uint8',
  regs: 'uint8',
  off: 'int16',
  imm: 'int32',
});

/** struct bpf_map_info */
export const MapInfo = koffi.struct('bpf_map_info', {
  type: u32,
  id: u32,
  key_size: u32,
  value_size: u32,
  max_entries: u32,
  map_flags: u32,
  name: name16,
  ifindex: u32,
  btf_vmlinux_value_type_id: u32,
  netns_dev: u64,
  netns_ino: u64,
  btf_id: u32,
  btf_key_type_id: u32,
  btf_value_type_id: u32,
  btf_vmlinux_id: u32,
  map_extra: u64,
});

/** struct bpf_prog_info, up to the fields pinleak reads */
export const ProgInfo = koffi.struct('bpf_prog_info', {
  type: u32,
  id: u32,
  tag: koffi.array('uint8', 8, 'Typed'),
  jited_prog_len: u32,
  xlated_prog_len: u32,
  jited_prog_insns: u64,
  xlated_prog_insns: u64,
  load_time: u64,
  created_by_uid: u32,
  nr_map_ids: u32,
  map_ids: u64,
  name: name16,
  ifindex: u32,
  gpl_compatible: u32,
  netns_dev: u64,
  netns_ino: u64,
});

/** struct bpf_link_info: type, id, prog_id, then a union at offset 16 read as raw words */
export const LinkInfo = koffi.struct('bpf_link_info', {
  type: u32,
  id: u32,
  prog_id: u32,
  _pad: u32,
  u0: u64,
  u1: u64,
  u2: u64,
  u3: u64,
});

/** struct statfs f_type of a bpffs (BPF_FS_MAGIC) */
export const BPF_FS_MAGIC = 0xcafe4a11;

export const MAP_TYPES = [
  'unspec', 'hash', 'array', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array',
  'stack_trace', 'cgroup_array', 'lru_hash', 'lru_percpu_hash', 'lpm_trie', 'array_of_maps',
  'hash_of_maps', 'devmap', 'sockmap', 'cpumap', 'xskmap', 'sockhash', 'cgroup_storage',
  'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack', 'sk_storage', 'devmap_hash',
  'struct_ops', 'ringbuf', 'inode_storage', 'task_storage', 'bloom_filter', 'user_ringbuf',
  'cgrp_storage', 'arena', 'insn_array',
];

export const PROG_TYPES = [
  'unspec', 'socket_filter', 'kprobe', 'sched_cls', 'sched_act', 'tracepoint', 'xdp',
  'perf_event', 'cgroup_skb', 'cgroup_sock', 'lwt_in', 'lwt_out', 'lwt_xmit', 'sock_ops',
  'sk_skb', 'cgroup_device', 'sk_msg', 'raw_tracepoint', 'cgroup_sock_addr', 'lwt_seg6local',
  'lirc_mode2', 'sk_reuseport', 'flow_dissector', 'cgroup_sysctl', 'raw_tracepoint_writable',
  'cgroup_sockopt', 'tracing', 'struct_ops', 'ext', 'lsm', 'sk_lookup', 'syscall', 'netfilter',
];

export const LINK_TYPES = [
  'unspec', 'raw_tracepoint', 'tracing', 'cgroup', 'iter', 'netns', 'xdp', 'perf_event',
  'kprobe_multi', 'struct_ops', 'netfilter', 'tcx', 'uprobe_multi', 'netkit', 'sockmap',
];

export const MapType = { HASH: 1, ARRAY: 2 } as const;
export const ProgType = { SOCKET_FILTER: 1, SCHED_CLS: 3, XDP: 6, CGROUP_SKB: 8, FLOW_DISSECTOR: 22, TRACING: 26, SK_LOOKUP: 30 } as const;

/** enum bpf_attach_type values that attach to a cgroup (queried with BPF_PROG_QUERY) */
export const CGROUP_ATTACH_TYPES: Record<number, string> = {
  0: 'cgroup_inet_ingress', 1: 'cgroup_inet_egress', 2: 'cgroup_inet_sock_create',
  3: 'cgroup_sock_ops', 6: 'cgroup_device', 8: 'cgroup_inet4_bind', 9: 'cgroup_inet6_bind',
  10: 'cgroup_inet4_connect', 11: 'cgroup_inet6_connect', 12: 'cgroup_inet4_post_bind',
  13: 'cgroup_inet6_post_bind', 14: 'cgroup_udp4_sendmsg', 15: 'cgroup_udp6_sendmsg',
  18: 'cgroup_sysctl', 19: 'cgroup_udp4_recvmsg', 20: 'cgroup_udp6_recvmsg',
  21: 'cgroup_getsockopt', 22: 'cgroup_setsockopt', 29: 'cgroup_inet4_getpeername',
  30: 'cgroup_inet6_getpeername', 31: 'cgroup_inet4_getsockname', 32: 'cgroup_inet6_getsockname',
  34: 'cgroup_inet_sock_release', 49: 'cgroup_unix_connect', 50: 'cgroup_unix_sendmsg',
  51: 'cgroup_unix_recvmsg', 52: 'cgroup_unix_getpeername', 53: 'cgroup_unix_getsockname',
  43: 'lsm_cgroup',
};
export const ATTACH_CGROUP_INET_INGRESS = 0;

/** Link types whose union starts with the target identity; 0 there means the target is gone. */
export const LINK_TARGET_WORD: Record<string, { word: 'u0' | 'u1'; bits: 32 | 64; what: string }> = {
  cgroup: { word: 'u0', bits: 64, what: 'cgroup' },
  netns: { word: 'u0', bits: 32, what: 'network namespace' },
  xdp: { word: 'u0', bits: 32, what: 'network interface' },
  tcx: { word: 'u0', bits: 32, what: 'network interface' },
  netkit: { word: 'u0', bits: 32, what: 'network interface' },
};

export function sizeOf(t: TypeObject): number {
  return koffi.sizeof(t);
}

/** struct open_how (openat2(2)) and its RESOLVE_* flags */
export const OpenHow = koffi.struct('open_how', {
  flags: u64,
  mode: u64,
  resolve: u64,
});
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;

/** struct statfs on 64-bit Linux: f_type first, the rest is not read */
export const StatFs = koffi.struct('statfs', {
  f_type: 'long',
  _rest: koffi.array('uint8', 112, 'Typed'),
});

export const AT_REMOVEDIR = 0x200;
export const SYSCALL_OPENAT2 = 437; // the same on every architecture (asm-generic)

// ---- networking: attach types, rtnetlink (linux/netlink.h, rtnetlink.h, if_link.h,
// pkt_sched.h, pkt_cls.h, tc_act/tc_bpf.h) and network namespaces ----

/** enum bpf_attach_type values of network attachments that exist without a link */
export const NetAttachType = {
  FLOW_DISSECTOR: 17,
  SK_LOOKUP: 36,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
  NETKIT_PRIMARY: 54,
  NETKIT_PEER: 55,
} as const;

/** BPF_PROG_ATTACH / BPF_PROG_DETACH (target_fd is target_ifindex for tcx and netkit) */
export const ProgAttachAttr = koffi.struct('bpf_attr_prog_attach', {
  target_fd: u32,
  attach_bpf_fd: u32,
  attach_type: u32,
  attach_flags: u32,
  replace_bpf_fd: u32,
  relative_fd: u32,
  expected_revision: u64,
});

export const CLONE_NEWNET = 0x40000000;
/** ioctl on an nsfs file: which kind of namespace it is (a CLONE_NEW* flag) */
export const NS_GET_NSTYPE = 0xb703;

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_ROUTE = 0;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20; // SO_RCVTIMEO_OLD: struct timeval of longs
export const SOL_NETLINK = 270;
export const NETLINK_GET_STRICT_CHK = 12;
export const MSG_TRUNC = 0x20;

/** struct sockaddr_nl */
export const SockaddrNl = koffi.struct('sockaddr_nl', {
  nl_family: 'uint16',
  nl_pad: 'uint16',
  nl_pid: u32,
  nl_groups: u32,
});

/** struct timeval (64-bit) */
export const Timeval = koffi.struct('timeval', { tv_sec: 'int64', tv_usec: 'int64' });

/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32 */
export const NLMSG_HDRLEN = 16;
export const NlmsgType = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
/** struct nlattr: len u16, type u16; the top two type bits are flags */
export const NLA_HDRLEN = 4;
export const NLA_TYPE_MASK = 0x3fff;

export const RtmType = {
  NEWLINK: 16, GETLINK: 18,
  NEWQDISC: 36, GETQDISC: 38,
  NEWTCLASS: 40, GETTCLASS: 42,
  NEWTFILTER: 44, GETTFILTER: 46,
  NEWACTION: 48, GETACTION: 50,
} as const;

/** struct ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32 */
export const IFINFOMSG_LEN = 16;
/** struct tcmsg: family u8, pad u8, pad u16, ifindex s32, handle u32, parent u32, info u32 */
export const TCMSG_LEN = 20;
/** struct tcamsg: family u8, pad u8, pad u16 */
export const TCAMSG_LEN = 4;

export const IFLA_IFNAME = 3;
export const IFLA_LINKINFO = 18;
export const IFLA_INFO_KIND = 1;
export const IFLA_EXT_MASK = 29;
export const IFLA_XDP = 43;
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;
export const IflaXdp = { ATTACHED: 2, PROG_ID: 4, DRV_PROG_ID: 5, SKB_PROG_ID: 6, HW_PROG_ID: 7 } as const;
/** IFLA_XDP_ATTACHED values */
export const XdpAttached = { NONE: 0, DRV: 1, SKB: 2, HW: 3, MULTI: 4 } as const;

export const TCA_KIND = 1;
export const TCA_OPTIONS = 2;
export const TCA_DUMP_INVISIBLE = 10;
export const TCA_CHAIN = 11;
export const TCA_INGRESS_BLOCK = 13;
export const TCA_EGRESS_BLOCK = 14;
export const TC_H_ROOT = 0xffffffff;
export const TC_H_CLSACT = 0xfffffff1; // also TC_H_INGRESS
export const TC_H_MAJ_MASK = 0xffff0000;
export const TC_H_MIN_INGRESS = 0xfff2;
export const TC_H_MIN_EGRESS = 0xfff3;

/** cls_bpf options (TCA_OPTIONS of a filter of kind "bpf") */
export const TcaBpf = { ACT: 1, NAME: 7, FLAGS: 8, ID: 11 } as const;
export const TCA_BPF_FLAG_ACT_DIRECT = 1;

/** RTM_GETACTION: TCA_ROOT_TAB of actions, each TCA_ACT_KIND / TCA_ACT_OPTIONS / TCA_ACT_INDEX */
export const TCA_ROOT_TAB = 1;
export const TcaAct = { KIND: 1, OPTIONS: 2, INDEX: 3 } as const;
/** act_bpf options */
export const TcaActBpf = { PARMS: 2, NAME: 6, ID: 9 } as const;
