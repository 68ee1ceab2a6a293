// Every kernel ABI struct pinleak uses, declared once as koffi structs
// (include/uapi/linux/bpf.h). Nothing outside this file knows an offset: the
// rest of the code encodes and decodes through these types.
import koffi, { type TypeObject } from 'koffi';

const u32 = 'uint32';
const s32 = 'int32';
const u64 = 'uint64';
/** BPF_OBJ_NAME_LEN: a map's or program's name, NUL included */
export const BPF_OBJ_NAME_LEN = 16;
const name16 = koffi.array('uint8', BPF_OBJ_NAME_LEN, 'Typed');

/** The bpf(2) syscall number, by Node's process.arch */
export const SYSCALL_BPF: Record<string, number> = { x64: 321, arm64: 280, riscv64: 280, s390x: 351, ppc64: 361, loong64: 280 };

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
  PROG_ATTACH: 8,
  PROG_TEST_RUN: 10,
  PROG_GET_NEXT_ID: 11,
  MAP_GET_NEXT_ID: 12,
  PROG_GET_FD_BY_ID: 13,
  MAP_GET_FD_BY_ID: 14,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  BTF_LOAD: 18,
  MAP_LOOKUP_AND_DELETE_ELEM: 21,
  TASK_FD_QUERY: 20,
  LINK_CREATE: 28,
  LINK_GET_FD_BY_ID: 30,
  LINK_GET_NEXT_ID: 31,
  ITER_CREATE: 33,
  PROG_BIND_MAP: 35,
} as const;

/** clock ids of clock_gettime(2) */
export const CLOCK_REALTIME = 0;
export const CLOCK_BOOTTIME = 7;

/** file_flags of BPF_OBJ_GET / open_flags of *_GET_FD_BY_ID */
export const BPF_F_RDONLY = 1 << 3;
/** file_flags of BPF_OBJ_GET: pathname is relative to path_fd (6.5+) */
export const BPF_F_PATH_FD = 1 << 14;
/** map_flags: a hash map allocates its elements as they are added (its memory grows and shrinks) */
export const BPF_F_NO_PREALLOC = 1 << 0;
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

/** BPF_TASK_FD_QUERY: which program a process's perf event (or raw tracepoint) fd runs */
export const TaskFdQueryAttr = koffi.struct('bpf_attr_task_fd_query', {
  pid: u32,
  fd: u32,
  flags: u32,
  buf_len: u32,
  buf: u64,
  prog_id: u32,
  fd_type: u32,
  probe_offset: u64,
  probe_addr: u64,
});

/** enum bpf_task_fd_type, as BPF_TASK_FD_QUERY names the perf event */
export const TASK_FD_TYPES = ['raw_tracepoint', 'tracepoint', 'kprobe', 'kretprobe', 'uprobe', 'uretprobe'];

/** BPF_LINK_CREATE of a uprobe_multi link (tests: a link on a process) */
export const UprobeMultiLinkAttr = koffi.struct('bpf_attr_link_create_uprobe_multi', {
  prog_fd: u32,
  target_fd: u32,
  attach_type: u32,
  flags: u32,
  path: u64,
  offsets: u64,
  ref_ctr_offsets: u64,
  cookies: u64,
  cnt: u32,
  uflags: u32,
  pid: u32,
});

/** struct perf_event_attr up to PERF_ATTR_SIZE_VER0 (tests: perf events running a program) */
export const PerfEventAttr = koffi.struct('perf_event_attr', {
  type: u32,
  size: u32,
  config: u64,
  sample_period: u64,
  sample_type: u64,
  read_format: u64,
  flags: u64,
  wakeup_events: u32,
  bp_type: u32,
  config1: u64,
});
export const PERF_TYPE_SOFTWARE = 1;
export const PERF_TYPE_TRACEPOINT = 2;
export const PERF_COUNT_SW_CPU_CLOCK = 0;
/** _IOW('$', 8, __u32) */
export const PERF_EVENT_IOC_SET_BPF = 0x40042408;
export const PERF_FLAG_FD_CLOEXEC = 8;
export const SYSCALL_PERF_EVENT_OPEN: Record<string, number> = { x64: 298, arm64: 241, riscv64: 241, s390x: 331, ppc64: 319, loong64: 241 };

/** BPF_PROG_TEST_RUN (tests: a tail call still runs) */
export const ProgTestRunAttr = koffi.struct('bpf_attr_test_run', {
  prog_fd: u32,
  retval: u32,
  data_size_in: u32,
  data_size_out: u32,
  data_in: u64,
  data_out: u64,
  repeat: u32,
  duration: u32,
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

/** BPF_BTF_LOAD */
export const BtfLoadAttr = koffi.struct('bpf_attr_btf_load', {
  btf: u64,
  btf_log_buf: u64,
  btf_size: u32,
  btf_log_size: u32,
  btf_log_level: u32,
});

/** union bpf_iter_link_info, task variant: limit a task iterator to one thread (tid), process (pid) or pidfd */
export const IterTaskInfo = koffi.struct('bpf_iter_link_info_task', {
  tid: u32,
  pid: u32,
  pid_fd: u32,
});

/** BPF_PROG_BIND_MAP: a map added to a loaded program's used maps */
export const ProgBindMapAttr = koffi.struct('bpf_attr_prog_bind_map', { prog_fd: u32, map_fd: u32, flags: u32 });

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
  u4: u64,
  u5: u64,
});
/** uprobe_multi's target pid: the high half of union word 5 (path, offsets, ref_ctr_offsets, cookies, path_size, count, flags, pid) */
export const UPROBE_MULTI_PID_WORD = 'u5';

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
/** enum bpf_map_type as pinleak names it ("type_N" for one this version does not know) */
export const mapTypeName = (type: number): string => MAP_TYPES[type] ?? `type_${type}`;

export const PROG_TYPES = [
  'unspec', 'socket_filter', 'kprobe', 'sched_cls', 'sched_act', 'tracepoint', 'xdp',
  'perf_event', 'cgroup_skb', 'cgroup_sock', 'lwt_in', 'lwt_out', 'lwt_xmit', 'sock_ops',
  'sk_skb', 'cgroup_device', 'sk_msg', 'raw_tracepoint', 'cgroup_sock_addr', 'lwt_seg6local',
  'lirc_mode2', 'sk_reuseport', 'flow_dissector', 'cgroup_sysctl', 'raw_tracepoint_writable',
  'cgroup_sockopt', 'tracing', 'struct_ops', 'ext', 'lsm', 'sk_lookup', 'syscall', 'netfilter',
];

/** enum bpf_prog_type as pinleak names it ("type_N" for one this version does not know) */
export const progTypeName = (type: number): string => PROG_TYPES[type] ?? `type_${type}`;

export const LINK_TYPES = [
  'unspec', 'raw_tracepoint', 'tracing', 'cgroup', 'iter', 'netns', 'xdp', 'perf_event',
  'kprobe_multi', 'struct_ops', 'netfilter', 'tcx', 'uprobe_multi', 'netkit', 'sockmap',
];

export const MapType = {
  HASH: 1, ARRAY: 2, PROG_ARRAY: 3, ARRAY_OF_MAPS: 12, HASH_OF_MAPS: 13, DEVMAP: 14, SOCKMAP: 15, CPUMAP: 16,
  SOCKHASH: 18, QUEUE: 22, DEVMAP_HASH: 25, STRUCT_OPS: 26,
} as const;
export const ProgType = {
  SOCKET_FILTER: 1, KPROBE: 2, SCHED_CLS: 3, TRACEPOINT: 5, XDP: 6, PERF_EVENT: 7, CGROUP_SKB: 8, SK_SKB: 14, SK_MSG: 16,
  FLOW_DISSECTOR: 22, TRACING: 26, STRUCT_OPS: 27, SK_LOOKUP: 30,
} as const;

/** enum bpf_attach_type values for programs a sock map runs (BPF_PROG_QUERY with the map as target) */
export const SOCK_MAP_ATTACH_TYPES: Record<number, string> = {
  4: 'sk_skb stream parser', 5: 'sk_skb stream verdict', 7: 'sk_msg verdict', 38: 'sk_skb verdict',
};
/** enum bpf_attach_type values pinleak and its tests use */
export const AttachType = {
  SK_SKB_STREAM_PARSER: 4, SK_SKB_STREAM_VERDICT: 5, SK_MSG_VERDICT: 7, TRACE_RAW_TP: 23, TRACE_ITER: 28, XDP_DEVMAP: 33,
  XDP_CPUMAP: 35, STRUCT_OPS: 44, TRACE_UPROBE_MULTI: 48,
} as const;

// ---- BTF (include/uapi/linux/btf.h) ----

export const BTF_VMLINUX_PATH = '/sys/kernel/btf/vmlinux';
export const BTF_MAGIC = 0xeb9f;
/** struct btf_header: magic, version, flags, hdr_len, then type_off, type_len, str_off, str_len (u32 each) */
export const BTF_HEADER_LEN = 24;
/** struct btf_type: name_off, info, size/type; `info` packs vlen (bits 0-15), kind (24-28) and kind_flag (31) */
export const BTF_TYPE_LEN = 12;
export const BTF_INFO_KIND_SHIFT = 24;
export const BTF_INFO_KIND_MASK = 0x1f;
export const BTF_INFO_VLEN_MASK = 0xffff;
export const BTF_INFO_KIND_FLAG = 1 << 31;
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
export const BpfMode = { IMM: 0x00, MEM: 0x60, ATOMIC: 0xc0 } as const;
/** imm of a BPF_ATOMIC store: fetch-less add */
export const BPF_ATOMIC_ADD = 0x00;
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
/** src_reg of ld_imm64: the immediate is a map fd, the next slot's an offset into its (array) value */
export const BPF_PSEUDO_MAP_VALUE = 2;
/** src_reg of a call: imm is the BTF id of a kernel function (kfunc) */
export const BPF_PSEUDO_KFUNC_CALL = 2;
/** src_reg of ld_imm64: the immediate is the instruction offset of a subprogram (a callback, for bpf_loop) */
export const BPF_PSEUDO_FUNC = 4;
export const BPF_INSN_SIZE = 8;
/** the frame pointer, read-only; the stack is the 512 bytes below it */
export const BPF_REG_FP = 10;
export const BPF_STACK_SIZE = 512;

/**
 * Helpers pinleak's programs call, by name. Their numbers come from the running
 * kernel's BTF (enum bpf_func_id, BPF_FUNC_<name>), never from this file.
 */
export type BpfHelperName = 'seq_write' | 'probe_read_user_str' | 'get_current_task_btf' | 'get_current_pid_tgid'
  | 'get_current_comm' | 'get_current_cgroup_id' | 'map_push_elem' | 'ringbuf_output' | 'ktime_get_ns'
  | 'probe_read_user' | 'ktime_get_boot_ns' | 'probe_read_kernel' | 'loop';


/**
 * Where a syscall's number and first arguments sit in struct pt_regs at sys_exit, by
 * process.arch (the recorder on the bpf syscall reads them). Only x86_64 was measured.
 */
export const SYSCALL_REGS: Record<string, { nr: string; arg1: string; arg2: string; arg3: string }> = {
  x64: { nr: 'orig_ax', arg1: 'di', arg2: 'si', arg3: 'dx' },
};

/** super_block.s_magic of the anonymous inode file system: BPF objects' files live there */
export const ANON_INODE_FS_MAGIC = 0x09041934;
/** task_struct.exit_state bits (linux/sched.h): /proc shows X and Z for them */
export const EXIT_DEAD = 0x10;
export const EXIT_ZOMBIE = 0x20;
/** task_struct.flags: a kernel thread (its /proc comm may be longer than task->comm) */
export const PF_KTHREAD = 0x00200000;

/** nsfs: the files of /proc/<pid>/ns/* and their bind mounts (ip netns, CNI) */
export const NSFS_MAGIC = 0x6e736673;

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
export const AT_SYMLINK_NOFOLLOW = 0x100;

/** struct statx_timestamp (linux/stat.h) */
const StatxTimestamp = koffi.struct('statx_timestamp', { tv_sec: 'int64', tv_nsec: 'uint32', _reserved: 'int32' });
/** struct statx (linux/stat.h): the same layout on every architecture, 256 bytes */
export const Statx = koffi.struct('statx', {
  stx_mask: 'uint32', stx_blksize: 'uint32', stx_attributes: u64, stx_nlink: 'uint32', stx_uid: 'uint32', stx_gid: 'uint32',
  stx_mode: 'uint16', _spare0: 'uint16', stx_ino: u64, stx_size: u64, stx_blocks: u64, stx_attributes_mask: u64,
  stx_atime: StatxTimestamp, stx_btime: StatxTimestamp, stx_ctime: StatxTimestamp, stx_mtime: StatxTimestamp,
  stx_rdev_major: 'uint32', stx_rdev_minor: 'uint32', stx_dev_major: 'uint32', stx_dev_minor: 'uint32',
  _spare: koffi.array('uint8', 112, 'Typed'),
});
/** statx mask: type, mode, uid, gid, inode, ctime (what a pin's walk reads) */
export const STATX_TYPE = 0x1;
export const STATX_MODE = 0x2;
export const STATX_UID = 0x8;
export const STATX_GID = 0x10;
export const STATX_CTIME = 0x80;
export const STATX_INO = 0x100;
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
/** open(2) flags Node's fs.constants lacks (asm-generic values) */
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;
/** sysconf(3) names (glibc's enum: _SC_CLK_TCK, _SC_PAGESIZE) */
export const SC_CLK_TCK = 2;
export const SC_PAGESIZE = 30;
/** The initial pid namespace's fixed inode: anywhere else, the host's processes are hidden. */
export const PROC_PID_INIT_INO = 0xeffffffc;
/** capability bits of CapEff (include/uapi/linux/capability.h) */
export const Capability = { SYS_PTRACE: 19, SYS_ADMIN: 21, BPF: 39 } as const;
/** pidfd_open(2), pidfd_getfd(2): the same on every architecture (asm-generic) */
export const SYSCALL_PIDFD_OPEN = 434;
export const SYSCALL_PIDFD_GETFD = 438;
export const SYSCALL_OPENAT2 = 437; // the same on every architecture (asm-generic)
/** getdents64(2) on x86_64 */
export const SYSCALL_GETDENTS64 = 217;
/** struct linux_dirent64: d_ino u64, d_off s64, then these */
export const DIRENT64_RECLEN_OFFSET = 16;
export const DIRENT64_TYPE_OFFSET = 18;
export const DIRENT64_NAME_OFFSET = 19;
/** d_type values */
export const DT_UNKNOWN = 0;
export const DT_DIR = 4;
export const DT_REG = 8;

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
export const SOCK_CLOEXEC = O_CLOEXEC;
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

/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32 (field offsets) */
export const NLMSG_HDRLEN = 16;
export const Nlmsghdr = { LEN: 0, TYPE: 4, FLAGS: 6, SEQ: 8 } as const;
export const NlmsgType = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
/** struct nlattr: len u16, type u16; the top two type bits are flags */
export const NLA_HDRLEN = 4;
export const Nlattr = { LEN: 0, TYPE: 2 } as const;
export const NLA_TYPE_MASK = 0x3fff;
/** nla_type flag of an attribute that holds attributes */
export const NLA_F_NESTED = 0x8000;

export const RtmType = {
  NEWLINK: 16, GETLINK: 18,
  NEWQDISC: 36, GETQDISC: 38,
  NEWTCLASS: 40, GETTCLASS: 42,
  NEWTFILTER: 44, GETTFILTER: 46,
  NEWACTION: 48, GETACTION: 50,
} as const;

/** struct ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32 */
export const IFINFOMSG_LEN = 16;
export const IFINFOMSG_INDEX = 4;
/** struct tcmsg: family u8, pad u8, pad u16, ifindex s32, handle u32, parent u32, info u32 */
export const TCMSG_LEN = 20;
export const Tcmsg = { IFINDEX: 4, HANDLE: 8, PARENT: 12, INFO: 16 } as const;
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

/** flock(2) operations */
export const LOCK_EX = 2;
export const LOCK_NB = 4;
