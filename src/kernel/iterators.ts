// The kernel's own reference counts, read through BPF iterators (bpf_map, bpf_prog,
// bpf_link, task_file, task_vma), the way bpftool's `pids` feature reads holders; and
// every process's /proc/<pid>/stat fields (task), read once instead of a file each. Each program is assembled against the running kernel's BTF and writes
// fixed-size records with bpf_seq_write; pinleak decodes them here.
//
// The programs and their iterator links are loaded once per process and kept (never
// pinned: they go when the process's fds go), so a later call costs only one
// BPF_ITER_CREATE and one read per iterator. Measured with 2,000 pinned maps and 200
// holder processes (332 in all): ~18 ms a call, most of it the kernel walking tasks
// and vmas, against ~120-150 ms for the procfs walk of src/scan/processes.ts.
import os from 'node:os';
import { Asm, R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, type Reg, type Size } from './asm.js';
import { kernelBtfAnswers, BtfError, type BtfFacts } from './btf.js';
import { loadProgram, createIterLink, runIterator, VerifierError } from './loader.js';
import { closeFd, progInfo, linkInfo, KernelError } from './bpf.js';
import { ProgType, AttachType, ANON_INODE_FS_MAGIC, NSFS_MAGIC, type BpfHelperName } from './abi.js';

/**
 * Reference counts as the kernel holds them while the iterator runs: the iterator
 * itself holds one reference on the object it shows, so every `refcnt` here is one
 * more than the object's referrers (`usercnt` is exact). The caller subtracts it.
 */
export interface KernelCounts {
  maps: Map<number, { refcnt: number; usercnt: number; type: number; flags: number }>;
  /** a map's name as this read found it (null: not in it), decoded only when asked */
  mapName(id: number): string | null;
  /**
   * what a program's info says, from the prog_info iterator (read on the first call, after
   * the counts); null when the kernel refused that iterator, or its read lacks the program or
   * some of its map ids (more than PROG_MAPS_MAX, or a read that faulted): its info is then
   * read by fd
   */
  progInfo(id: number): KernelProg | null;
  progs: Map<number, { refcnt: number; type: number; usedMaps: number }>;
  links: Map<number, { refcnt: number; type: number; progId: number }>;
  /**
   * every open file of every task (tgid) whose object is a BPF map, prog or link.
   * Includes the calling process's own fds. Only tasks of the caller's pid namespace
   * are visited, and `pid` is the task's pid in the initial namespace (what /proc
   * shows when pinleak runs in the host's pid namespace).
   */
  files: { pid: number; fd: number; file: bigint; kind: 'map' | 'prog' | 'link'; id: number }[];
  /**
   * every fd of every task (tgid) that is a namespace (an nsfs file: /proc/<pid>/ns/* or a
   * bind mount of one) or possibly a perf event (an anon inode named "[perf_ev..."): the
   * few fds whose links the process scan reads, instead of every fd of every process
   */
  otherFiles: { pid: number; fd: number; what: 'ns' | 'perf' }[];
  /** every mapping of a BPF map's file (exact mmap holders, replacing the size heuristic) */
  vmas: { pid: number; start: bigint; end: bigint; file: bigint; mapId: number }[];
}

/** A program as the bpf_prog iterator reads it: what BPF_OBJ_GET_INFO_BY_FD gives pinleak. */
export interface KernelProg {
  name: string;
  /** aux->load_time: ns since boot, as the info's load_time */
  loadTimeNs: bigint;
  /** the loader's uid in the initial user namespace (the info's created_by_uid there) */
  uid: number;
  /** prog->pages: fdinfo's memlock is this many pages */
  pages: number;
  mapIds: number[];
}

/** At most this many bytes from one iterator: 24-byte records, so ~2.8 million objects or files. */
export const ITERATOR_OUTPUT_CAP = 64 * 1024 * 1024;

type CoreTarget = 'bpf_map' | 'bpf_prog' | 'bpf_link' | 'task_file' | 'task_vma';
type Target = CoreTarget | 'task' | 'prog_info';
/** the kernel's iterator target of each program (prog_info is a second program on bpf_prog) */
const ITER_TARGET: Partial<Record<Target, CoreTarget>> = { prog_info: 'bpf_prog' };
/** the count guard's: all of them or none */
const TARGETS: CoreTarget[] = ['bpf_map', 'bpf_prog', 'bpf_link', 'task_file', 'task_vma'];

// ---- records: one layout both written by the program and decoded here ----

export type Layout<F extends string> = { size: number; fields: Record<F, { off: number; size: 4 | 8 }> };

export function layout<F extends string>(fields: [F, 4 | 8][]): Layout<F> {
  let off = 0;
  const out = {} as Record<F, { off: number; size: 4 | 8 }>;
  for (const [name, size] of fields) {
    if (off % size !== 0) throw new Error(`record field ${name} misaligned`);
    out[name] = { off, size };
    off += size;
  }
  if (off % 8 !== 0) throw new Error('record size must be a multiple of 8');
  return { size: off, fields: out };
}

const RECORDS = {
  bpf_map: layout([['id', 4], ['type', 4], ['refcnt', 8], ['usercnt', 8], ['flags', 4], ['pad', 4], ['name0', 8], ['name1', 8]]),
  bpf_prog: layout([['id', 4], ['type', 4], ['refcnt', 8], ['usedMaps', 4], ['pad', 4]]),
  // tag PROG_RECORD: a program's info; tag MAP_USE_RECORD: a map (mapId) the program `id` uses
  prog_info: layout([
    ['id', 4], ['tag', 4], ['loadTime', 8], ['uid', 4], ['pages', 4], ['name0', 8], ['name1', 8], ['mapId', 4], ['usedMaps', 4],
  ]),
  bpf_link: layout([['id', 4], ['type', 4], ['refcnt', 8], ['progId', 4], ['pad', 4]]),
  task_file: layout([['pid', 4], ['fd', 4], ['file', 8], ['kind', 4], ['id', 4]]),
  task_vma: layout([['pid', 4], ['mapId', 4], ['start', 8], ['end', 8], ['file', 8]]),
  task: layout([
    ['pid', 4], ['ppid', 4], ['startNs', 8], ['exitState', 4], ['flags', 4], ['threads', 4], ['mntNs', 4], ['netNs', 4], ['pad', 4],
    ['comm0', 8], ['comm1', 8],
  ]),
};

/** Record tags of the prog_info iterator, and the most map ids it gives of one program (more: its info is read by fd). */
const PROG_RECORD = 0;
const MAP_USE_RECORD = 1;
export const PROG_MAPS_MAX = 64;

/** Kind codes written by the file programs. */
export const FILE_KINDS = { map: 1, prog: 2, link: 3 } as const;
export type FileKind = keyof typeof FILE_KINDS;
export const KIND_OF_CODE = new Map<number, FileKind>(Object.entries(FILE_KINDS).map(([k, v]) => [v, k as FileKind]));
/** Kind codes of the task_file program's other files (no object id). */
const OTHER_FILE_CODES = { ns: 4, perf: 5 } as const;
const OTHER_OF_CODE = new Map<number, 'ns' | 'perf'>([[OTHER_FILE_CODES.ns, 'ns'], [OTHER_FILE_CODES.perf, 'perf']]);

/** The short names of BPF objects' anon-inode dentries (bpf_link as created, bpf-link when re-opened). */
const FILE_NAMES: [string, FileKind][] = [['bpf-map', 'map'], ['bpf-prog', 'prog'], ['bpf_link', 'link'], ['bpf-link', 'link']];
const OBJECT_STRUCT: Record<FileKind, string> = { map: 'bpf_map', prog: 'bpf_prog', link: 'bpf_link' };
/** A path to the id from each object's struct (a prog's id is in its aux). */
const ID_PATH: Record<FileKind, string> = { map: 'id', prog: 'aux.id', link: 'id' };

// ---- code generation (shared with the pin recorder, src/kernel/recorder.ts) ----

export class Gen {
  readonly a = new Asm();
  constructor(readonly btf: BtfFacts, readonly record: Layout<string>) {}

  struct(name: string): number {
    return this.btf.find('struct', name);
  }

  /** dst = base->path, following pointers (`aux.id`); the last load has the field's size */
  load(dst: Reg, base: Reg, structName: string, path: string): this {
    const p = this.btf.loadPath(this.struct(structName), path);
    if (![1, 2, 4, 8].includes(p.size)) throw new BtfError(`${structName}.${path} has size ${p.size}, not a load size`);
    let src = base;
    p.offsets.forEach((off, i) => {
      const last = i === p.offsets.length - 1;
      this.a.ldx(last ? (p.size as Size) : 8, dst, src, off);
      src = dst;
    });
    return this;
  }

  /** the iterator context's member `name` (a pointer or a scalar) */
  ctx(dst: Reg, target: Target, name: string): this {
    return this.load(dst, R6, `bpf_iter__${target}`, name);
  }

  helper(name: BpfHelperName): number {
    return this.btf.enumValue('bpf_func_id', `BPF_FUNC_${name}`);
  }

  /** record field = src (stored with the field's size; the record sits at the bottom of the frame) */
  store(field: string, src: Reg): this {
    const f = this.record.fields[field];
    this.a.stx(f.size, R10, f.off - this.record.size, src);
    return this;
  }

  storeImm(field: string, imm: number): this {
    const f = this.record.fields[field];
    this.a.st(f.size, R10, f.off - this.record.size, imm);
    return this;
  }

  /** record fields `${to}0` and `${to}1` = the char[16] member `member` of the struct at `base` (a name, a comm) */
  name16(base: Reg, structName: string, member: string, to: string): this {
    const off = this.btf.field(this.struct(structName), member).offset;
    this.a.ldx(8, R1, base, off);
    this.store(`${to}0`, R1);
    this.a.ldx(8, R1, base, off + 8);
    return this.store(`${to}1`, R1);
  }

  /** bpf_seq_write(ctx->meta->seq, record, size) */
  write(target: Target): this {
    this.ctx(R1, target, 'meta');
    this.load(R1, R1, 'bpf_iter_meta', 'seq');
    this.a.mov(R2, R10).add(R2, -this.record.size).mov(R3, this.record.size).call(this.helper('seq_write'));
    return this;
  }

  /** return 0, at label `out` (where skipped objects land too), and the program's bytecode */
  end(): Buffer {
    this.a.label('out').mov(R0, 0).exit();
    return this.a.assemble();
  }

  /** write the record, then end */
  finish(target: Target): Buffer {
    return this.write(target).end();
  }

  /** r0 = ((struct <kind> *)bpf_rdonly_cast(file->private_data))-><id> */
  objectId(file: Reg, kind: FileKind): this {
    this.load(R1, file, 'file', 'private_data');
    this.a.mov(R2, this.struct(OBJECT_STRUCT[kind])).callKfunc(this.btf.find('func', 'bpf_rdonly_cast'));
    return this.load(R0, R0, OBJECT_STRUCT[kind], ID_PATH[kind]);
  }

  /**
   * Jumps to `otherwise` unless `file` is a BPF object's anon-inode file; otherwise leaves
   * the object's id in r0 and its kind code in r9. `only` limits the kinds accepted.
   * `prefixes`: other anon-inode files, by the first 8 bytes of their name, to report with
   * their code in r9 and 0 in r0.
   */
  bpfFile(file: Reg, only?: FileKind, otherwise = 'out', prefixes: [string, number][] = []): this {
    const a = this.a;
    // the anon inode file system: a regular file named "bpf-map" is not a map
    this.load(R1, file, 'file', 'f_inode').load(R1, R1, 'inode', 'i_sb').load(R1, R1, 'super_block', 's_magic');
    a.jmp('jne', R1, ANON_INODE_FS_MAGIC, otherwise);
    // the dentry's inline short name: its first 8 bytes as a word, then the 9th byte
    const dentry = this.struct('dentry');
    const nameField = this.btf.tryFind('union', 'shortname_store') !== null ? 'd_shortname' : 'd_iname';
    const nameOff = this.btf.field(dentry, nameField).offset;
    this.load(R1, file, 'file', 'f_path.dentry');
    a.ldx(8, R2, R1, nameOff).ldx(1, R3, R1, nameOff + 8);
    const kinds = FILE_NAMES.filter(([, k]) => only === undefined || k === only);
    for (const [name, kind] of kinds) {
      const word = nameWord(name);
      // a 7-character name ends with its NUL inside the word; an 8-character one needs the 9th byte
      if (name.length === 8) a.jmp('jne', R3, 0, `not_${name}`);
      a.ldImm64(R1, word).jmp('jeq', R2, R1, `is_${kind}`);
      if (name.length === 8) a.label(`not_${name}`);
    }
    for (const [prefix, code] of prefixes) {
      if (prefix.length !== 8) throw new Error(`file name prefix ${prefix} must be 8 bytes`);
      a.ldImm64(R1, nameWord(prefix)).jmp('jeq', R2, R1, `is_code_${code}`);
    }
    a.ja(otherwise);
    for (const [, code] of prefixes) a.label(`is_code_${code}`).mov(R0, 0).mov(R9, code).ja('bpf_file_done');
    for (const kind of new Set(kinds.map(([, k]) => k))) {
      a.label(`is_${kind}`);
      this.objectId(file, kind);
      a.mov(R9, FILE_KINDS[kind]).ja('bpf_file_done');
    }
    a.label('bpf_file_done');
    return this;
  }
}

/** The first 8 bytes of a NUL-terminated name, as the 64-bit word a load of them gives on this host. */
function nameWord(name: string): bigint {
  const b = Buffer.alloc(8);
  b.write(name.slice(0, 8), 'latin1');
  return os.endianness() === 'LE' ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0);
}

/** r6 = ctx; `reg` = ctx->`member`, skipping the call when it is NULL (the iterator's last call) */
function begin(g: Gen, target: Target, member: string, reg: Reg): void {
  g.a.mov(R6, R1);
  g.ctx(reg, target, member);
  g.a.jmp('jeq', reg, 0, 'out');
}

/** Iterators over one kind of object: each record field is a path from the object's struct. */
const OBJECT_ITERATORS: Record<'bpf_map' | 'bpf_prog' | 'bpf_link', {
  member: string; struct: string; fields: [string, string][];
  /** a char[16] member copied into record fields name0 and name1 */
  name?: string;
}> = {
  bpf_map: {
    member: 'map', struct: 'bpf_map',
    fields: [['id', 'id'], ['type', 'map_type'], ['refcnt', 'refcnt.counter'], ['usercnt', 'usercnt.counter'], ['flags', 'map_flags']],
    // what BPF_OBJ_GET_INFO_BY_FD would say: a scan names each pinned map without that call
    name: 'name',
  },
  bpf_prog: {
    member: 'prog', struct: 'bpf_prog',
    // used_map_cnt only grows (BPF_PROG_BIND_MAP): an unchanged count means unchanged map ids
    fields: [['id', 'aux.id'], ['type', 'type'], ['refcnt', 'aux.refcnt.counter'], ['usedMaps', 'aux.used_map_cnt']],
  },
  bpf_link: {
    member: 'link', struct: 'bpf_link',
    // a struct_ops link has no program: the load through NULL reads 0
    fields: [['id', 'id'], ['type', 'type'], ['refcnt', 'refcnt.counter'], ['progId', 'prog.aux.id']],
  },
};

function objectIterator(target: keyof typeof OBJECT_ITERATORS) {
  return (g: Gen): Buffer => {
    const spec = OBJECT_ITERATORS[target];
    begin(g, target, spec.member, R7);
    for (const [field, path] of spec.fields) g.load(R1, R7, spec.struct, path).store(field, R1);
    if (spec.name) g.name16(R7, spec.struct, spec.name, 'name');
    if ('pad' in g.record.fields) g.storeImm('pad', 0); // every byte handed to bpf_seq_write must be written
    return g.finish(target);
  };
}

/** Task iterators: r7 = the object (file or vma), r8 = the task, both non-NULL. */
function beginTask(g: Gen, target: 'task_file' | 'task_vma', member: string): void {
  begin(g, target, member, R7);
  g.ctx(R8, target, 'task');
  g.a.jmp('jeq', R8, 0, 'out');
}

const PROGRAMS: Record<Target, (g: Gen) => Buffer> = {
  bpf_map: objectIterator('bpf_map'),
  bpf_prog: objectIterator('bpf_prog'),
  // every program with what its info says (name, load time, loader, size), then a record
  // for each map it uses (at most PROG_MAPS_MAX): a scan reads no program's info itself.
  // A second program on the bpf_prog target, so that a kernel that refuses it (bpf_loop is
  // 5.17+) still runs the count guard's
  prog_info(g) {
    const a = g.a;
    begin(g, 'bpf_prog', 'prog', R7);
    g.load(R1, R7, 'bpf_prog', 'aux.id').store('id', R1);
    g.load(R1, R7, 'bpf_prog', 'aux.used_map_cnt').store('usedMaps', R1);
    g.storeImm('tag', PROG_RECORD);
    g.load(R1, R7, 'bpf_prog', 'aux.load_time').store('loadTime', R1);
    // a NULL user (a program the kernel loaded itself) reads 0
    g.load(R1, R7, 'bpf_prog', 'aux.user.uid.val').store('uid', R1);
    g.load(R1, R7, 'bpf_prog', 'pages').store('pages', R1);
    g.load(R8, R7, 'bpf_prog', 'aux');
    g.name16(R8, 'bpf_prog_aux', 'name', 'name');
    g.storeImm('mapId', 0);
    g.write('bpf_prog');
    // (aux->used_maps is read without used_maps_mutex: a BPF_PROG_BIND_MAP at that very
    // moment may give a wrong id. The count guard then sees the real map's reference as
    // unexplained, so the map stays in use: never a false leak.)
    // The maps, by bpf_loop: its callback is verified once, where a loop in the program is
    // walked by the verifier turn by turn (64 turns took 27-58 ms to load). The callback
    // gets the area below the record: [0] scratch, [8] aux->used_maps, [16] the seq file,
    // then the record, whose tag and mapId it sets before each write.
    const size = g.record.size;
    const area = -(size + 24);
    g.storeImm('tag', MAP_USE_RECORD);
    g.ctx(R1, 'bpf_prog', 'meta');
    g.load(R1, R1, 'bpf_iter_meta', 'seq');
    a.stx(8, R10, area + 16, R1);
    g.load(R1, R8, 'bpf_prog_aux', 'used_maps');
    a.stx(8, R10, area + 8, R1);
    g.load(R1, R8, 'bpf_prog_aux', 'used_map_cnt');
    a.jmp('jle', R1, PROG_MAPS_MAX, 'count_ok').mov(R1, PROG_MAPS_MAX).label('count_ok');
    a.ldFunc(R2, 'map_use').mov(R3, R10).add(R3, area).mov(R4, 0).call(g.helper('loop'));
    a.label('out').mov(R0, 0).exit();
    // callback(r1 = i, r2 = the area): one record per map, 0 to go on (a subprogram after
    // the program's exit: no jump crosses into it)
    const mapIdOff = g.btf.field(g.struct('bpf_map'), 'id').offset;
    const recordMapId = 24 + g.record.fields.mapId.off;
    a.label('map_use').mov(R6, R2);
    a.mov(R3, R1).alu64('lsh', R3, 3).ldx(8, R1, R6, 8).add(R3, R1);
    a.mov(R1, R6).mov(R2, 8).call(g.helper('probe_read_kernel'));
    a.jmp('jne', R0, 0, 'map_use_done');
    a.ldx(8, R3, R6, 0).jmp('jeq', R3, 0, 'map_use_done').add(R3, mapIdOff);
    a.mov(R1, R6).mov(R2, 4).call(g.helper('probe_read_kernel'));
    a.jmp('jne', R0, 0, 'map_use_done');
    a.ldx(4, R1, R6, 0).stx(4, R6, recordMapId, R1);
    a.ldx(8, R1, R6, 16).mov(R2, R6).add(R2, 24).mov(R3, size).call(g.helper('seq_write'));
    a.label('map_use_done').mov(R0, 0).exit();
    return a.assemble();
  },
  bpf_link: objectIterator('bpf_link'),
  task_file(g) {
    beginTask(g, 'task_file', 'file');
    // a namespace's file: reported with no id (the process scan reads its link)
    g.load(R1, R7, 'file', 'f_inode').load(R1, R1, 'inode', 'i_sb').load(R1, R1, 'super_block', 's_magic');
    g.a.jmp('jne', R1, NSFS_MAGIC, 'not_ns').mov(R0, 0).mov(R9, OTHER_FILE_CODES.ns).ja('emit').label('not_ns');
    g.bpfFile(R7, undefined, 'out', [['[perf_ev', OTHER_FILE_CODES.perf]]);
    g.a.label('emit');
    g.store('id', R0).store('kind', R9).store('file', R7);
    g.load(R1, R8, 'task_struct', 'tgid').store('pid', R1);
    g.ctx(R1, 'task_file', 'fd').store('fd', R1);
    return g.finish('task_file');
  },
  // every process (thread-group leader): what /proc/<pid>/stat and ns/mnt give the process scan
  task(g) {
    begin(g, 'task', 'task', R7);
    g.load(R1, R7, 'task_struct', 'pid').load(R2, R7, 'task_struct', 'tgid');
    g.a.jmp('jne', R1, R2, 'out');
    g.store('pid', R2);
    g.load(R1, R7, 'task_struct', 'real_parent.tgid').store('ppid', R1);
    g.load(R1, R7, 'task_struct', 'start_boottime').store('startNs', R1);
    g.load(R1, R7, 'task_struct', 'exit_state').store('exitState', R1);
    g.load(R1, R7, 'task_struct', 'flags').store('flags', R1);
    g.load(R1, R7, 'task_struct', 'signal.nr_threads').store('threads', R1);
    // NULL nsproxy (an exiting task): the loads through it read 0
    g.load(R1, R7, 'task_struct', 'nsproxy.mnt_ns.ns.inum').store('mntNs', R1);
    g.load(R1, R7, 'task_struct', 'nsproxy.net_ns.ns.inum').store('netNs', R1);
    g.storeImm('pad', 0);
    g.name16(R7, 'task_struct', 'comm', 'comm');
    return g.finish('task');
  },
  task_vma(g) {
    beginTask(g, 'task_vma', 'vma');
    g.load(R1, R7, 'vm_area_struct', 'vm_start').store('start', R1);
    g.load(R1, R7, 'vm_area_struct', 'vm_end').store('end', R1);
    g.load(R7, R7, 'vm_area_struct', 'vm_file');
    g.a.jmp('jeq', R7, 0, 'out');
    g.bpfFile(R7, 'map');
    g.store('mapId', R0).store('file', R7);
    g.load(R1, R8, 'task_struct', 'tgid').store('pid', R1);
    return g.finish('task_vma');
  },
};

/** The bytecode of one iterator program, against `btf` (exported for tests). */
export function iteratorProgram(btf: BtfFacts, target: Target): Buffer {
  return PROGRAMS[target](new Gen(btf, RECORDS[target]));
}

// ---- loading, once per process ----

interface LoadedIterator {
  progFd: number;
  linkFd: number;
}

/** The five of the count guard, and the task and prog_info iterators when the kernel took them too. */
type Loaded = Record<CoreTarget, LoadedIterator> & { task?: LoadedIterator; prog_info?: LoadedIterator };
let loaded: Loaded | null = null;
let refusal: KernelError | null = null;

function loadIterator(btf: BtfFacts, target: Target, fds: number[]): LoadedIterator {
  const g = new Gen(btf, RECORDS[target]);
  const insns = PROGRAMS[target](g);
  const progFd = loadProgram({
    name: `pinleak_${target}`.slice(0, 15), type: ProgType.TRACING, insns, subprograms: g.a.subprograms(),
    expectedAttachType: AttachType.TRACE_ITER, attachBtfId: btf.find('func', `bpf_iter_${ITER_TARGET[target] ?? target}`),
  });
  fds.push(progFd);
  const linkFd = createIterLink(progFd);
  fds.push(linkFd);
  return { progFd, linkFd };
}

function loadAll(): Loaded {
  if (loaded) return loaded;
  if (refusal) throw refusal;
  const fds: number[] = [];
  try {
    const btf = kernelBtfAnswers();
    const out = {} as Loaded;
    for (const target of TARGETS) out[target] = loadIterator(btf, target, fds);
    // Only a speed-up (the process scan reads procfs without it): a refusal of the task
    // iterator alone, say a verifier that gave up (EAGAIN) under a stream of signals, costs
    // nothing else.
    for (const extra of ['task', 'prog_info'] as const) {
      const own: number[] = [];
      try {
        out[extra] = loadIterator(btf, extra, own);
      } catch (e) {
        for (const fd of own) closeFd(fd);
        if (!(e instanceof KernelError)) throw e;
      }
    }
    btf.persist();
    loaded = out;
    return out;
  } catch (e) {
    for (const fd of fds) closeFd(fd);
    if (e instanceof KernelError) refusal = e;
    throw e;
  }
}

/** Whether this kernel lets pinleak load its iterators (`why` is one line); probed once per process. */
export function iteratorSupport(): { ok: true } | { ok: false; why: string } {
  try {
    loadAll();
    return { ok: true };
  } catch (e) {
    if (e instanceof VerifierError) return { ok: false, why: e.summary };
    if (e instanceof KernelError) return { ok: false, why: e.message };
    throw e;
  }
}

/** Ids of pinleak's own iterator programs and links: they appear in every read, and are not the host's. */
export function ownIteratorIds(): { progs: number[]; links: number[] } {
  const all = Object.values(loadAll()).filter((l): l is LoadedIterator => l !== undefined);
  return { progs: all.map((l) => progInfo(l.progFd).id), links: all.map((l) => linkInfo(l.linkFd).id) };
}

/** Unloads the iterators (tests; a long-running process keeps them). */
export function closeIterators(): void {
  if (!loaded) return;
  for (const l of Object.values(loaded)) {
    if (!l) continue;
    closeFd(l.linkFd);
    closeFd(l.progFd);
  }
  loaded = null;
}

// ---- decoding ----

const LE = os.endianness() === 'LE';

/** Fixed-size records in the host's byte order, read field by field. */
class Records<F extends string> {
  readonly count: number;
  constructor(private readonly buf: Buffer, private readonly rec: Layout<F>, what: string) {
    if (buf.length % rec.size !== 0) throw new KernelError(`read ${what}`, os.constants.errno.EIO, `(${buf.length} bytes is not a whole number of records)`);
    this.count = buf.length / rec.size;
  }

  private at(i: number, f: F): number {
    return i * this.rec.size + this.rec.fields[f].off;
  }

  u32(i: number, f: F): number {
    return LE ? this.buf.readUInt32LE(this.at(i, f)) : this.buf.readUInt32BE(this.at(i, f));
  }

  /** a 64-bit field as an unsigned bigint (kernel addresses) */
  u64(i: number, f: F): bigint {
    return LE ? this.buf.readBigUInt64LE(this.at(i, f)) : this.buf.readBigUInt64BE(this.at(i, f));
  }

  /** `len` bytes from field `f` on, as a NUL-terminated UTF-8 string (a task's comm) */
  cString(i: number, f: F, len: number): string {
    const start = this.at(i, f);
    const end = this.buf.indexOf(0, start);
    return this.buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
  }

  /** a signed 64-bit counter as a number (reference counts stay far below 2^53) */
  count64(i: number, f: F): number {
    const p = this.at(i, f);
    return LE ? this.buf.readInt32LE(p + 4) * 2 ** 32 + this.buf.readUInt32LE(p) : this.buf.readInt32BE(p) * 2 ** 32 + this.buf.readUInt32BE(p + 4);
  }
}

function read(l: LoadedIterator, target: Target): Buffer {
  return runIterator(l.linkFd, ITERATOR_OUTPUT_CAP, `iterator ${target}`);
}

/** A process (thread-group leader) as the task iterator reads it from its task_struct. */
export interface KernelTask {
  pid: number;
  ppid: number;
  /** task->start_boottime: /proc/<pid>/stat's start time is this in clock ticks */
  startNs: bigint;
  /** task->exit_state (EXIT_ZOMBIE, EXIT_DEAD) */
  exitState: number;
  flags: number;
  /** signal->nr_threads */
  threads: number;
  /** the mount namespace's inode number; 0 when the task has none left (exiting) */
  mntNs: number;
  /** the network namespace's inode number; 0 likewise */
  netNs: number;
  comm: string;
}

/**
 * Every process of the caller's pid namespace, from one read of the task iterator (in
 * place of a /proc/<pid>/stat read and an ns/mnt readlink per process); null when the
 * kernel took the other iterators but not this one. Throws KernelError when the kernel
 * refuses the iterators.
 */
export function readTasks(): KernelTask[] | null {
  const it = loadAll();
  if (!it.task) return null;
  const r = new Records(read(it.task, 'task'), RECORDS.task, 'task');
  const out: KernelTask[] = [];
  for (let i = 0; i < r.count; i++) {
    out.push({
      pid: r.u32(i, 'pid'), ppid: r.u32(i, 'ppid'), startNs: r.u64(i, 'startNs'), exitState: r.u32(i, 'exitState'),
      flags: r.u32(i, 'flags'), threads: r.u32(i, 'threads'), mntNs: r.u32(i, 'mntNs'), netNs: r.u32(i, 'netNs'),
      comm: r.cString(i, 'comm0', 16),
    });
  }
  return out;
}

/**
 * One pass of the object and file iterators. Throws KernelError when the kernel refuses
 * them. `vmas`: whether any of these maps could be mmapped; when not, the task_vma iterator,
 * which visits every mapping of every process (12 ms on a host of 1,100 processes), is not
 * read and `vmas` is empty.
 */
export function readKernelCounts(opts: { vmas?: (maps: KernelCounts['maps']) => boolean } = {}): KernelCounts {
  const it = loadAll();
  const maps = new Records(read(it.bpf_map, 'bpf_map'), RECORDS.bpf_map, 'bpf_map');
  const mapRecord = new Map<number, number>();
  // the prog_info iterator, read on the first question (a resident scan asks only of new programs)
  // (undefined: not read yet; null: no iterator, or the kernel refused the read)
  let infos: { records: Records<keyof typeof RECORDS.prog_info.fields>; at: Map<number, { at: number; maps: number }> } | null | undefined;
  const progInfos = () => {
    if (infos !== undefined) return infos;
    if (!it.prog_info) return (infos = null);
    let records: Records<keyof typeof RECORDS.prog_info.fields>;
    try {
      records = new Records(read(it.prog_info, 'prog_info'), RECORDS.prog_info, 'prog_info');
    } catch (e) {
      // only a speed-up: every program's info is then read by fd
      if (!(e instanceof KernelError)) throw e;
      return (infos = null);
    }
    const at = new Map<number, { at: number; maps: number }>();
    // a program's record, then one per map it uses
    for (let i = 0; i < records.count; i++) {
      if (records.u32(i, 'tag') !== PROG_RECORD) continue;
      let maps = 0;
      while (i + maps + 1 < records.count && records.u32(i + maps + 1, 'tag') === MAP_USE_RECORD) maps++;
      at.set(records.u32(i, 'id'), { at: i, maps });
    }
    return (infos = { records, at });
  };
  const counts: KernelCounts = {
    maps: new Map(), progs: new Map(), links: new Map(), files: [], otherFiles: [], vmas: [],
    mapName: (id) => {
      const i = mapRecord.get(id);
      return i === undefined ? null : maps.cString(i, 'name0', 16);
    },
    progInfo: (id) => {
      const p = progInfos();
      const r = p?.at.get(id);
      if (!p || !r || r.maps !== p.records.u32(r.at, 'usedMaps')) return null;
      const mapIds: number[] = [];
      for (let m = 1; m <= r.maps; m++) mapIds.push(p.records.u32(r.at + m, 'mapId'));
      return {
        name: p.records.cString(r.at, 'name0', 16), loadTimeNs: p.records.u64(r.at, 'loadTime'), uid: p.records.u32(r.at, 'uid'),
        pages: p.records.u32(r.at, 'pages'), mapIds,
      };
    },
  };
  for (let i = 0; i < maps.count; i++) {
    const id = maps.u32(i, 'id');
    mapRecord.set(id, i);
    counts.maps.set(id, {
      refcnt: maps.count64(i, 'refcnt'), usercnt: maps.count64(i, 'usercnt'), type: maps.u32(i, 'type'), flags: maps.u32(i, 'flags'),
    });
  }
  const progs = new Records(read(it.bpf_prog, 'bpf_prog'), RECORDS.bpf_prog, 'bpf_prog');
  for (let i = 0; i < progs.count; i++) {
    counts.progs.set(progs.u32(i, 'id'), { refcnt: progs.count64(i, 'refcnt'), type: progs.u32(i, 'type'), usedMaps: progs.u32(i, 'usedMaps') });
  }
  const links = new Records(read(it.bpf_link, 'bpf_link'), RECORDS.bpf_link, 'bpf_link');
  for (let i = 0; i < links.count; i++) {
    counts.links.set(links.u32(i, 'id'), { refcnt: links.count64(i, 'refcnt'), type: links.u32(i, 'type'), progId: links.u32(i, 'progId') });
  }
  // task iterators skip threads that share their leader's fd table, but a thread with
  // a table of its own (or the mm, for vmas) would repeat entries: keep each once
  const files = new Records(read(it.task_file, 'task_file'), RECORDS.task_file, 'task_file');
  const seenFiles = new Set<string>();
  for (let i = 0; i < files.count; i++) {
    const pid = files.u32(i, 'pid'), fd = files.u32(i, 'fd'), file = files.u64(i, 'file');
    const code = files.u32(i, 'kind');
    const kind = KIND_OF_CODE.get(code);
    const other = OTHER_OF_CODE.get(code);
    const key = `${pid}:${fd}:${file}`;
    if ((!kind && !other) || seenFiles.has(key)) continue;
    seenFiles.add(key);
    if (kind) counts.files.push({ pid, fd, file, kind, id: files.u32(i, 'id') });
    else counts.otherFiles.push({ pid, fd, what: other! });
  }
  if (opts.vmas && !opts.vmas(counts.maps)) return counts;
  const vmas = new Records(read(it.task_vma, 'task_vma'), RECORDS.task_vma, 'task_vma');
  const seenVmas = new Set<string>();
  for (let i = 0; i < vmas.count; i++) {
    const pid = vmas.u32(i, 'pid'), start = vmas.u64(i, 'start');
    const key = `${pid}:${start}`;
    if (seenVmas.has(key)) continue;
    seenVmas.add(key);
    counts.vmas.push({ pid, start, end: vmas.u64(i, 'end'), file: vmas.u64(i, 'file'), mapId: vmas.u32(i, 'mapId') });
  }
  return counts;
}
