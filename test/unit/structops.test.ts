// Decoding a struct_ops map's value on a hand-built BTF: state names from the enum,
// program ids in function-pointer slots, the struct's name.
import { describe, expect, it } from 'vitest';
import { Btf } from '../../src/kernel/btf.js';
import { decodeStructOps } from '../../src/kernel/structops.js';
import { buildBtf } from '../world/btf-builder.js';

let valueTypeId = 0;
const btf = new Btf(buildBtf((b) => {
  const u32 = b.int('u32', 4);
  const char = b.int('char', 1);
  const state = b.enum('bpf_struct_ops_state', [
    ['BPF_STRUCT_OPS_STATE_INIT', 0], ['BPF_STRUCT_OPS_STATE_INUSE', 1],
    ['BPF_STRUCT_OPS_STATE_TOBEFREE', 2], ['BPF_STRUCT_OPS_STATE_READY', 3],
  ]);
  const common = b.struct('bpf_struct_ops_common_value', 8, [['refcnt', u32, 0], ['state', state, 32]]);
  const fn = b.ptr(b.funcProto(u32, [u32]));
  const ops = b.struct('my_ops', 40, [['cb_a', fn, 0], ['cb_b', fn, 64], ['name', b.array(char, u32, 16), 128], ['flags', u32, 256]]);
  valueTypeId = b.struct('bpf_struct_ops_my_ops', 48, [['common', common, 0], ['data', ops, 64]]);
}));

function value(state: number, cbA: number, cbB: number, name: string): Buffer {
  const v = Buffer.alloc(48);
  v.writeInt32LE(state, 4);
  v.writeBigUInt64LE(BigInt(cbA), 8);
  v.writeBigUInt64LE(BigInt(cbB), 16);
  v.write(name, 24, 'latin1');
  v.writeUInt32LE(0xffffffff, 40); // flags: not a slot, not a name
  return v;
}

describe('decodeStructOps', () => {
  it('names the state from the kernel enum and lists filled slots with their program ids', () => {
    expect(decodeStructOps(btf, valueTypeId, value(1, 7, 0, 'hello'))).toEqual({
      state: 'inuse', structName: 'my_ops', name: 'hello', slots: [{ member: 'cb_a', progId: 7 }],
    });
    expect(decodeStructOps(btf, valueTypeId, value(2, 7, 9, 'x')).slots).toEqual([
      { member: 'cb_a', progId: 7 }, { member: 'cb_b', progId: 9 },
    ]);
  });

  it('keeps a state the enum does not know as a number', () => {
    expect(decodeStructOps(btf, valueTypeId, value(9, 0, 0, '')).state).toBe('unknown(9)');
    expect(decodeStructOps(btf, valueTypeId, value(3, 0, 0, '')).state).toBe('ready');
  });

  it('refuses a value shorter than its type', () => {
    expect(() => decodeStructOps(btf, valueTypeId, Buffer.alloc(40))).toThrow(/does not fit 40 bytes/);
  });
});
