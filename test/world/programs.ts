// Hand-assembled BPF programs for the kernel tests (the instructions src/kernel/bpf.ts
// progLoad takes): tail calls, map users, a map store a test can observe.
import type { InsnSpec } from './world.js';

/** BPF_LD_IMM64 reg, map (src_reg BPF_PSEUDO_MAP_FD): two slots */
const loadMap = (reg: number, mapFd: number): InsnSpec[] => [{ code: 0x18, dst: reg, src: 1, imm: mapFd }, { code: 0 }];

/** r0 = value; exit */
export const returns = (value: number): InsnSpec[] => [{ code: 0xb7, dst: 0, imm: value }, { code: 0x95 }];

/** bpf_tail_call(ctx, progArray, slot); when the slot is empty, returns `fallback` */
export const tailCall = (progArrayFd: number, slot: number, fallback = 1): InsnSpec[] => [
  ...loadMap(2, progArrayFd),
  { code: 0xb7, dst: 3, imm: slot }, // r3 = slot
  { code: 0x85, imm: 12 }, // call bpf_tail_call
  ...returns(fallback),
];

/** map[0] = value (an array of 8-byte values), then returns 1: a run the test can see */
export const storeInMap = (mapFd: number, value: number): InsnSpec[] => [
  { code: 0x62, dst: 10, off: -4, imm: 0 }, // *(u32 *)(r10 - 4) = 0
  ...loadMap(1, mapFd),
  { code: 0xbf, dst: 2, src: 10 }, // r2 = r10
  { code: 0x07, dst: 2, imm: -4 }, // r2 += -4
  { code: 0x85, imm: 1 }, // call bpf_map_lookup_elem
  { code: 0x15, dst: 0, off: 1, imm: 0 }, // if r0 == 0 goto +1
  { code: 0x7a, dst: 0, off: 0, imm: value }, // *(u64 *)(r0 + 0) = value
  ...returns(1),
];

/** returns 1, with every map in its map_ids */
export const usesMaps = (mapFds: number[]): InsnSpec[] => [...mapFds.flatMap((fd) => loadMap(1, fd)), ...returns(1)];

/** little-endian u32 / u64 as the hex strings the agent's update op takes */
export const u32hex = (n: number): string => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b.toString('hex');
};
export const u64hex = (n: number): string => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b.toString('hex');
};
