// The assembler against encodings derived by hand from the ISA
// (Documentation/bpf/standardization/instruction-set.rst): 8 bytes per slot,
// opcode, dst_reg in the low nibble and src_reg in the high one (little-endian host),
// a signed 16-bit offset and a signed 32-bit immediate, both little-endian.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { Asm, R0, R1, R2, R3, R6, R7, R10 } from '../../src/kernel/asm.js';

const hex = (a: Asm) => a.assemble().toString('hex').match(/.{16}/g);

describe.runIf(os.endianness() === 'LE')('BPF assembler encodings', () => {
  it('encodes ALU64 and ALU32 with immediates and registers', () => {
    expect(hex(new Asm().mov(R0, 0))).toEqual(['b700000000000000']);
    expect(hex(new Asm().mov(R6, R1))).toEqual(['bf16000000000000']);
    expect(hex(new Asm().add(R2, -8))).toEqual(['07020000f8ffffff']);
    expect(hex(new Asm().alu64('and', R3, R7))).toEqual(['5f73000000000000']);
    expect(hex(new Asm().alu32('mov', R1, 5))).toEqual(['b401000005000000']);
    expect(hex(new Asm().alu64('rsh', R1, 32))).toEqual(['7701000020000000']);
    // an unsigned 32-bit immediate is stored as its two's complement
    expect(hex(new Asm().mov(R1, 0xffffffff))).toEqual(['b7010000ffffffff']);
  });

  it('encodes loads and stores of every size', () => {
    expect(hex(new Asm().ldx(8, R1, R6, 8))).toEqual(['7961080000000000']);
    expect(hex(new Asm().ldx(4, R1, R7, 16))).toEqual(['6171100000000000']);
    expect(hex(new Asm().ldx(2, R1, R7, 2))).toEqual(['6971020000000000']);
    expect(hex(new Asm().ldx(1, R3, R1, 9))).toEqual(['7113090000000000']);
    expect(hex(new Asm().stx(4, R10, -8, R1))).toEqual(['631af8ff00000000']);
    expect(hex(new Asm().stx(8, R10, -24, R7))).toEqual(['7b7ae8ff00000000']);
    expect(hex(new Asm().stx(2, R10, -2, R1))).toEqual(['6b1afeff00000000']);
    expect(hex(new Asm().stx(1, R10, -1, R1))).toEqual(['731affff00000000']);
    expect(hex(new Asm().st(4, R10, -4, 0))).toEqual(['620afcff00000000']);
    expect(hex(new Asm().st(8, R10, -16, -1))).toEqual(['7a0af0ffffffffff']);
  });

  it('encodes the address of a subprogram (a bpf_loop callback) relative to the next slot, and lists the subprograms', () => {
    const a = new Asm().ldFunc(R2, 'cb').mov(R0, 0).exit().label('cb').mov(R0, 0).exit();
    // ld_imm64, src_reg BPF_PSEUDO_FUNC (4): the callback starts 4 slots after the first (3 after the next)
    expect(hex(a)).toEqual(['1842000003000000', '0000000000000000', 'b700000000000000', '9500000000000000', 'b700000000000000', '9500000000000000']);
    expect(a.subprograms()).toEqual([{ name: 'cb', insn: 4 }]);
    expect(new Asm().mov(R0, 0).exit().subprograms()).toEqual([]);
    expect(() => new Asm().ldFunc(R2, 'nowhere').exit().assemble()).toThrow(/nowhere/);
  });

  it('encodes an atomic add and the address of an array map\'s value', () => {
    // BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD
    expect(hex(new Asm().atomicAdd(8, R1, 0, R2))).toEqual(['db21000000000000']);
    expect(hex(new Asm().atomicAdd(4, R1, 8, R2))).toEqual(['c321080000000000']);
    // ld_imm64 with src_reg BPF_PSEUDO_MAP_VALUE: the fd in the first slot, the offset in the second
    expect(hex(new Asm().ldMapValue(R1, 7, 16))).toEqual(['1821000007000000', '0000000010000000']);
  });

  it('encodes ld_imm64 in two slots, plain and with a map fd', () => {
    expect(hex(new Asm().ldImm64(R1, 0x1122334455667788n))).toEqual(['1801000088776655', '0000000044332211']);
    expect(hex(new Asm().ldImm64(R2, -1))).toEqual(['18020000ffffffff', '00000000ffffffff']);
    expect(hex(new Asm().ldMapFd(R1, 5))).toEqual(['1811000005000000', '0000000000000000']);
    expect(new Asm().ldImm64(R1, 0).length).toBe(2);
  });

  it('encodes helper calls, kfunc calls and exit', () => {
    expect(hex(new Asm().call(127))).toEqual(['850000007f000000']);
    // BPF_PSEUDO_KFUNC_CALL (2) in src_reg, the kfunc's BTF id in imm
    expect(hex(new Asm().callKfunc(65477))).toEqual(['85200000c5ff0000']);
    expect(hex(new Asm().exit())).toEqual(['9500000000000000']);
  });

  it('resolves labels forward and backward, counting ld_imm64 as two slots', () => {
    const a = new Asm()
      .label('top')
      .jmp('jeq', R7, 0, 'out') // slot 0 -> 4: off 3
      .ldImm64(R1, 1) // slots 1-2
      .ja('top') // slot 3 -> 0: off -4
      .label('out')
      .jmp('jne', R1, R2, 'out') // slot 4 -> 4: off -1
      .jmp32('jgt', R1, 7, 'top') // slot 5 -> 0: off -6
      .exit();
    expect(hex(a)).toEqual([
      '1507030000000000', '1801000001000000', '0000000000000000', '0500fcff00000000',
      '5d21ffff00000000', '2601faff07000000', '9500000000000000',
    ]);
  });

  it('refuses what cannot be encoded', () => {
    expect(() => new Asm().ja('nowhere').exit().assemble()).toThrow('undefined label nowhere');
    expect(() => new Asm().label('a').label('a')).toThrow('defined twice');
    expect(() => new Asm().ja('end').label('end').assemble()).toThrow('past the last instruction');
    expect(() => new Asm().mov(R10, 0)).toThrow('read-only');
    expect(() => new Asm().mov(R1, 2 ** 32)).toThrow('does not fit 32 bits');
    expect(() => new Asm().ldx(8, R1, R2, 40000)).toThrow('does not fit 16 bits');
    expect(() => new Asm().mov({ reg: 11 }, 0)).toThrow('bad register');
  });
});
