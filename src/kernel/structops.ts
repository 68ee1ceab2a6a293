// Reading a struct_ops map: whether it is registered, and which program fills each
// of its function-pointer slots. BPF_MAP_LOOKUP_ELEM (key 0) gives the map's value,
// struct bpf_struct_ops_<name>: `common` (refcnt, state), then the kernel struct
// itself, in which the kernel writes each slot's program id (a u64) where the
// function pointer is. Every offset comes from the running kernel's BTF.
import os from 'node:os';
import { mapInfo, mapLookup, decodeName, KernelError } from './bpf.js';
import { kernelBtf, type Btf } from './btf.js';

const STATE_ENUM = 'bpf_struct_ops_state';
const STATE_PREFIX = 'BPF_STRUCT_OPS_STATE_';

export interface StructOpsValue {
  /** the kernel's state name, lower case: 'init', 'inuse' (registered), 'tobefree', 'ready'; or 'unknown(N)' */
  state: string;
  /** the kernel struct it implements, e.g. tcp_congestion_ops */
  structName: string;
  /** the struct's own `name` member when it has one (a congestion control's name) */
  name: string | null;
  /** the function-pointer members that hold a program */
  slots: { member: string; progId: number }[];
}

/** A state value by its name in the kernel's enum bpf_struct_ops_state. */
function stateName(btf: Btf, value: number): string {
  const e = btf.enumerators(STATE_ENUM).find((x) => x.value === value);
  return e ? e.name.replace(STATE_PREFIX, '').toLowerCase() : `unknown(${value})`;
}

/** Decodes a struct_ops map's value (pure: tests feed it buffers). */
export function decodeStructOps(btf: Btf, valueTypeId: number, value: Buffer): StructOpsValue {
  const le = os.endianness() === 'LE';
  const state = btf.field(valueTypeId, 'common.state');
  const data = btf.field(valueTypeId, 'data');
  if (state.size !== 4 || data.offset + btf.size(data.typeId) > value.length) {
    throw new KernelError('struct_ops value', os.constants.errno.EINVAL, `${btf.name(valueTypeId)} does not fit ${value.length} bytes`);
  }
  const slots: StructOpsValue['slots'] = [];
  let name: string | null = null;
  for (const m of btf.members(data.typeId)) {
    const at = data.offset + m.bitOffset / 8;
    if (m.isFuncPtr) {
      const id = Number(le ? value.readBigUInt64LE(at) : value.readBigUInt64BE(at));
      if (id !== 0) slots.push({ member: m.name, progId: id });
    } else if (m.name === 'name' && btf.kind(m.resolvedId) === 'array') {
      name = decodeName(value.subarray(at, at + btf.size(m.resolvedId)));
    }
  }
  return {
    state: stateName(btf, le ? value.readInt32LE(state.offset) : value.readInt32BE(state.offset)),
    structName: btf.name(data.typeId),
    name,
    slots,
  };
}

/** The value of a struct_ops map, through its fd. Throws KernelError when it is not one or cannot be read. */
export function readStructOps(fd: number): StructOpsValue {
  const info = mapInfo(fd);
  if (info.type !== 'struct_ops' || info.vmlinuxValueTypeId === 0) {
    throw new KernelError('struct_ops value', os.constants.errno.EINVAL, `map ${info.id} is a ${info.type} map`);
  }
  const value = mapLookup(fd, Buffer.alloc(4), info.valueSize);
  if (!value) throw new KernelError('BPF_MAP_LOOKUP_ELEM', os.constants.errno.ENOENT, `struct_ops map ${info.id}`);
  return decodeStructOps(kernelBtf(), info.vmlinuxValueTypeId, value);
}
