// Loading pinleak's own BPF programs and reading what they produce: BPF_PROG_LOAD with
// a verifier log only when the first try fails, BPF_LINK_CREATE, BPF_ITER_CREATE and
// reading an iterator to its end. Nothing loaded here is ever pinned: every program,
// link and iterator lives exactly as long as the fds of the process that made it.
import fs from 'node:fs';
import os from 'node:os';
import {
  BpfCmd, ProgLoadAttr, LinkCreateAttr, IterCreateAttr, AttachType, BPF_INSN_SIZE, BPF_LOG_LEVEL_VERBOSE,
} from './abi.js';
import { bpf, bpfRaw, addr, btfLoad, cString, closeFd, KernelError, objName } from './bpf.js';
import { programFuncsBtf } from './btf.js';

/** The verifier log kept for a failed load: big enough for the programs pinleak writes. */
export const VERIFIER_LOG_SIZE = 1 << 20;
const LOG_TAIL_LINES = 12;

export interface ProgramSpec {
  name: string;
  /** enum bpf_prog_type */
  type: number;
  /** assembled instructions (Asm.assemble()) */
  insns: Buffer;
  expectedAttachType?: number;
  /** BTF id of the attach target: an iterator's bpf_iter_<target> FUNC, a struct_ops struct... */
  attachBtfId?: number;
  license?: string;
  /** the program's subprograms (Asm.subprograms()): it then carries BTF naming them (func_info) */
  subprograms?: { name: string; insn: number }[];
}

/** A refused BPF_PROG_LOAD, with the end of the verifier's log (empty when the kernel gave none). */
export class VerifierError extends KernelError {
  /** one line: the refusal and the verifier's last word (its closing statistics line skipped) */
  readonly summary: string;
  constructor(program: string, errno: number, readonly log: string) {
    super('BPF_PROG_LOAD', errno, program);
    const lines = log.trimEnd().split('\n');
    const tail = lines.slice(-LOG_TAIL_LINES).join('\n');
    const last = lines.filter((l) => l.trim() && !l.startsWith('processed ')).at(-1);
    this.summary = last ? `${this.message}: ${last.trim()}` : `${this.message}; the verifier log is empty`;
    this.message += tail ? `; verifier log ends:\n${tail}` : '; the verifier log is empty';
  }
}

/** The log text: up to its first NUL. */
function logText(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** BPF_PROG_LOAD attempts on EAGAIN (libbpf: 5) */
const LOAD_ATTEMPTS = 5;

/**
 * BPF_PROG_LOAD. The fast path asks for no log; a refusal is retried once with a
 * verbose log so the error can say why (the kernel keeps the log's tail when it is
 * longer than the buffer).
 */
export function loadProgram(spec: ProgramSpec): number {
  if (spec.insns.length === 0 || spec.insns.length % BPF_INSN_SIZE !== 0) throw new Error(`${spec.name}: bad instruction buffer`);
  const license = cString(spec.license ?? 'GPL');
  const attr: Record<string, unknown> = {
    prog_type: spec.type, insn_cnt: spec.insns.length / BPF_INSN_SIZE, insns: addr(spec.insns),
    license: addr(license), prog_name: objName(spec.name), expected_attach_type: spec.expectedAttachType ?? 0,
    attach_btf_id: spec.attachBtfId ?? 0,
  };
  let btfFd: number | null = null;
  // referenced until the load returns: the attributes hold only its address
  let funcInfo: Buffer | null = null;
  if (spec.subprograms?.length) {
    const { btf, typeIds } = programFuncsBtf(spec.name, spec.subprograms.map((f) => f.name));
    btfFd = btfLoad(btf);
    // struct bpf_func_info { __u32 insn_off; __u32 type_id; } for the program and each subprogram
    const offs = [0, ...spec.subprograms.map((f) => f.insn)];
    funcInfo = Buffer.from(new Uint32Array(offs.flatMap((off, i) => [off, typeIds[i]!])).buffer);
    Object.assign(attr, { prog_btf_fd: btfFd, func_info_rec_size: 8, func_info: addr(funcInfo), func_info_cnt: offs.length });
  }
  try {
    return loadWith(spec, attr);
  } finally {
    if (btfFd !== null) closeFd(btfFd); // the program keeps its own reference to its BTF
  }
}

function loadWith(spec: ProgramSpec, attr: Record<string, unknown>): number {
  // EAGAIN: the verifier stops when a signal is pending (a profiler's SIGPROF, a SIGCHLD)
  // and asks to be called again; libbpf retries it too
  const load = (a: object) => {
    let r = bpfRaw(BpfCmd.PROG_LOAD, ProgLoadAttr, a);
    for (let i = 1; r.ret < 0 && r.errno === os.constants.errno.EAGAIN && i < LOAD_ATTEMPTS; i++) r = bpfRaw(BpfCmd.PROG_LOAD, ProgLoadAttr, a);
    return r;
  };
  const first = load(attr);
  if (first.ret >= 0) return first.ret;
  const log = Buffer.alloc(VERIFIER_LOG_SIZE);
  const second = load({ ...attr, log_level: BPF_LOG_LEVEL_VERBOSE, log_size: log.length, log_buf: addr(log) });
  if (second.ret >= 0) return second.ret; // a transient refusal (memory, a racing unload)
  throw new VerifierError(spec.name, first.errno, logText(log));
}

/** BPF_LINK_CREATE of an iterator program; `iterInfo` is union bpf_iter_link_info when the target takes one. */
export function createIterLink(progFd: number, iterInfo?: Buffer): number {
  return bpf(BpfCmd.LINK_CREATE, LinkCreateAttr, {
    prog_fd: progFd, attach_type: AttachType.TRACE_ITER,
    iter_info: iterInfo ? addr(iterInfo) : 0n, iter_info_len: iterInfo?.length ?? 0,
  }, 'BPF_LINK_CREATE', 'iterator').ret;
}

/** BPF_ITER_CREATE: a new seq file whose read() runs the iterator from the start. */
export function createIter(linkFd: number): number {
  return bpf(BpfCmd.ITER_CREATE, IterCreateAttr, { link_fd: linkFd, flags: 0 }, 'BPF_ITER_CREATE').ret;
}

const READ_CHUNK = 64 * 1024;
const RETRYABLE = new Set(['EINTR', 'EAGAIN']);

/** read() to EOF into one Buffer; more than `cap` bytes is an error (a hostile or huge host). */
export function readToEnd(fd: number, cap: number, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(READ_CHUNK);
    let n: number;
    try {
      n = fs.readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (RETRYABLE.has(code)) continue;
      throw new KernelError(`read ${what}`, -((e as NodeJS.ErrnoException).errno ?? 0) || os.constants.errno.EIO);
    }
    if (n === 0) return Buffer.concat(chunks, total);
    total += n;
    if (total > cap) throw new KernelError(`read ${what}`, os.constants.errno.E2BIG, `(over ${cap} bytes)`);
    chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
  }
}

/** Runs an iterator link once: ITER_CREATE, read to EOF, close. */
export function runIterator(linkFd: number, cap: number, what: string): Buffer {
  const fd = createIter(linkFd);
  try {
    return readToEnd(fd, cap, what);
  } finally {
    closeFd(fd);
  }
}
