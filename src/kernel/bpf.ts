// The bpf(2) syscall through koffi. Reading (OBJ_GET, GET_INFO_BY_FD, GET_NEXT_ID,
// GET_FD_BY_ID, PROG_QUERY) is what pinleak does at run time; creating (MAP_CREATE,
// PROG_LOAD, LINK_CREATE, OBJ_PIN) is what the tests and `demo` build worlds with.
import fs from 'node:fs';
import os from 'node:os';
import koffi, { type TypeObject } from 'koffi';
import {
  BpfCmd, BPF_F_RDONLY, ObjAttr, InfoAttr, IdAttr, MapCreateAttr, ProgLoadAttr, LinkCreateAttr,
  ProgQueryAttr, Insn, MapInfo, ProgInfo, LinkInfo, MAP_TYPES, PROG_TYPES,
  LINK_TYPES, LINK_TARGET_WORD, sizeOf,
} from './abi.js';
import type { ObjectKind } from '../model.js';
import { libc } from './libc.js';

const SYSCALL_BPF: Record<string, number> = { x64: 321, arm64: 280, riscv64: 280, s390x: 351, ppc64: 361, loong64: 280 };

const EINVAL = os.constants.errno.EINVAL;
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
}

export type ObjectDetails = MapDetails | ProgDetails | LinkDetails;

export function mapInfo(fd: number): MapDetails {
  const buf = infoByFd(fd, MapInfo, Buffer.alloc(sizeOf(MapInfo)));
  const i = koffi.decode(buf, MapInfo);
  return {
    kind: 'map', id: i.id, name: decodeName(i.name), type: MAP_TYPES[i.type] ?? `type_${i.type}`,
    keySize: i.key_size, valueSize: i.value_size, maxEntries: i.max_entries, flags: i.map_flags,
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
      kind: 'prog', id: i.id, name: decodeName(i.name), type: PROG_TYPES[i.type] ?? `type_${i.type}`,
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
  if (t) {
    const word = BigInt(i[t.word]);
    const value = t.bits === 32 ? word & 0xffffffffn : word;
    defunct = value === 0n;
    target = defunct ? null : `${t.what} ${value}`;
  }
  return { kind: 'link', id: i.id, name: '', type, progId: i.prog_id, defunct, target };
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

/** BPF_*_GET_FD_BY_ID; null when the object went away in between. */
export function fdById(kind: 'map' | 'prog' | 'link', id: number): number | null {
  try {
    const flags = kind === 'map' ? BPF_F_RDONLY : 0;
    return bpf(FD_BY_ID[kind], IdAttr, { id, next_id: 0, open_flags: flags }, `BPF_${kind.toUpperCase()}_GET_FD_BY_ID`, String(id)).ret;
  } catch (e) {
    if (e instanceof KernelError && e.code === 'ENOENT') return null;
    throw e;
  }
}

/** Program ids attached to a cgroup (or other target fd) for one attach type. */
export function progQuery(targetFd: number, attachType: number): number[] {
  let room = 64;
  for (;;) {
    const ids = new Uint32Array(room);
    try {
      const { attr } = bpf(BpfCmd.PROG_QUERY, ProgQueryAttr,
        { target_fd: targetFd, attach_type: attachType, prog_ids: addr(new Uint8Array(ids.buffer)), prog_cnt: room },
        'BPF_PROG_QUERY');
      const cnt = koffi.decode(attr, ProgQueryAttr).prog_cnt as number;
      return Array.from(ids.subarray(0, Math.min(cnt, room)));
    } catch (e) {
      if (e instanceof KernelError && e.code === 'ENOSPC') {
        room *= 4;
        continue;
      }
      throw e;
    }
  }
}

// ---- creating objects (tests, demo) ----

export function mapCreate(opts: { type: number; keySize: number; valueSize: number; maxEntries: number; flags?: number; name: string }): number {
  const name = new Uint8Array(16);
  name.set(Buffer.from(opts.name.slice(0, 15)));
  return bpf(BpfCmd.MAP_CREATE, MapCreateAttr, {
    map_type: opts.type, key_size: opts.keySize, value_size: opts.valueSize,
    max_entries: opts.maxEntries, map_flags: opts.flags ?? 0, inner_map_fd: 0, numa_node: 0, map_name: name,
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
  const name = new Uint8Array(16);
  name.set(Buffer.from(opts.name.slice(0, 15)));
  return bpf(BpfCmd.PROG_LOAD, ProgLoadAttr, {
    prog_type: opts.type, insn_cnt: opts.insns.length, insns: addr(insns), license: addr(license),
    log_level: 0, log_size: 0, log_buf: 0, kern_version: 0, prog_flags: 0, prog_name: name,
    prog_ifindex: 0, expected_attach_type: opts.expectedAttachType ?? 0,
  }, 'BPF_PROG_LOAD', opts.name).ret;
}

/** A program that returns 1; with `mapFd`, it also loads that map (so the map is in its map_ids). */
export function trivialProgram(mapFd?: number): InsnSpec[] {
  const insns: InsnSpec[] = [];
  if (mapFd !== undefined) {
    // BPF_LD_IMM64 r1, map (src_reg = BPF_PSEUDO_MAP_FD), two slots
    insns.push({ code: 0x18, dst: 1, src: 1, imm: mapFd }, { code: 0 });
  }
  insns.push({ code: 0xb7, dst: 0, imm: 1 }); // r0 = 1
  insns.push({ code: 0x95 }); // exit
  return insns;
}

export function linkCreate(progFd: number, targetFd: number, attachType: number): number {
  return bpf(BpfCmd.LINK_CREATE, LinkCreateAttr, { prog_fd: progFd, target_fd: targetFd, attach_type: attachType, flags: 0 }, 'BPF_LINK_CREATE').ret;
}
