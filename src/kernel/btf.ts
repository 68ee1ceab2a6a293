// A small reader of raw BTF (the kernel's type information, /sys/kernel/btf/vmlinux):
// enough to assemble BPF programs against the running kernel without a compiler.
//
// vmlinux BTF holds 100k+ types in ~5.5 MB. Parsing keeps the file as one Buffer and
// makes a single pass that records where each type starts (a Uint32Array); names are
// indexed per kind on the first lookup of that kind, and members are decoded only for
// the types asked about.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readBootId } from './procfs.js';
import { packageVersion } from '../package.js';
import { KernelError } from './bpf.js';
import {
  BTF_MAGIC, BtfKind, BTF_VMLINUX_PATH, BTF_HEADER_LEN, BTF_TYPE_LEN, BTF_INFO_KIND_SHIFT, BTF_INFO_KIND_MASK,
  BTF_INFO_VLEN_MASK, BTF_INFO_KIND_FLAG,
} from './abi.js';

export type BtfKindName = keyof typeof BtfKind;
const KIND_NAMES = Object.fromEntries(Object.entries(BtfKind).map(([k, v]) => [v, k])) as Record<number, BtfKindName>;

/** A BTF lookup or parse that failed: the kernel's BTF lacks what pinleak needs (or is not BTF). */
export class BtfError extends KernelError {
  constructor(what: string) {
    super('BTF', os.constants.errno.ENOENT);
    this.message = `BTF: ${what}`;
  }
}

export interface BtfMember {
  /** '' for an anonymous struct or union member */
  name: string;
  bitOffset: number;
  /** 0 unless a bitfield */
  bitSize: number;
  /** the member's declared type */
  typeId: number;
  /** the type behind typedef/const/volatile/restrict/type_tag */
  resolvedId: number;
  /** a pointer to a function (a struct_ops slot, for example) */
  isFuncPtr: boolean;
}

/** Where a dotted path ends inside one struct: no pointer is crossed. */
export interface BtfField {
  offset: number;
  size: number;
  /** resolved type of the field */
  typeId: number;
}


/** Bytes after the common part of a type (BTF_TYPE_LEN), by kind: the sizes of the btf_* records that follow. */
function trailerLength(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.int: return 4;
    case BtfKind.array: return 12;
    case BtfKind.struct:
    case BtfKind.union: return 12 * vlen;
    case BtfKind.enum: return 8 * vlen;
    case BtfKind.func_proto: return 8 * vlen;
    case BtfKind.var: return 4;
    case BtfKind.datasec: return 12 * vlen;
    case BtfKind.decl_tag: return 4;
    case BtfKind.enum64: return 12 * vlen;
    case BtfKind.ptr:
    case BtfKind.fwd:
    case BtfKind.typedef:
    case BtfKind.volatile:
    case BtfKind.const:
    case BtfKind.restrict:
    case BtfKind.func:
    case BtfKind.float:
    case BtfKind.type_tag: return 0;
    default: throw new BtfError(`unknown type kind ${kind}`);
  }
}

const MODIFIERS = new Set<number>([BtfKind.typedef, BtfKind.const, BtfKind.volatile, BtfKind.restrict, BtfKind.type_tag]);
const MAX_CHAIN = 64; // typedef/modifier chains and nested anonymous members are short; a loop is malformed BTF

export class Btf {
  /** offsets[id] = byte offset of type `id` in buf; id 0 is void */
  private readonly offsets: Uint32Array;
  private readonly strStart: number;
  private readonly strEnd: number;
  /** lookups made so far, by `kind:name` */
  private readonly found = new Map<string, number | null>();
  /** the file as 32-bit words, when it is little-endian and aligned (every u32 read is) */
  private readonly words: Uint32Array | null;
  private readonly memberCache = new Map<number, BtfMember[]>();
  private readonly enumCache = new Map<string, { name: string; value: number }[]>();
  private readonly le: boolean;

  /** Parses raw BTF; `buf` is kept (not copied) and must not change. */
  constructor(private readonly buf: Buffer) {
    if (buf.length < BTF_HEADER_LEN) throw new BtfError('file too short');
    const magicLe = buf.readUInt16LE(0);
    if (magicLe === BTF_MAGIC) this.le = true;
    else if (buf.readUInt16BE(0) === BTF_MAGIC) this.le = false;
    else throw new BtfError(`bad magic 0x${magicLe.toString(16)}`);
    this.words = null;
    const hdrLen = this.u32(4);
    const typeOff = this.u32(8), typeLen = this.u32(12), strOff = this.u32(16), strLen = this.u32(20);
    const typeStart = hdrLen + typeOff, typeEnd = typeStart + typeLen;
    this.strStart = hdrLen + strOff;
    this.strEnd = this.strStart + strLen;
    if (typeEnd > buf.length || this.strEnd > buf.length || hdrLen < BTF_HEADER_LEN) throw new BtfError('sections beyond the end of the file');
    if (this.le && buf.byteOffset % 4 === 0 && typeStart % 4 === 0) this.words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);

    // one pass: where each type starts
    let offsets = new Uint32Array(1024);
    let n = 1;
    for (let p = typeStart; p < typeEnd;) {
      if (p + BTF_TYPE_LEN > typeEnd) throw new BtfError('truncated type section');
      if (n === offsets.length) {
        const bigger = new Uint32Array(offsets.length * 2);
        bigger.set(offsets);
        offsets = bigger;
      }
      offsets[n++] = p;
      const info = this.u32(p + 4);
      p += BTF_TYPE_LEN + trailerLength((info >>> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK, info & BTF_INFO_VLEN_MASK);
      if (p > typeEnd) throw new BtfError('truncated type section');
    }
    this.offsets = offsets.slice(0, n);
  }

  static load(path = BTF_VMLINUX_PATH): Btf {
    let raw: Buffer;
    try {
      raw = fs.readFileSync(path);
    } catch (e) {
      throw new BtfError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    return new Btf(raw);
  }

  /** Number of type ids, void (0) included. */
  get typeCount(): number {
    return this.offsets.length;
  }

  private u32(at: number): number {
    if (this.words && at % 4 === 0) return this.words[at >> 2];
    return this.le ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }

  private s32(at: number): number {
    return this.le ? this.buf.readInt32LE(at) : this.buf.readInt32BE(at);
  }

  private at(id: number): number {
    if (!Number.isInteger(id) || id <= 0 || id >= this.offsets.length) throw new BtfError(`no type id ${id}`);
    return this.offsets[id];
  }

  private str(off: number): string {
    const start = this.strStart + off;
    if (start >= this.strEnd) return '';
    let end = start;
    while (end < this.strEnd && this.buf[end] !== 0) end++;
    return this.buf.toString('latin1', start, end);
  }

  private info(id: number): number {
    return this.u32(this.at(id) + 4);
  }

  kind(id: number): BtfKindName {
    if (id === 0) return 'void';
    return KIND_NAMES[(this.info(id) >>> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK];
  }

  name(id: number): string {
    return id === 0 ? '' : this.str(this.u32(this.at(id)));
  }

  private vlen(id: number): number {
    return this.info(id) & BTF_INFO_VLEN_MASK;
  }

  /** The `type` word: the referenced type of ptr, typedef, modifiers, func, var... */
  private ref(id: number): number {
    return this.u32(this.at(id) + 8);
  }

  /**
   * Type id by kind and name, or null; the first definition of a name wins, like libbpf.
   * A scan comparing raw bytes (no string is made for the ~126k names of vmlinux)
   * takes well under a millisecond; each answer is kept.
   */
  tryFind(kind: BtfKindName, name: string): number | null {
    const key = `${kind}:${name}`;
    const cached = this.found.get(key);
    if (cached !== undefined) return cached;
    const k = BtfKind[kind];
    const want = Buffer.from(name, 'latin1');
    let result: number | null = null;
    for (let id = 1; id < this.offsets.length; id++) {
      const p = this.offsets[id];
      if (((this.u32(p + 4) >>> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK) !== k) continue;
      const start = this.strStart + this.u32(p);
      const end = start + want.length;
      if (end >= this.strEnd || this.buf[end] !== 0 || this.buf[start] !== want[0]) continue;
      if (this.buf.compare(want, 0, want.length, start, end) === 0 && want.length > 0) {
        result = id;
        break;
      }
    }
    this.found.set(key, result);
    return result;
  }

  find(kind: BtfKindName, name: string): number {
    const id = this.tryFind(kind, name);
    if (id === null) throw new BtfError(`no ${kind} ${name}`);
    return id;
  }

  /** Skips typedef, const, volatile, restrict and type tags. */
  resolve(id: number): number {
    for (let i = 0; i < MAX_CHAIN; i++) {
      if (id === 0 || !MODIFIERS.has(BtfKind[this.kind(id)])) return id;
      id = this.ref(id);
    }
    throw new BtfError(`type ${id}: modifier chain too long`);
  }

  /** Size in bytes of a type (modifiers resolved). */
  size(id: number): number {
    const r = this.resolve(id);
    switch (this.kind(r)) {
      case 'int': case 'struct': case 'union': case 'enum': case 'enum64': case 'float': case 'datasec':
        return this.ref(r); // the size word
      case 'ptr': return 8;
      case 'array': {
        const a = this.array(r);
        return a.count * this.size(a.elemId);
      }
      default: throw new BtfError(`type ${id} (${this.kind(r)}) has no size`);
    }
  }

  /** The type a pointer points to (resolved), or null if not a pointer. */
  pointee(id: number): number | null {
    const r = this.resolve(id);
    return this.kind(r) === 'ptr' ? this.resolve(this.ref(r)) : null;
  }

  array(id: number): { elemId: number; count: number } {
    const r = this.resolve(id);
    if (this.kind(r) !== 'array') throw new BtfError(`type ${id} is not an array`);
    const p = this.at(r) + BTF_TYPE_LEN;
    return { elemId: this.u32(p), count: this.u32(p + 8) };
  }

  /** Members of a struct or union, in order; anonymous members are returned as they are. */
  members(id: number): BtfMember[] {
    const r = this.resolve(id);
    const cached = this.memberCache.get(r);
    if (cached) return cached;
    const kind = this.kind(r);
    if (kind !== 'struct' && kind !== 'union') throw new BtfError(`type ${id} (${this.name(r) || kind}) is not a struct or union`);
    const bitfields = (this.info(r) & BTF_INFO_KIND_FLAG) !== 0;
    const out: BtfMember[] = [];
    const base = this.at(r) + BTF_TYPE_LEN;
    for (let i = 0; i < this.vlen(r); i++) {
      const p = base + 12 * i;
      const typeId = this.u32(p + 4);
      const raw = this.u32(p + 8);
      const resolvedId = this.resolve(typeId);
      const target = this.pointee(resolvedId);
      out.push({
        name: this.str(this.u32(p)),
        bitOffset: bitfields ? raw & 0xffffff : raw,
        bitSize: bitfields ? raw >>> 24 : 0,
        typeId,
        resolvedId,
        isFuncPtr: target !== null && this.kind(target) === 'func_proto',
      });
    }
    this.memberCache.set(r, out);
    return out;
  }

  /** A member by name, looking through anonymous structs and unions; bit offset from the start of `id`. */
  private member(id: number, name: string, depth = 0): { bitOffset: number; bitSize: number; typeId: number } | null {
    if (depth > MAX_CHAIN) throw new BtfError(`type ${id}: anonymous members nested too deep`);
    for (const m of this.members(id)) {
      if (m.name === name) return { bitOffset: m.bitOffset, bitSize: m.bitSize, typeId: m.resolvedId };
      const k = this.kind(m.resolvedId);
      if (m.name === '' && (k === 'struct' || k === 'union')) {
        const inner = this.member(m.resolvedId, name, depth + 1);
        if (inner) return { ...inner, bitOffset: inner.bitOffset + m.bitOffset };
      }
    }
    return null;
  }

  /**
   * A field by dotted path inside one object (`f_path.dentry`, `refcnt.counter`).
   * Crossing a pointer needs a load: use `loadPath` for that.
   */
  field(structId: number, path: string): BtfField {
    let id = this.resolve(structId);
    let offset = 0;
    let size = this.size(id);
    for (const part of path.split('.')) {
      const m = this.member(id, part);
      if (!m) throw new BtfError(`${this.kind(id)} ${this.name(id) || '(anon)'} has no member ${part} (in ${path})`);
      if (m.bitSize !== 0 || m.bitOffset % 8 !== 0) throw new BtfError(`${path}: ${part} is a bitfield`);
      offset += m.bitOffset / 8;
      id = m.typeId;
      size = this.size(id);
    }
    return { offset, size, typeId: id };
  }

  /**
   * A dotted path that may cross pointers (`aux.id` of struct bpf_prog): the byte
   * offsets to load from in turn, every one but the last loading a pointer.
   */
  loadPath(structId: number, path: string): { offsets: number[]; size: number; typeId: number } {
    const offsets: number[] = [];
    let id = this.resolve(structId);
    let pending: string[] = [];
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      pending.push(parts[i]);
      const f = this.field(id, pending.join('.'));
      const target = this.pointee(f.typeId);
      if (i < parts.length - 1 && target !== null) {
        offsets.push(f.offset);
        id = target;
        pending = [];
      } else if (i === parts.length - 1) {
        offsets.push(f.offset);
        return { offsets, size: f.size, typeId: f.typeId };
      }
    }
    throw new BtfError(`empty path`); // unreachable: split gives at least one part
  }

  /** The enumerators of the named enum (enum or enum64), in order. */
  enumerators(enumName: string): { name: string; value: number }[] {
    const cached = this.enumCache.get(enumName);
    if (cached) return cached;
    const id = this.tryFind('enum', enumName) ?? this.tryFind('enum64', enumName);
    if (id === null) throw new BtfError(`no enum ${enumName}`);
    const is64 = this.kind(id) === 'enum64';
    const base = this.at(id) + BTF_TYPE_LEN;
    const out: { name: string; value: number }[] = [];
    for (let i = 0; i < this.vlen(id); i++) {
      const p = base + (is64 ? 12 : 8) * i;
      const name = this.str(this.u32(p));
      if (!is64) {
        out.push({ name, value: this.s32(p + 4) });
        continue;
      }
      const v = (BigInt(this.u32(p + 8)) << 32n) | BigInt(this.u32(p + 4));
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BtfError(`${enumName}.${name} does not fit a number`);
      out.push({ name, value: Number(v) });
    }
    this.enumCache.set(enumName, out);
    return out;
  }

  /** The value of one enumerator of the named enum. */
  enumValue(enumName: string, valueName: string): number {
    const e = this.enumerators(enumName).find((x) => x.name === valueName);
    if (!e) throw new BtfError(`enum ${enumName} has no ${valueName}`);
    return e.value;
  }
}

let vmlinux: Btf | null = null;

/** The running kernel's BTF, parsed once per process. */
export function kernelBtf(): Btf {
  vmlinux ??= Btf.load();
  return vmlinux;
}

// ---- the BTF a program with subprograms carries ----

/**
 * Raw BTF naming a program's functions, for its func_info (the kernel wants it as soon as a
 * program has a subprogram, a bpf_loop callback for one): `main(void *ctx)` and
 * `callback(long index, void *ctx)` for each callback, all static, returning long.
 */
export function programFuncsBtf(main: string, callbacks: string[]): { btf: Buffer; typeIds: number[] } {
  const strings: string[] = [''];
  let strBytes = 1; // the empty string at offset 0
  const str = (s: string): number => {
    const off = strBytes;
    strings.push(s);
    strBytes += Buffer.byteLength(s) + 1;
    return off;
  };
  const words: number[] = [];
  const type = (name: number, kind: number, vlen: number, sizeOrType: number, ...extra: number[]) => {
    words.push(name, (kind << BTF_INFO_KIND_SHIFT) | vlen, sizeOrType, ...extra);
  };
  const LONG = 1, VOID_PTR = 2, MAIN_PROTO = 3, MAIN = 4, CALLBACK_PROTO = 5;
  const BTF_INT_SIGNED = 1 << 24;
  type(str('long'), BtfKind.int, 0, 8, BTF_INT_SIGNED | 64);
  type(0, BtfKind.ptr, 0, 0);
  type(0, BtfKind.func_proto, 1, LONG, str('ctx'), VOID_PTR);
  type(str(main), BtfKind.func, 0, MAIN_PROTO);
  type(0, BtfKind.func_proto, 2, LONG, str('index'), LONG, str('ctx'), VOID_PTR);
  const typeIds = [MAIN];
  callbacks.forEach((name, i) => {
    type(str(name), BtfKind.func, 0, CALLBACK_PROTO);
    typeIds.push(CALLBACK_PROTO + 1 + i);
  });
  const le = os.endianness() === 'LE';
  const types = Buffer.from(new Uint32Array(words).buffer); // the host's byte order, as the kernel reads BTF
  const strs = Buffer.from(strings.map((x) => `${x}\0`).join(''), 'latin1');
  const header = Buffer.alloc(BTF_HEADER_LEN);
  const u32 = (v: number, at: number) => (le ? header.writeUInt32LE(v, at) : header.writeUInt32BE(v, at));
  if (le) header.writeUInt16LE(BTF_MAGIC, 0);
  else header.writeUInt16BE(BTF_MAGIC, 0);
  header[2] = 1; // version
  u32(BTF_HEADER_LEN, 4);
  u32(0, 8);
  u32(types.length, 12);
  u32(types.length, 16);
  u32(strs.length, 20);
  return { btf: Buffer.concat([header, types, strs]), typeIds };
}

// ---- the answers the scan's iterator programs need, kept per boot ----

/** What the iterator programs ask of BTF (src/kernel/iterators.ts). */
export type BtfFacts = Pick<Btf, 'find' | 'tryFind' | 'field' | 'loadPath' | 'enumValue'>;

/** BTF answers as the scan keeps them: a file of root's, gone at the next boot (/run is a tmpfs). */
export const BTF_ANSWERS_PATH = '/run/pinleak/btf-answers.json';
const ANSWERS_VERSION = 1;
const ANSWERS_MAX_BYTES = 1 << 20;

/** `missing`: the BTF has no such thing (an older kernel without a helper): asked again, it is refused again */
type Answer = number | null | BtfField | { offsets: number[]; size: number; typeId: number } | { missing: string };

export interface BtfAnswers extends BtfFacts {
  /** whether every question so far was answered from the file (the BTF was not read) */
  readonly fromFile: boolean;
  /** keep the answers for the next process of this boot, when the BTF had to be asked */
  persist(): void;
}

/**
 * The running kernel's BTF answers for the iterator programs: parsing the 5.5 MB vmlinux BTF
 * and searching its names costs ~25 ms in every new process (a cron scan), and the answers
 * cannot change until the next boot. They come from `file` when it was written in this boot,
 * for this BTF (boot id and size), by root or this user, writable by no one else; a question
 * it cannot answer (another version's programs) reads the BTF as before.
 */
export function kernelBtfAnswers(file = BTF_ANSWERS_PATH): BtfAnswers {
  const identity = btfIdentity();
  const answers = readAnswers(file, identity) ?? new Map<string, Answer>();
  let asked = false;
  const ask = <T extends Answer>(question: string, compute: (btf: Btf) => T): T => {
    let a = answers.get(question);
    if (a === undefined) {
      try {
        a = compute(kernelBtf());
      } catch (e) {
        if (!(e instanceof BtfError)) throw e;
        a = { missing: e.message.replace(/^BTF: /, '') };
      }
      answers.set(question, a);
      asked = true;
    }
    if (a !== null && typeof a === 'object' && 'missing' in a) throw new BtfError(a.missing);
    return a as T;
  };
  return {
    find: (kind, name) => ask(`find ${kind} ${name}`, (b) => b.find(kind, name)),
    tryFind: (kind, name) => ask(`tryFind ${kind} ${name}`, (b) => b.tryFind(kind, name)),
    field: (structId, path) => ask(`field ${structId} ${path}`, (b) => b.field(structId, path)),
    loadPath: (structId, path) => ask(`loadPath ${structId} ${path}`, (b) => b.loadPath(structId, path)),
    enumValue: (enumName, valueName) => ask(`enumValue ${enumName} ${valueName}`, (b) => b.enumValue(enumName, valueName)),
    get fromFile() {
      return !asked;
    },
    persist() {
      if (asked && identity) writeAnswers(file, identity, answers);
      asked = false;
    },
  };
}

/** What the answers are true of: this boot's vmlinux BTF (null: unknown, nothing is kept). */
function btfIdentity(): string | null {
  const boot = readBootId();
  try {
    // and what asks: another pinleak may read the BTF otherwise (bump ANSWERS_VERSION when Btf's answers change)
    return boot ? `${boot} ${fs.statSync(BTF_VMLINUX_PATH).size} pinleak ${packageVersion()}` : null;
  } catch {
    return null;
  }
}

/** Owned by root or by us and writable by no one else: what a file of answers must be. */
function trusted(st: fs.Stats): boolean {
  return (st.uid === 0 || st.uid === process.geteuid?.()) && (st.mode & 0o022) === 0;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
function validAnswer(v: unknown): v is Answer {
  if (v === null || isCount(v)) return true;
  if (typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  if ('missing' in o) return typeof o.missing === 'string' && Object.keys(o).length === 1;
  if (!isCount(o.size) || !isCount(o.typeId)) return false;
  return 'offsets' in o ? Array.isArray(o.offsets) && o.offsets.every(isCount) : isCount(o.offset);
}

function readAnswers(file: string, identity: string | null): Map<string, Answer> | null {
  if (!identity) return null;
  let fd: number | null = null;
  try {
    const dir = fs.lstatSync(path.dirname(file));
    if (!dir.isDirectory() || !trusted(dir)) return null;
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || !trusted(st) || st.size > ANSWERS_MAX_BYTES) return null;
    const doc = JSON.parse(fs.readFileSync(fd, 'utf8')) as { version?: unknown; btf?: unknown; answers?: unknown };
    if (doc.version !== ANSWERS_VERSION || doc.btf !== identity || typeof doc.answers !== 'object' || doc.answers === null) return null;
    const out = new Map<string, Answer>();
    for (const [q, a] of Object.entries(doc.answers)) {
      if (!validAnswer(a)) return null;
      out.set(q, a);
    }
    return out;
  } catch {
    return null; // none yet, another boot's, or unreadable: ask the BTF
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

function writeAnswers(file: string, identity: string, answers: Map<string, Answer>): void {
  const tmp = `${file}.${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify({ version: ANSWERS_VERSION, btf: identity, answers: Object.fromEntries(answers) }), { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch {
    fs.rmSync(tmp, { force: true }); // a read-only /run: the next scan asks the BTF again
  }
}
