// The pin recorder: a BPF program on the sys_exit raw tracepoint that records every
// BPF_OBJ_PIN on the host, failed ones too: who pinned (tgid, start time, comm, parent,
// cgroup, mount namespace), what (the object behind bpf_fd: kind and id), where (the
// pathname as passed) and the result. At sys_exit the syscall's arguments are still in
// pt_regs, the fd still open and the caller's memory still mapped, so one program sees
// everything, even for a process that lives 1 ms (KERNEL-FACTS "Who pinned what").
//
// Records leave the kernel through a QUEUE map drained with BPF_MAP_LOOKUP_AND_DELETE_ELEM
// (plain bpf(2), no mmap); a push that fails (the queue is full) adds one to a drop
// counter in an array map. The program and its link live exactly as long as this
// process's fds: never pinned, so an exit or a SIGKILL detaches them.
//
// Cost: every syscall of the host runs the program's first instructions while it is
// attached (~20 ns measured here, README "pinleak watch").
import os from 'node:os';
import { R0, R1, R2, R3, R6, R7, R8, R9, R10 } from './asm.js';
import { kernelBtf, type Btf } from './btf.js';
import { Gen, layout, KIND_OF_CODE, type Layout } from './iterators.js';
import { loadProgram, VerifierError } from './loader.js';
import { closeFd, linkCreate, linkInfo, mapCreate, mapLookup, mapPop, progInfo, KernelError } from './bpf.js';
import { AttachType, BpfCmd, MapType, ProgType, SYSCALL_BPF, SYSCALL_REGS } from './abi.js';
import { clockTicks } from './procfs.js';
import type { ObjectKind } from '../model.js';

/** Bytes of the pathname kept (with its NUL); a longer one is recorded truncated. */
export const PATH_BOUND = 256;
/** Records the queue holds between two drains: 8192 x 352 bytes, ~2.9 MiB of kernel memory. */
export const QUEUE_ENTRIES = 8192;
/**
 * Ancestors recorded (tgids, parent first): `pinleak run` attributes a pin to its command
 * when the command's pid is among them, even through processes that pinned nothing.
 */
export const ANCESTOR_DEPTH = 16;
/** Bytes of bpf_attr read for BPF_OBJ_PIN: pathname, bpf_fd, file_flags, path_fd. */
const OBJ_ATTR_BYTES = 20;

const HEADER = layout<string>([
  ['bootNs', 8], ['ret', 8], ['startNs', 8], ['parentStartNs', 8], ['cgroupId', 8], ['comm0', 8], ['comm1', 8],
  ['tgid', 4], ['ptgid', 4], ['mntNs', 4], ['bpfFd', 4], ['fileFlags', 4], ['pathFd', 4], ['kind', 4], ['objId', 4],
  ['attrSize', 4], ['pathLen', 4],
  ...Array.from({ length: ANCESTOR_DEPTH }, (_, i) => [`anc${i}`, 4] as [string, 4]),
]);
/** One record: the header, then the pathname (PATH_BOUND bytes). */
const RECORD: Layout<string> = { size: HEADER.size + PATH_BOUND, fields: HEADER.fields };
const PATH_OFF = HEADER.size;

/** One BPF_OBJ_PIN as the kernel saw it. */
export interface PinRecord {
  /** nanoseconds after boot (CLOCK_BOOTTIME) when the syscall returned */
  bootNs: bigint;
  /** 0, or the negative errno of a refused pin */
  ret: number;
  /** the pinning process (tgid) and its start time in clock ticks after boot (/proc/<pid>/stat field 22) */
  pid: number;
  startTime: number;
  /** the process's comm (its thread group leader's) */
  comm: string;
  /** its parent process when it pinned */
  ppid: number;
  parentStartTime: number;
  /** parent, grandparent... (tgids, up to ANCESTOR_DEPTH; 0 past the idle task) */
  ancestors: number[];
  /** the cgroup v2 id (the cgroup directory's inode) */
  cgroupId: bigint;
  mntNs: number;
  /** the pathname as passed: relative to the cwd or to pathFd when it does not start with / */
  path: string;
  /** the pathname was longer than PATH_BOUND - 1 bytes (or unreadable: pathLen < 0) */
  pathTruncated: boolean;
  bpfFd: number;
  fileFlags: number;
  pathFd: number;
  /** the object behind bpf_fd when the pin returned; unknown when the fd was no BPF object */
  kind: ObjectKind;
  id: number;
}

/** Nanoseconds to clock ticks as the kernel's nsec_to_clock_t does (USER_HZ divides 10^9). */
export function ticksOfNs(ns: bigint, ticksPerSecond: number): number {
  return Number(ns / (1_000_000_000n / BigInt(ticksPerSecond)));
}

/** The struct whose first member is a `struct file *`: casting a slot of an fd table to it reads the slot. */
function fileSlotStruct(btf: Btf): number {
  const id = btf.find('struct', 'kiocb');
  const first = btf.members(id)[0];
  const file = btf.find('struct', 'file');
  if (!first || first.bitOffset !== 0 || btf.resolve(btf.pointee(first.resolvedId) ?? 0) !== file) {
    throw new KernelError('BTF', os.constants.errno.ENOENT, 'struct kiocb does not start with a struct file pointer');
  }
  return id;
}

/** The recorder's bytecode against `btf`, pushing into the queue `queueFd` and counting drops in `dropsFd`. */
export function recorderProgram(btf: Btf, queueFd: number, dropsFd: number, arch = process.arch): Buffer {
  const regs = SYSCALL_REGS[arch];
  const nr = SYSCALL_BPF[arch];
  if (!regs || nr === undefined) throw new KernelError('recorder', os.constants.errno.EOPNOTSUPP, `on ${arch} (only x86_64 is supported)`);
  const g = new Gen(btf, RECORD);
  const a = g.a;
  const rec = -RECORD.size;
  const attr = rec - 24; // the bpf_attr copy, below the record
  const task = 'task_struct';

  // r6 = ctx: (struct pt_regs *regs, long ret); r7 = regs
  a.mov(R6, R1).ldx(8, R7, R6, 0);
  g.load(R1, R7, 'pt_regs', regs.nr);
  a.jmp('jne', R1, nr, 'out');
  g.load(R1, R7, 'pt_regs', regs.arg1);
  a.jmp('jne', R1, BpfCmd.OBJ_PIN, 'out');
  g.load(R1, R7, 'pt_regs', regs.arg3).store('attrSize', R1);
  g.load(R8, R7, 'pt_regs', regs.arg2); // r8 = the caller's bpf_attr
  // bpf_probe_read_user(attr copy, 20, r8): zeroed when unreadable
  a.mov(R1, R10).add(R1, attr).mov(R2, OBJ_ATTR_BYTES).mov(R3, R8).call(g.helper('probe_read_user'));
  a.ldx(4, R1, R10, attr + 8);
  g.store('bpfFd', R1);
  a.ldx(4, R1, R10, attr + 12);
  g.store('fileFlags', R1);
  a.ldx(4, R1, R10, attr + 16);
  g.store('pathFd', R1);
  // bpf_probe_read_user_str(path, PATH_BOUND, attr.pathname)
  a.mov(R1, R10).add(R1, rec + PATH_OFF).mov(R2, PATH_BOUND).ldx(8, R3, R10, attr).call(g.helper('probe_read_user_str'));
  g.store('pathLen', R0);
  a.ldx(8, R1, R6, 8);
  g.store('ret', R1);
  a.call(g.helper('ktime_get_boot_ns'));
  g.store('bootNs', R0);
  a.call(g.helper('get_current_cgroup_id'));
  g.store('cgroupId', R0);

  // the process: r7 = current task
  a.call(g.helper('get_current_task_btf')).mov(R7, R0);
  g.load(R1, R7, task, 'tgid').store('tgid', R1);
  g.load(R1, R7, task, 'group_leader.start_boottime').store('startNs', R1);
  const commOff = btf.loadPath(btf.find('struct', task), 'group_leader.comm').offsets;
  g.load(R8, R7, task, 'group_leader');
  a.ldx(8, R1, R8, commOff[1]!);
  g.store('comm0', R1);
  a.ldx(8, R1, R8, commOff[1]! + 8);
  g.store('comm1', R1);
  g.load(R1, R7, task, 'real_parent.tgid').store('ptgid', R1);
  g.load(R1, R7, task, 'real_parent.group_leader.start_boottime').store('parentStartNs', R1);
  g.load(R1, R7, task, 'nsproxy.mnt_ns.ns.inum').store('mntNs', R1);
  // ancestors: real_parent up the tree (init's parent chain ends in the idle task, pid 0)
  a.mov(R8, R7);
  for (let i = 0; i < ANCESTOR_DEPTH; i++) {
    g.load(R8, R8, task, 'real_parent');
    g.load(R1, R8, task, 'tgid').store(`anc${i}`, R1);
  }

  // the object behind bpf_fd: files->fdt->fd[bpf_fd], when bpf_fd < max_fds
  g.storeImm('kind', 0).storeImm('objId', 0);
  g.load(R8, R7, task, 'files.fdt');
  g.load(R1, R8, 'fdtable', 'max_fds');
  a.ldx(4, R2, R10, rec + RECORD.fields.bpfFd.off);
  a.jmp('jge', R2, R1, 'push');
  g.load(R1, R8, 'fdtable', 'fd'); // struct file ** loads as a scalar address
  a.alu64('lsh', R2, 3).add(R1, R2);
  a.mov(R2, fileSlotStruct(btf)).callKfunc(btf.find('func', 'bpf_rdonly_cast'));
  a.ldx(8, R8, R0, 0); // r8 = the struct file *
  a.jmp('jeq', R8, 0, 'push');
  g.bpfFile(R8, undefined, 'push');
  g.store('objId', R0);
  g.store('kind', R9);

  a.label('push');
  g.a.ldMapFd(R1, queueFd).mov(R2, R10).add(R2, rec).mov(R3, 0).call(g.helper('map_push_elem'));
  a.jmp('jeq', R0, 0, 'out');
  a.ldMapValue(R1, dropsFd).mov(R2, 1).atomicAdd(8, R1, 0, R2);
  a.label('out').mov(R0, 0).exit();
  return a.assemble();
}

// ---- loading, attaching, draining ----

/** The recorder, attached: its fds are the attachment (closing them detaches it). */
export interface Recorder {
  progId: number;
  linkId: number;
  /** the records pushed since the last drain, oldest first (at most `max`) */
  drain(max?: number): PinRecord[];
  /** pins the kernel saw but the queue had no room for, since the recorder was attached */
  drops(): number;
  /** detach and free everything (idempotent) */
  close(): void;
}

/** Why the recorder cannot run here, in one line; null when nothing stops it before loading. */
export function recorderUnsupported(arch = process.arch): string | null {
  if (!SYSCALL_REGS[arch]) return `the pin recorder supports only x86_64, not ${arch}`;
  return null;
}

/**
 * Loads and attaches the recorder. Throws KernelError (VerifierError, BtfError) when the
 * kernel refuses it: no BTF, lockdown, an old kernel, another architecture.
 */
export function startRecorder(): Recorder {
  const unsupported = recorderUnsupported();
  if (unsupported) throw new KernelError('recorder', os.constants.errno.EOPNOTSUPP, `(${unsupported})`);
  const btf = kernelBtf();
  const fds: number[] = [];
  try {
    const queueFd = mapCreate({ type: MapType.QUEUE, keySize: 0, valueSize: RECORD.size, maxEntries: QUEUE_ENTRIES, name: 'pinleak_pins' });
    fds.push(queueFd);
    const dropsFd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'pinleak_drops' });
    fds.push(dropsFd);
    const progFd = loadProgram({
      name: 'pinleak_pins', type: ProgType.TRACING, insns: recorderProgram(btf, queueFd, dropsFd),
      expectedAttachType: AttachType.TRACE_RAW_TP, attachBtfId: btf.find('typedef', 'btf_trace_sys_exit'),
    });
    fds.push(progFd);
    const linkFd = linkCreate(progFd, 0, AttachType.TRACE_RAW_TP);
    fds.push(linkFd);
    const progId = progInfo(progFd).id, linkId = linkInfo(linkFd).id;
    const value = Buffer.alloc(RECORD.size);
    const zero = Buffer.alloc(4);
    const ticks = clockTicks();
    let open = true;
    return {
      progId, linkId,
      drain(max = QUEUE_ENTRIES) {
        const out: PinRecord[] = [];
        while (open && out.length < max && mapPop(queueFd, value)) out.push(decodeRecord(value, ticks));
        return out;
      },
      drops() {
        const v = open ? mapLookup(dropsFd, zero, 8) : null;
        return v ? Number(LE ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0)) : 0;
      },
      close() {
        if (!open) return;
        open = false;
        for (const fd of fds.reverse()) closeFd(fd);
      },
    };
  } catch (e) {
    for (const fd of fds.reverse()) closeFd(fd);
    throw e;
  }
}

/** One line saying why the recorder could not start (for `watch` and `run` falling back). */
export function recorderRefusal(e: unknown): string {
  if (e instanceof VerifierError) return e.summary;
  if (e instanceof KernelError) return e.message;
  throw e;
}

const LE = os.endianness() === 'LE';

function cStringAt(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** A record as the program wrote it (exported for tests). */
export function decodeRecord(buf: Buffer, ticksPerSecond: number): PinRecord {
  const f = RECORD.fields;
  const u32 = (k: string) => (LE ? buf.readUInt32LE(f[k].off) : buf.readUInt32BE(f[k].off));
  const s32 = (k: string) => (LE ? buf.readInt32LE(f[k].off) : buf.readInt32BE(f[k].off));
  const u64 = (k: string) => (LE ? buf.readBigUInt64LE(f[k].off) : buf.readBigUInt64BE(f[k].off));
  const s64 = (k: string) => (LE ? buf.readBigInt64LE(f[k].off) : buf.readBigInt64BE(f[k].off));
  // fields past the attr size the caller passed are zero to the kernel (bpf_check_uarg_tail_zero)
  const attrSize = u32('attrSize');
  const pathLen = s32('pathLen');
  return {
    bootNs: u64('bootNs'),
    ret: Number(s64('ret')),
    pid: u32('tgid'),
    startTime: ticksOfNs(u64('startNs'), ticksPerSecond),
    comm: cStringAt(buf, f.comm0!.off, 16),
    ppid: u32('ptgid'),
    parentStartTime: ticksOfNs(u64('parentStartNs'), ticksPerSecond),
    ancestors: Array.from({ length: ANCESTOR_DEPTH }, (_, i) => u32(`anc${i}`)),
    cgroupId: u64('cgroupId'),
    mntNs: u32('mntNs'),
    path: pathLen > 0 ? cStringAt(buf, PATH_OFF, PATH_BOUND) : '',
    pathTruncated: pathLen < 0 || pathLen >= PATH_BOUND,
    bpfFd: attrSize >= 12 ? u32('bpfFd') : 0,
    fileFlags: attrSize >= 16 ? u32('fileFlags') : 0,
    pathFd: attrSize >= 20 ? s32('pathFd') : 0,
    kind: KIND_OF_CODE.get(u32('kind')) ?? 'unknown',
    id: u32('objId'),
  };
}
