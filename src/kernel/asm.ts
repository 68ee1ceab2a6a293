// A minimal BPF assembler: pinleak's programs are written here in TypeScript and
// encoded at run time (offsets and BTF ids come from the running kernel's BTF), so
// no compiler is needed on the host. Pure: it only produces bytes.
import os from 'node:os';
import {
  BpfClass, BpfSize, BpfMode, BpfSrc, BpfAluOp, BpfJmpOp, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_FUNC, BPF_ATOMIC_ADD,
  BPF_INSN_SIZE, BPF_REG_FP,
} from './abi.js';

export interface Reg {
  readonly reg: number;
}

function reg(n: number): Reg {
  return Object.freeze({ reg: n });
}

export const R0 = reg(0), R1 = reg(1), R2 = reg(2), R3 = reg(3), R4 = reg(4), R5 = reg(5);
export const R6 = reg(6), R7 = reg(7), R8 = reg(8), R9 = reg(9);
/** the read-only frame pointer */
export const R10 = reg(BPF_REG_FP);

/** a register or a 32-bit immediate */
export type Operand = Reg | number;
export type AluOp = keyof typeof BpfAluOp;
export type JmpOp = Exclude<keyof typeof BpfJmpOp, 'ja' | 'call' | 'exit'>;
export type Size = 1 | 2 | 4 | 8;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** a jump whose offset is resolved at assembly */
  target?: string;
  /** an ld_imm64 of a subprogram: imm is its offset, resolved at assembly */
  func?: string;
}

const isReg = (o: Operand): o is Reg => typeof o === 'object';

function checkReg(r: Reg, writable: boolean): number {
  if (!Number.isInteger(r.reg) || r.reg < 0 || r.reg > BPF_REG_FP) throw new Error(`bad register r${r.reg}`);
  if (writable && r.reg === BPF_REG_FP) throw new Error('r10 (the frame pointer) is read-only');
  return r.reg;
}

/** A 32-bit immediate: signed, or unsigned up to 2^32-1 (stored as its two's complement). */
function imm32(v: number): number {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff) throw new Error(`immediate ${v} does not fit 32 bits`);
  return v | 0;
}

function off16(v: number): number {
  if (!Number.isInteger(v) || v < -0x8000 || v > 0x7fff) throw new Error(`offset ${v} does not fit 16 bits`);
  return v;
}

export class Asm {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  /** instruction slots so far (ld_imm64 takes two) */
  get length(): number {
    return this.insns.length;
  }

  private emit(i: Insn): this {
    this.insns.push(i);
    return this;
  }

  /** Defines `name` at the next instruction. */
  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  private alu(cls: number, op: AluOp, dst: Reg, src: Operand): this {
    const d = checkReg(dst, true);
    if (isReg(src)) return this.emit({ code: cls | BpfAluOp[op] | BpfSrc.X, dst: d, src: checkReg(src, false), off: 0, imm: 0 });
    return this.emit({ code: cls | BpfAluOp[op] | BpfSrc.K, dst: d, src: 0, off: 0, imm: imm32(src) });
  }

  /** 64-bit ALU: dst = dst op src (for mov: dst = src; an immediate is sign-extended) */
  alu64(op: AluOp, dst: Reg, src: Operand): this {
    return this.alu(BpfClass.ALU64, op, dst, src);
  }

  /** 32-bit ALU: the upper half of dst becomes zero */
  alu32(op: AluOp, dst: Reg, src: Operand): this {
    return this.alu(BpfClass.ALU, op, dst, src);
  }

  mov(dst: Reg, src: Operand): this {
    return this.alu64('mov', dst, src);
  }

  add(dst: Reg, src: Operand): this {
    return this.alu64('add', dst, src);
  }

  /** dst = *(size *)(src + off) */
  ldx(size: Size, dst: Reg, src: Reg, off: number): this {
    return this.emit({ code: BpfClass.LDX | BpfMode.MEM | BpfSize[size], dst: checkReg(dst, true), src: checkReg(src, false), off: off16(off), imm: 0 });
  }

  /** *(size *)(dst + off) = src */
  stx(size: Size, dst: Reg, off: number, src: Reg): this {
    return this.emit({ code: BpfClass.STX | BpfMode.MEM | BpfSize[size], dst: checkReg(dst, false), src: checkReg(src, false), off: off16(off), imm: 0 });
  }

  /** *(size *)(dst + off) = imm (sign-extended to the size) */
  st(size: Size, dst: Reg, off: number, imm: number): this {
    return this.emit({ code: BpfClass.ST | BpfMode.MEM | BpfSize[size], dst: checkReg(dst, false), src: 0, off: off16(off), imm: imm32(imm) });
  }

  /** lock *(size *)(dst + off) += src: atomic, for counters several CPUs update (size 4 or 8) */
  atomicAdd(size: 4 | 8, dst: Reg, off: number, src: Reg): this {
    return this.emit({ code: BpfClass.STX | BpfMode.ATOMIC | BpfSize[size], dst: checkReg(dst, false), src: checkReg(src, false), off: off16(off), imm: BPF_ATOMIC_ADD });
  }

  private ldImm64Raw(dst: Reg, src: number, value: bigint): this {
    const v = BigInt.asUintN(64, value);
    this.emit({ code: BpfClass.LD | BpfMode.IMM | BpfSize[8], dst: checkReg(dst, true), src, off: 0, imm: Number(BigInt.asIntN(32, v)) });
    return this.emit({ code: 0, dst: 0, src: 0, off: 0, imm: Number(BigInt.asIntN(32, v >> 32n)) });
  }

  /** dst = a 64-bit constant (two instruction slots) */
  ldImm64(dst: Reg, value: bigint | number): this {
    return this.ldImm64Raw(dst, 0, BigInt(value));
  }

  /** dst = the subprogram at `label` (after the main program's exit), as a callback for bpf_loop */
  ldFunc(dst: Reg, label: string): this {
    this.emit({ code: BpfClass.LD | BpfMode.IMM | BpfSize[8], dst: checkReg(dst, true), src: BPF_PSEUDO_FUNC, off: 0, imm: 0, func: label });
    return this.emit({ code: 0, dst: 0, src: 0, off: 0, imm: 0 });
  }

  /** dst = the map behind `fd` (the kernel replaces the fd by the map at load) */
  ldMapFd(dst: Reg, fd: number): this {
    return this.ldImm64Raw(dst, BPF_PSEUDO_MAP_FD, BigInt(imm32(fd)));
  }

  /** dst = the address of byte `off` of the value of the array map behind `fd` (its only element) */
  ldMapValue(dst: Reg, fd: number, off = 0): this {
    return this.ldImm64Raw(dst, BPF_PSEUDO_MAP_VALUE, (BigInt(off) << 32n) | BigInt(imm32(fd) >>> 0));
  }

  /** goto label */
  ja(label: string): this {
    return this.emit({ code: BpfClass.JMP | BpfJmpOp.ja, dst: 0, src: 0, off: 0, imm: 0, target: label });
  }

  /** if (dst op src) goto label; 64-bit compare */
  jmp(op: JmpOp, dst: Reg, src: Operand, label: string): this {
    const d = checkReg(dst, false);
    if (isReg(src)) return this.emit({ code: BpfClass.JMP | BpfJmpOp[op] | BpfSrc.X, dst: d, src: checkReg(src, false), off: 0, imm: 0, target: label });
    return this.emit({ code: BpfClass.JMP | BpfJmpOp[op] | BpfSrc.K, dst: d, src: 0, off: 0, imm: imm32(src), target: label });
  }

  /** if (dst op src) goto label; 32-bit compare */
  jmp32(op: JmpOp, dst: Reg, src: Operand, label: string): this {
    const d = checkReg(dst, false);
    if (isReg(src)) return this.emit({ code: BpfClass.JMP32 | BpfJmpOp[op] | BpfSrc.X, dst: d, src: checkReg(src, false), off: 0, imm: 0, target: label });
    return this.emit({ code: BpfClass.JMP32 | BpfJmpOp[op] | BpfSrc.K, dst: d, src: 0, off: 0, imm: imm32(src), target: label });
  }

  /** r0 = helper(r1..r5); the helper's number comes from the kernel's BTF */
  call(helperId: number): this {
    return this.emit({ code: BpfClass.JMP | BpfJmpOp.call, dst: 0, src: 0, off: 0, imm: imm32(helperId) });
  }

  /** r0 = kfunc(r1..r5); `btfId` is the vmlinux BTF id of the kfunc's FUNC */
  callKfunc(btfId: number): this {
    return this.emit({ code: BpfClass.JMP | BpfJmpOp.call, dst: 0, src: BPF_PSEUDO_KFUNC_CALL, off: 0, imm: imm32(btfId) });
  }

  exit(): this {
    return this.emit({ code: BpfClass.JMP | BpfJmpOp.exit, dst: 0, src: 0, off: 0, imm: 0 });
  }

  /** The subprograms (callbacks) ldFunc names, each with the index of its first instruction: the program's BTF func_info. */
  subprograms(): { name: string; insn: number }[] {
    const names = [...new Set(this.insns.flatMap((i) => (i.func === undefined ? [] : [i.func])))];
    return names.map((name) => {
      const insn = this.labels.get(name);
      if (insn === undefined) throw new Error(`undefined subprogram ${name}`);
      return { name, insn };
    }).sort((a, b) => a.insn - b.insn);
  }

  /** The program as struct bpf_insn[] in the host's byte order; jumps resolved. */
  assemble(): Buffer {
    const le = os.endianness() === 'LE';
    const out = Buffer.alloc(this.insns.length * BPF_INSN_SIZE);
    this.insns.forEach((ins, i) => {
      let off = ins.off;
      if (ins.target !== undefined) {
        const at = this.labels.get(ins.target);
        if (at === undefined) throw new Error(`undefined label ${ins.target}`);
        if (at >= this.insns.length) throw new Error(`label ${ins.target} is past the last instruction`);
        off = at - (i + 1);
        if (off < -0x8000 || off > 0x7fff) throw new Error(`jump to ${ins.target} too far`);
      }
      let imm = ins.imm;
      if (ins.func !== undefined) {
        const at = this.labels.get(ins.func);
        if (at === undefined || at >= this.insns.length) throw new Error(`undefined subprogram ${ins.func}`);
        imm = at - (i + 1);
      }
      const p = i * BPF_INSN_SIZE;
      out[p] = ins.code;
      // struct bpf_insn { __u8 dst_reg:4, src_reg:4 }: bitfield order follows the byte order
      out[p + 1] = le ? (ins.src << 4) | ins.dst : (ins.dst << 4) | ins.src;
      if (le) {
        out.writeInt16LE(off, p + 2);
        out.writeInt32LE(imm, p + 4);
      } else {
        out.writeInt16BE(off, p + 2);
        out.writeInt32BE(imm, p + 4);
      }
    });
    return out;
  }
}
