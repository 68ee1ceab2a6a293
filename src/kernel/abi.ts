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
  MAP_LOOKUP_ELEM: 1,
  MAP_UPDATE_ELEM: 2,
  MAP_DELETE_ELEM: 3,
  MAP_GET_NEXT_KEY: 4,
  PROG_LOAD: 5,
  OBJ_PIN: 6,
  OBJ_GET: 7,
  PROG_GET_NEXT_ID: 11,
  MAP_GET_NEXT_ID: 12,
  PROG_GET_FD_BY_ID: 13,
  MAP_GET_FD_BY_ID: 14,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  LINK_CREATE: 28,
  LINK_GET_FD_BY_ID: 30,
  LINK_GET_NEXT_ID: 31,
  ITER_CREATE: 33,
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

/** BPF_MAP_CREATE (fields not given are encoded as zero) */
export const MapCreateAttr = koffi.struct('bpf_attr_map_create', {
  map_type: u32,
  key_size: u32,
  value_size: u32,
  max_entries: u32,
  map_flags: u32,
  inner_map_fd: u32,
  numa_node: u32,
  map_name: name16,
  map_ifindex: u32,
  btf_fd: u32,
  btf_key_type_id: u32,
  btf_value_type_id: u32,
  /** a struct_ops map's value type: the BTF id of struct bpf_struct_ops_<name> in vmlinux */
  btf_vmlinux_value_type_id: u32,
});

/** BPF_PROG_LOAD, up to log_true_size (fields not given are encoded as zero) */
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
  prog_btf_fd: u32,
  func_info_rec_size: u32,
  func_info: u64,
  func_info_cnt: u32,
  line_info_rec_size: u32,
  line_info: u64,
  line_info_cnt: u32,
  attach_btf_id: u32,
  /** attach_prog_fd or attach_btf_obj_fd (a union) */
  attach_btf_obj_fd: u32,
  core_relo_cnt: u32,
  fd_array: u64,
  core_relos: u64,
  core_relo_rec_size: u32,
  /** written by the kernel: the log size the whole verifier log needed */
  log_true_size: u32,
});

/** log_level of BPF_PROG_LOAD: 1 = the verifier's instruction-by-instruction log */
export const BPF_LOG_LEVEL_VERBOSE = 1;

/**
 * BPF_LINK_CREATE. The union after `flags` is read here as its iterator variant
 * (iter_info, iter_info_len); other attach types leave it zero.
 */
export const LinkCreateAttr = koffi.struct('bpf_attr_link_create', {
  prog_fd: u32,
  target_fd: u32,
  attach_type: u32,
  flags: u32,
  iter_info: u64,
  iter_info_len: u32,
  _pad: u32,
});

/** BPF_ITER_CREATE */
export const IterCreateAttr = koffi.struct('bpf_attr_iter_create', {
  link_fd: u32,
  flags: u32,
});

/** BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY (value is next_key for the last) */
export const MapElemAttr = koffi.struct('bpf_attr_map_elem', {
  map_fd: u32,
  _pad: u32,
  key: u64,
  value: u64,
  flags: u64,
});
/** flags of BPF_MAP_UPDATE_ELEM */
export const BPF_ANY = 0;

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

export const MapType = { HASH: 1, ARRAY: 2, STRUCT_OPS: 26 } as const;
export const ProgType = { SOCKET_FILTER: 1, SCHED_CLS: 3, XDP: 6, CGROUP_SKB: 8, TRACING: 26, STRUCT_OPS: 27 } as const;

/** enum bpf_attach_type values of the programs pinleak loads itself */
export const AttachType = { TRACE_RAW_TP: 23, TRACE_ITER: 28, STRUCT_OPS: 44 } as const;

// ---- BTF (include/uapi/linux/btf.h) ----

export const BTF_VMLINUX_PATH = '/sys/kernel/btf/vmlinux';
export const BTF_MAGIC = 0xeb9f;
/** BTF_KIND_*; `void` is BTF_KIND_UNKN, the kind of type id 0 */
export const BtfKind = {
  void: 0, int: 1, ptr: 2, array: 3, struct: 4, union: 5, enum: 6, fwd: 7, typedef: 8, volatile: 9,
  const: 10, restrict: 11, func: 12, func_proto: 13, var: 14, datasec: 15, float: 16, decl_tag: 17,
  type_tag: 18, enum64: 19,
} as const;

// ---- BPF instruction set (include/uapi/linux/bpf_common.h, bpf.h) ----

/** instruction classes */
export const BpfClass = { LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, JMP32: 0x06, ALU64: 0x07 } as const;
/** size field of loads and stores, by byte count */
export const BpfSize: Record<1 | 2 | 4 | 8, number> = { 4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18 };
/** mode field of loads and stores */
export const BpfMode = { IMM: 0x00, MEM: 0x60 } as const;
/** source operand: an immediate (K) or a register (X) */
export const BpfSrc = { K: 0x00, X: 0x08 } as const;
export const BpfAluOp = {
  add: 0x00, sub: 0x10, mul: 0x20, div: 0x30, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70,
  neg: 0x80, mod: 0x90, xor: 0xa0, mov: 0xb0, arsh: 0xc0,
} as const;
export const BpfJmpOp = {
  ja: 0x00, jeq: 0x10, jgt: 0x20, jge: 0x30, jset: 0x40, jne: 0x50, jsgt: 0x60, jsge: 0x70,
  call: 0x80, exit: 0x90, jlt: 0xa0, jle: 0xb0, jslt: 0xc0, jsle: 0xd0,
} as const;
/** src_reg of ld_imm64: the immediate is a map fd */
export const BPF_PSEUDO_MAP_FD = 1;
/** src_reg of a call: imm is the BTF id of a kernel function (kfunc) */
export const BPF_PSEUDO_KFUNC_CALL = 2;
export const BPF_INSN_SIZE = 8;
/** the frame pointer, read-only; the stack is the 512 bytes below it */
export const BPF_REG_FP = 10;
export const BPF_STACK_SIZE = 512;

/**
 * Helpers pinleak's programs call, by name. Their numbers come from the running
 * kernel's BTF (enum bpf_func_id, BPF_FUNC_<name>), never from this file.
 */
export type BpfHelperName = 'seq_write' | 'probe_read_user_str' | 'get_current_task_btf' | 'get_current_pid_tgid'
  | 'get_current_comm' | 'get_current_cgroup_id' | 'map_push_elem' | 'ringbuf_output' | 'ktime_get_ns';

/** super_block.s_magic of the anonymous inode file system: BPF objects' files live there */
export const ANON_INODE_FS_MAGIC = 0x09041934;

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
