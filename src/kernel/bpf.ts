// The bpf(2) syscall through koffi. Reading (OBJ_GET, GET_INFO_BY_FD, GET_NEXT_ID,
// GET_FD_BY_ID, PROG_QUERY) is what pinleak does at run time; creating (MAP_CREATE,
// PROG_LOAD, LINK_CREATE, OBJ_PIN) is what the tests and `demo` build worlds with.
import fs from 'node:fs';
import os from 'node:os';
import koffi, { type TypeObject } from 'koffi';
import {
  BpfCmd, BPF_F_RDONLY, BPF_F_PATH_FD, ProgBindMapAttr, ObjAttr, InfoAttr, IdAttr, MapCreateAttr, ProgLoadAttr, LinkCreateAttr,
  ProgQueryAttr, Insn, MapInfo, ProgInfo, LinkInfo, mapTypeName, progTypeName,
  LINK_TYPES, LINK_TARGET_WORD, sizeOf, MapElemAttr, BtfLoadAttr, BPF_ANY, TaskFdQueryAttr, TASK_FD_TYPES, ProgAttachAttr,
  ProgTestRunAttr, UPROBE_MULTI_PID_WORD, SYSCALL_PIDFD_OPEN, SYSCALL_PIDFD_GETFD, UprobeMultiLinkAttr,
  PerfEventAttr, PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC, SYSCALL_PERF_EVENT_OPEN, AttachType, SYSCALL_BPF, BPF_OBJ_NAME_LEN,
  BpfClass, BpfMode, BpfSize, BpfSrc, BpfAluOp, BpfJmpOp, BPF_PSEUDO_MAP_FD,
} from './abi.js';
import type { ObjectKind } from '../model.js';
import { libc } from './libc.js';

const EINVAL = os.constants.errno.EINVAL;
const ENOENT = os.constants.errno.ENOENT;
const errnoNames = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, num]) => [num, name]),
);

/** A failed syscall, with its errno by name so callers can branch on `code`. */
export class KernelError extends Error {
  constructor(readonly op: string, readonly errno: number, readonly target?: string) {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    super(`${op}${target ? ` ${target}` : ''}: ${code} (${errnoMessage(errno)})`);
    this.code = code;
  }
  readonly code: string;
}

function errnoMessage(errno: number): string {
  const messages: Record<string, string> = {
    EPERM: 'operation not permitted', EACCES: 'permission denied', ENOENT: 'no such file or object',
    EINVAL: 'invalid argument', EBADF: 'bad file descriptor', ENOTDIR: 'not a directory',
    ELOOP: 'too many symbolic links', ENOSPC: 'no space', E2BIG: 'argument too big',
    EOPNOTSUPP: 'not supported', ENOTSUP: 'not supported', EFAULT: 'bad address',
  };
  return messages[errnoNames.get(errno) ?? ''] ?? `errno ${errno}`;
}

let sys: ((nr: number, cmd: number, attr: Buffer, size: number) => number) | null = null;
let bpfNr = 0;

function syscallFn() {
  if (!sys) {
    const nr = SYSCALL_BPF[process.arch];
    if (nr === undefined) throw new Error(`bpf(2) syscall number unknown for architecture ${process.arch}`);
    bpfNr = nr;
    sys = libc().func('long syscall(long nr, long cmd, void *attr, unsigned long size)') as unknown as typeof sys;
  }
  return sys!;
}

const sizes = new Map<TypeObject, number>();

/** Calls bpf(cmd) with `type` encoded from `value`; a negative `ret` comes with its errno. */
export function bpfRaw(cmd: number, type: TypeObject, value: object): { ret: number; errno: number; attr: Buffer } {
  const fn = syscallFn();
  let size = sizes.get(type);
  if (size === undefined) sizes.set(type, (size = sizeOf(type)));
  const attr = Buffer.alloc(size);
  koffi.encode(attr, type, value);
  const ret = Number(fn(bpfNr, cmd, attr, size));
  return { ret, errno: ret < 0 ? koffi.errno() : 0, attr };
}

/** bpfRaw that throws a KernelError naming the operation. */
export function bpf(cmd: number, type: TypeObject, value: object, op: string, target?: string): { ret: number; attr: Buffer } {
  const r = bpfRaw(cmd, type, value);
  if (r.ret < 0) throw new KernelError(op, r.errno, target);
  return r;
}

export function cString(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

/** A map's or program's name field: at most BPF_OBJ_NAME_LEN - 1 bytes, NUL-padded. */
export function objName(name: string): Uint8Array {
  const field = new Uint8Array(BPF_OBJ_NAME_LEN);
  field.set(Buffer.from(name).subarray(0, BPF_OBJ_NAME_LEN - 1));
  return field;
}

export function addr(buf: Buffer | Uint8Array): bigint {
  return koffi.address(buf);
}

export function decodeName(raw: Uint8Array): string {
  const end = raw.indexOf(0);
  return Buffer.from(raw.subarray(0, end < 0 ? raw.length : end)).toString('utf8');
}

export function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** BPF_OBJ_GET. Maps open read-only; programs and links only open read-write (kernel rule), so retry on EINVAL. */
export function objGet(path: string): number {
  const p = cString(path);
  const first = bpfRaw(BpfCmd.OBJ_GET, ObjAttr, { pathname: addr(p), bpf_fd: 0, file_flags: BPF_F_RDONLY, path_fd: 0 });
  if (first.ret >= 0) return first.ret;
  if (first.errno !== EINVAL) throw new KernelError('BPF_OBJ_GET', first.errno, path);
  return bpf(BpfCmd.OBJ_GET, ObjAttr, { pathname: addr(p), bpf_fd: 0, file_flags: 0, path_fd: 0 }, 'BPF_OBJ_GET', path).ret;
}

/**
 * BPF_OBJ_GET of `name` in the directory `dirFd` (BPF_F_PATH_FD, 6.5+): no path is walked
 * but the name, where /proc/self/fd/<dirFd>/<name> resolves a magic link first (2.3 us
 * more a pin). An older kernel refuses the flag (EINVAL): then through procfs, from then on.
 */
export function objGetAt(dirFd: number, name: string): number {
  if (pathFdRefused) return objGet(`/proc/self/fd/${dirFd}/${name}`);
  const p = cString(name);
  // maps open read-only; programs and links only read-write (EINVAL)
  for (const flags of [BPF_F_RDONLY | BPF_F_PATH_FD, BPF_F_PATH_FD]) {
    const r = bpfRaw(BpfCmd.OBJ_GET, ObjAttr, { pathname: addr(p), bpf_fd: 0, file_flags: flags, path_fd: dirFd });
    if (r.ret >= 0) return r.ret;
    if (r.errno !== EINVAL) throw new KernelError('BPF_OBJ_GET', r.errno, name);
  }
  // both refused: the kernel does not know BPF_F_PATH_FD, or the object is not one BPF_OBJ_GET opens
  const fd = objGet(`/proc/self/fd/${dirFd}/${name}`);
  pathFdRefused = true;
  return fd;
}
let pathFdRefused = false;

export function objPin(fd: number, path: string): void {
  const p = cString(path);
  bpf(BpfCmd.OBJ_PIN, ObjAttr, { pathname: addr(p), bpf_fd: fd, file_flags: 0, path_fd: 0 }, 'BPF_OBJ_PIN', path);
}

/** What kind of BPF object an fd of this process refers to, from its anon inode name. */
export function fdKind(fd: number): ObjectKind {
  let target: string;
  try {
    target = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return 'unknown';
  }
  return kindOfFdTarget(target) ?? 'unknown';
}

/** anon_inode:bpf-map, bpf-prog, bpf_link (when created), bpf-link (re-opened from a pin or id). */
export function kindOfFdTarget(target: string): ObjectKind | null {
  switch (target) {
    case 'anon_inode:bpf-map': return 'map';
    case 'anon_inode:bpf-prog': return 'prog';
    case 'anon_inode:bpf_link':
    case 'anon_inode:bpf-link': return 'link';
    default: return null;
  }
}

function infoByFd(fd: number, type: TypeObject, init: Buffer): Buffer {
  bpf(BpfCmd.OBJ_GET_INFO_BY_FD, InfoAttr, { bpf_fd: fd, info_len: init.length, info: addr(init) }, 'BPF_OBJ_GET_INFO_BY_FD');
  return init;
}

export interface MapDetails {
  kind: 'map';
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** a struct_ops map's value type in vmlinux BTF (struct bpf_struct_ops_<name>); 0 for other maps */
  vmlinuxValueTypeId: number;
}

export interface ProgDetails {
  kind: 'prog';
  id: number;
  name: string;
  type: string;
  mapIds: number[];
  loadTimeNs: bigint;
  createdByUid: number;
}

export interface LinkDetails {
  kind: 'link';
  id: number;
  /** empty: the kernel gives links no name; callers use the program's */
  name: string;
  type: string;
  progId: number;
  /** the attachment target has gone (cgroup removed, interface or netns destroyed) */
  defunct: boolean;
  target: string | null;
  /**
   * uprobe_multi: the pid of the process it probes as the kernel reports it now; 0 when
   * it probes every process or its process has exited (the kernel cannot tell which).
   */
  targetPid?: number;
  /** sockmap: the sock map the program is attached to */
  mapId?: number;
  /** the target's number (cgroup id, netns inode, ifindex), for the link types of LINK_TARGET_WORD */
  targetId?: number;
  /** netns, tcx and netkit links: the attach type, after the target in the link info */
  attachType?: number;
}

export type ObjectDetails = MapDetails | ProgDetails | LinkDetails;

export function mapInfo(fd: number): MapDetails {
  const buf = infoByFd(fd, MapInfo, Buffer.alloc(sizeOf(MapInfo)));
  const i = koffi.decode(buf, MapInfo);
  return {
    kind: 'map', id: i.id, name: decodeName(i.name), type: mapTypeName(i.type),
    keySize: i.key_size, valueSize: i.value_size, maxEntries: i.max_entries, flags: i.map_flags,
    vmlinuxValueTypeId: i.btf_vmlinux_value_type_id,
  };
}

export function progInfo(fd: number): ProgDetails {
  let room = 16;
  for (;;) {
    const ids = new Uint32Array(room);
    const buf = Buffer.alloc(sizeOf(ProgInfo));
    koffi.encode(buf, ProgInfo, { nr_map_ids: room, map_ids: addr(new Uint8Array(ids.buffer)) });
    infoByFd(fd, ProgInfo, buf);
    const i = koffi.decode(buf, ProgInfo);
    if (i.nr_map_ids > room) {
      room = i.nr_map_ids;
      continue;
    }
    return {
      kind: 'prog', id: i.id, name: decodeName(i.name), type: progTypeName(i.type),
      mapIds: Array.from(ids.subarray(0, i.nr_map_ids)), loadTimeNs: BigInt(i.load_time), createdByUid: i.created_by_uid,
    };
  }
}

export function linkInfo(fd: number): LinkDetails {
  const buf = infoByFd(fd, LinkInfo, Buffer.alloc(sizeOf(LinkInfo)));
  const i = koffi.decode(buf, LinkInfo);
  const type = LINK_TYPES[i.type] ?? `type_${i.type}`;
  const t = LINK_TARGET_WORD[type];
  let defunct = false;
  let target: string | null = null;
  const out: LinkDetails = { kind: 'link', id: i.id, name: '', type, progId: i.prog_id, defunct, target };
  if (t) {
    const word = BigInt(i[t.word]);
    const value = t.bits === 32 ? word & 0xffffffffn : word;
    out.defunct = value === 0n;
    out.target = out.defunct ? null : `${t.what} ${value}`;
    out.targetId = Number(value);
    if (t.bits === 32 && type !== 'xdp') out.attachType = Number(word >> 32n);
  }
  if (type === 'uprobe_multi') out.targetPid = Number(BigInt(i[UPROBE_MULTI_PID_WORD]) >> 32n);
  // sockmap { map_id, attach_type }, struct_ops { map_id }: the map comes first
  if (type === 'sockmap' || type === 'struct_ops') out.mapId = Number(BigInt(i.u0) & 0xffffffffn);
  return out;
}

export function objectInfo(fd: number, kind: ObjectKind): ObjectDetails | null {
  switch (kind) {
    case 'map': return mapInfo(fd);
    case 'prog': return progInfo(fd);
    case 'link': return linkInfo(fd);
    default: return null;
  }
}

const NEXT_ID: Record<'map' | 'prog' | 'link', number> = {
  map: BpfCmd.MAP_GET_NEXT_ID, prog: BpfCmd.PROG_GET_NEXT_ID, link: BpfCmd.LINK_GET_NEXT_ID,
};
const FD_BY_ID: Record<'map' | 'prog' | 'link', number> = {
  map: BpfCmd.MAP_GET_FD_BY_ID, prog: BpfCmd.PROG_GET_FD_BY_ID, link: BpfCmd.LINK_GET_FD_BY_ID,
};

/** All ids of one kind currently loaded, via BPF_*_GET_NEXT_ID. */
export function allIds(kind: 'map' | 'prog' | 'link'): number[] {
  const ids: number[] = [];
  let start = 0;
  for (;;) {
    try {
      const { attr } = bpf(NEXT_ID[kind], IdAttr, { id: start, next_id: 0, open_flags: 0 }, `BPF_${kind.toUpperCase()}_GET_NEXT_ID`);
      const next = koffi.decode(attr, IdAttr).next_id as number;
      ids.push(next);
      start = next;
    } catch (e) {
      if (e instanceof KernelError && e.code === 'ENOENT') return ids;
      throw e;
    }
  }
}

/** BPF_*_GET_FD_BY_ID; null when the object went away in between. Maps open read-only unless `writable` (tests change maps). */
export function fdById(kind: 'map' | 'prog' | 'link', id: number, writable = false): number | null {
  try {
    const flags = kind === 'map' && !writable ? BPF_F_RDONLY : 0;
    return bpf(FD_BY_ID[kind], IdAttr, { id, next_id: 0, open_flags: flags }, `BPF_${kind.toUpperCase()}_GET_FD_BY_ID`, String(id)).ret;
  } catch (e) {
    if (e instanceof KernelError && e.code === 'ENOENT') return null;
    throw e;
  }
}

/** Program ids attached to a cgroup (or other target fd) for one attach type. */
export function progQuery(targetFd: number, attachType: number): number[] {
  return query(targetFd, attachType, false).progIds;
}

/**
 * BPF_PROG_QUERY with link ids: for tcx and netkit (target = ifindex, resolved in the
 * calling thread's network namespace) linkIds[i] is 0 where progIds[i] has no link.
 */
export function progQueryLinks(target: number, attachType: number): { progIds: number[]; linkIds: number[] } {
  return query(target, attachType, true);
}

function query(target: number, attachType: number, withLinks: boolean): { progIds: number[]; linkIds: number[] } {
  let room = 64;
  for (;;) {
    const ids = new Uint32Array(room);
    const links = new Uint32Array(room);
    try {
      const { attr } = bpf(BpfCmd.PROG_QUERY, ProgQueryAttr,
        {
          target_fd: target, attach_type: attachType, prog_ids: addr(new Uint8Array(ids.buffer)), prog_cnt: room,
          link_ids: withLinks ? addr(new Uint8Array(links.buffer)) : 0,
        },
        'BPF_PROG_QUERY');
      const cnt = Math.min(koffi.decode(attr, ProgQueryAttr).prog_cnt as number, room);
      return { progIds: Array.from(ids.subarray(0, cnt)), linkIds: withLinks ? Array.from(links.subarray(0, cnt)) : [] };
    } catch (e) {
      if (e instanceof KernelError && e.code === 'ENOSPC') {
        room *= 4;
        continue;
      }
      throw e;
    }
  }
}

/** BPF_MAP_LOOKUP_ELEM: the value, or null for an empty slot (ENOENT). */
export function mapLookup(mapFd: number, key: Buffer, valueSize: number): Buffer | null {
  const value = Buffer.alloc(valueSize);
  const r = bpfRaw(BpfCmd.MAP_LOOKUP_ELEM, MapElemAttr, { map_fd: mapFd, key: addr(key), value: addr(value), flags: 0 });
  if (r.ret >= 0) return value;
  if (r.errno === ENOENT) return null;
  throw new KernelError('BPF_MAP_LOOKUP_ELEM', r.errno);
}

/** BPF_MAP_GET_NEXT_KEY: the key after `key` (the first key when null), or null at the end. */
export function mapNextKey(mapFd: number, key: Buffer | null, keySize: number): Buffer | null {
  const next = Buffer.alloc(keySize);
  const r = bpfRaw(BpfCmd.MAP_GET_NEXT_KEY, MapElemAttr, { map_fd: mapFd, key: key ? addr(key) : 0, value: addr(next), flags: 0 });
  if (r.ret >= 0) return next;
  if (r.errno === ENOENT) return null;
  throw new KernelError('BPF_MAP_GET_NEXT_KEY', r.errno);
}

export interface PerfEventProg {
  progId: number;
  /** tracepoint, kprobe, uprobe, ... (enum bpf_task_fd_type) */
  fdType: string;
  /** the tracepoint, function or file name */
  name: string;
}

/**
 * BPF_TASK_FD_QUERY on another process's fd: the program its perf event runs. null when
 * the event has no program (ENOENT); throws EOPNOTSUPP for a perf_event-type program,
 * which the kernel does not name (bpf_get_perf_event_info).
 */
export function taskFdQuery(pid: number, fd: number): PerfEventProg | null {
  const buf = Buffer.alloc(256);
  const r = bpfRaw(BpfCmd.TASK_FD_QUERY, TaskFdQueryAttr, { pid, fd, flags: 0, buf_len: buf.length, buf: addr(buf) });
  if (r.ret < 0) {
    if (r.errno === ENOENT) return null;
    throw new KernelError('BPF_TASK_FD_QUERY', r.errno, `pid ${pid} fd ${fd}`);
  }
  const a = koffi.decode(r.attr, TaskFdQueryAttr);
  return { progId: a.prog_id, fdType: TASK_FD_TYPES[a.fd_type] ?? `type_${a.fd_type}`, name: decodeName(buf) };
}

let pidfdCall: ((nr: number, a: number, b: number, c: number) => number) | null = null;

/**
 * A duplicate of another process's fd (pidfd_open + pidfd_getfd): the same open file, so
 * the object gains no user reference and closing it takes none away.
 */
export function duplicateFd(pid: number, fd: number): number {
  pidfdCall ??= libc().func('long syscall(long nr, long a, long b, long c)') as unknown as typeof pidfdCall;
  const pidfd = Number(pidfdCall!(SYSCALL_PIDFD_OPEN, pid, 0, 0));
  if (pidfd < 0) throw new KernelError('pidfd_open', koffi.errno(), `pid ${pid}`);
  try {
    const dup = Number(pidfdCall!(SYSCALL_PIDFD_GETFD, pidfd, fd, 0));
    if (dup < 0) throw new KernelError('pidfd_getfd', koffi.errno(), `pid ${pid} fd ${fd}`);
    return dup;
  } finally {
    closeFd(pidfd);
  }
}

/**
 * BPF_MAP_LOOKUP_AND_DELETE_ELEM on a queue or stack map (no key): the next value into
 * `value`, false when the map is empty.
 */
export function mapPop(mapFd: number, value: Buffer): boolean {
  const r = bpfRaw(BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM, MapElemAttr, { map_fd: mapFd, key: 0n, value: addr(value), flags: 0 });
  if (r.ret >= 0) return true;
  if (r.errno === ENOENT) return false;
  throw new KernelError('BPF_MAP_LOOKUP_AND_DELETE_ELEM', r.errno);
}

export function mapDelete(fd: number, key: Buffer): void {
  bpf(BpfCmd.MAP_DELETE_ELEM, MapElemAttr, { map_fd: fd, key: addr(key), value: 0n, flags: 0 }, 'BPF_MAP_DELETE_ELEM');
}

// ---- creating objects (tests, demo) ----

export function mapUpdate(mapFd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  bpf(BpfCmd.MAP_UPDATE_ELEM, MapElemAttr, { map_fd: mapFd, key: addr(key), value: addr(value), flags }, 'BPF_MAP_UPDATE_ELEM');
}

/** BPF_PROG_TEST_RUN once on a zeroed packet of `size` bytes; the program's return value. */
export function progTestRun(progFd: number, size = 64): number {
  const data = Buffer.alloc(size);
  const { attr } = bpf(BpfCmd.PROG_TEST_RUN, ProgTestRunAttr,
    { prog_fd: progFd, data_size_in: size, data_in: addr(data), repeat: 1 }, 'BPF_PROG_TEST_RUN');
  return koffi.decode(attr, ProgTestRunAttr).retval as number;
}

export function mapCreate(opts: {
  type: number; keySize: number; valueSize: number; maxEntries: number; flags?: number; name: string; innerMapFd?: number;
  /** struct_ops maps: the BTF id of struct bpf_struct_ops_<name> in vmlinux, and a BTF object's fd (the kernel wants one) */
  btfVmlinuxValueTypeId?: number;
  btfFd?: number;
}): number {
  return bpf(BpfCmd.MAP_CREATE, MapCreateAttr, {
    map_type: opts.type, key_size: opts.keySize, value_size: opts.valueSize,
    max_entries: opts.maxEntries, map_flags: opts.flags ?? 0, inner_map_fd: opts.innerMapFd ?? 0, numa_node: 0, map_name: objName(opts.name),
    btf_fd: opts.btfFd ?? 0, btf_vmlinux_value_type_id: opts.btfVmlinuxValueTypeId ?? 0,
  }, 'BPF_MAP_CREATE', opts.name).ret;
}

export interface InsnSpec { code: number; dst?: number; src?: number; off?: number; imm?: number }

export function progLoad(opts: { type: number; insns: InsnSpec[]; name: string; expectedAttachType?: number; license?: string }): number {
  const insnSize = sizeOf(Insn);
  const insns = Buffer.alloc(insnSize * opts.insns.length);
  opts.insns.forEach((ins, i) => {
    koffi.encode(insns, i * insnSize, Insn, {
      code: ins.code, regs: ((ins.src ?? 0) << 4) | (ins.dst ?? 0), off: ins.off ?? 0, imm: ins.imm ?? 0,
    });
  });
  const license = cString(opts.license ?? 'GPL');
  const load = (log: Buffer | null) => bpfRaw(BpfCmd.PROG_LOAD, ProgLoadAttr, {
    prog_type: opts.type, insn_cnt: opts.insns.length, insns: addr(insns), license: addr(license),
    log_level: log ? 1 : 0, log_size: log?.length ?? 0, log_buf: log ? addr(log) : 0, kern_version: 0, prog_flags: 0,
    prog_name: objName(opts.name), prog_ifindex: 0, expected_attach_type: opts.expectedAttachType ?? 0,
  });
  const first = load(null);
  if (first.ret >= 0) return first.ret;
  // a refused program: load again with the verifier's log, to say why
  const log = Buffer.alloc(64 * 1024);
  const again = load(log);
  if (again.ret >= 0) return again.ret;
  const text = decodeName(log).trim().split('\n').slice(-3).join(' | ');
  throw new KernelError('BPF_PROG_LOAD', again.errno, `${opts.name}${text ? ` (verifier: ${text})` : ''}`);
}

/** A program that returns `ret` (1); with `mapFd`, it also loads that map (so the map is in its map_ids). */
export function trivialProgram(mapFd?: number, ret = 1): InsnSpec[] {
  const insns: InsnSpec[] = [];
  if (mapFd !== undefined) {
    // BPF_LD_IMM64 r1, map (src_reg = BPF_PSEUDO_MAP_FD), two slots
    insns.push({ code: BpfClass.LD | BpfMode.IMM | BpfSize[8], dst: 1, src: BPF_PSEUDO_MAP_FD, imm: mapFd }, { code: 0 });
  }
  insns.push({ code: BpfClass.ALU64 | BpfAluOp.mov | BpfSrc.K, dst: 0, imm: ret }); // r0 = ret
  insns.push({ code: BpfClass.JMP | BpfJmpOp.exit }); // exit
  return insns;
}

/** BPF_PROG_ATTACH: an attachment without a link (tcx by ifindex in the caller's netns, flow dissector of the caller's netns, a sock map's programs by its fd). */
export function progAttach(progFd: number, target: number, attachType: number): void {
  bpf(BpfCmd.PROG_ATTACH, ProgAttachAttr, { target_fd: target, attach_bpf_fd: progFd, attach_type: attachType }, 'BPF_PROG_ATTACH');
}

/** BPF_BTF_LOAD: a BTF object from raw BTF bytes (a struct_ops map must name one in btf_fd). */
export function btfLoad(raw: Buffer): number {
  return bpf(BpfCmd.BTF_LOAD, BtfLoadAttr, { btf: addr(raw), btf_size: raw.length }, 'BPF_BTF_LOAD').ret;
}

/** BPF_PROG_BIND_MAP: the program uses one more map from now on (libbpf does this for .rodata of some loaders). */
export function progBindMap(progFd: number, mapFd: number): void {
  bpf(BpfCmd.PROG_BIND_MAP, ProgBindMapAttr, { prog_fd: progFd, map_fd: mapFd, flags: 0 }, 'BPF_PROG_BIND_MAP');
}

export function linkCreate(progFd: number, targetFd: number, attachType: number): number {
  return bpf(BpfCmd.LINK_CREATE, LinkCreateAttr, { prog_fd: progFd, target_fd: targetFd, attach_type: attachType, flags: 0 }, 'BPF_LINK_CREATE').ret;
}

/** A uprobe_multi link on `offsets` of the ELF file `path`, in process `pid` only (0: every process). */
export function uprobeMultiLink(progFd: number, path: string, offsets: number[], pid: number): number {
  const p = cString(path);
  const offs = new BigUint64Array(offsets.map(BigInt));
  return bpf(BpfCmd.LINK_CREATE, UprobeMultiLinkAttr, {
    prog_fd: progFd, target_fd: 0, attach_type: AttachType.TRACE_UPROBE_MULTI, flags: 0, path: addr(p),
    offsets: addr(new Uint8Array(offs.buffer)), ref_ctr_offsets: 0, cookies: 0, cnt: offsets.length, uflags: 0, pid,
  }, 'BPF_LINK_CREATE', `uprobe_multi ${path}`).ret;
}

let perfCalls: { open: (nr: number, attr: Buffer, pid: number, cpu: number, group: number, flags: number) => number; ioctl: (fd: number, req: number, arg: number) => number } | null = null;

/** perf_event_open(2) of one event, sampling every `samplePeriod`; with `progFd`, running that program (PERF_EVENT_IOC_SET_BPF). */
export function perfEventOpen(opts: { type: number; config: number; pid: number; cpu: number; samplePeriod?: number; progFd?: number }): number {
  const nr = SYSCALL_PERF_EVENT_OPEN[process.arch];
  if (nr === undefined) throw new Error(`perf_event_open syscall number unknown for architecture ${process.arch}`);
  perfCalls ??= {
    open: libc().func('long syscall(long nr, void *attr, long pid, long cpu, long group, unsigned long flags)') as never,
    ioctl: libc().func('int ioctl(int fd, unsigned long req, long arg)') as never,
  };
  const attr = Buffer.alloc(sizeOf(PerfEventAttr));
  koffi.encode(attr, PerfEventAttr, {
    type: opts.type, size: attr.length, config: BigInt(opts.config), sample_period: BigInt(opts.samplePeriod ?? 1_000_000),
    sample_type: 0n, read_format: 0n, flags: 0n, wakeup_events: 0, bp_type: 0, config1: 0n,
  });
  const fd = Number(perfCalls.open(nr, attr, opts.pid, opts.cpu, -1, PERF_FLAG_FD_CLOEXEC));
  if (fd < 0) throw new KernelError('perf_event_open', koffi.errno());
  if (opts.progFd !== undefined && perfCalls.ioctl(fd, PERF_EVENT_IOC_SET_BPF, opts.progFd) < 0) {
    const errno = koffi.errno();
    closeFd(fd);
    throw new KernelError('PERF_EVENT_IOC_SET_BPF', errno);
  }
  return fd;
}
