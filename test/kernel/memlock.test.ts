// The object cache serves a used map's memlock from the last scan only when the map's
// memory cannot change (memlockFixed). Each type it names is measured here: filled to
// capacity, its fdinfo memlock stays what it was at creation; a hash made with
// BPF_F_NO_PREALLOC shows that a growing map is seen growing.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { closeFd, mapCreate, mapUpdate, progLoad, trivialProgram } from '../../src/kernel/bpf.js';
import { BPF_F_NO_PREALLOC, MAP_TYPES, ProgType } from '../../src/kernel/abi.js';
import { readBpfFdinfo } from '../../src/kernel/procfs.js';
import { memlockFixed } from '../../src/scan/holders.js';

/** number of possible CPUs (/sys/devices/system/cpu/possible: "0-1"): per-CPU values are that many */
function possibleCpus(): number {
  return fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')
    .reduce((n, r) => { const [a, b] = r.split('-').map(Number); return n + (b === undefined ? 1 : b - a! + 1); }, 0);
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const memlock = (fd: number) => readBpfFdinfo('self', fd)!.memlock;
const ENTRIES = 64;

interface Case { type: string; flags?: number; keySize: number; valueSize: number; value: (fds: number[]) => Buffer; keyed: boolean }

// How to fill a map of each type: keyed types take keys 0..ENTRIES-1, the others are pushed to.
function cases(): Case[] {
  const cpus = possibleCpus();
  const plain = (type: string): Case => ({ type, keySize: 4, valueSize: 8, value: () => Buffer.alloc(8, 7), keyed: true });
  const perCpu = (type: string): Case => ({ type, keySize: 4, valueSize: 8, value: () => Buffer.alloc(8 * cpus, 7), keyed: true });
  const fdValue = (type: string, of: 'map' | 'prog'): Case => ({ type, keySize: 4, valueSize: 4, value: (f) => u32(of === 'map' ? f[0]! : f[1]!), keyed: true });
  const pushed = (type: string): Case => ({ type, keySize: 0, valueSize: 8, value: () => Buffer.alloc(8, 7), keyed: false });
  return [
    plain('array'), perCpu('percpu_array'), fdValue('prog_array', 'prog'), fdValue('array_of_maps', 'map'),
    plain('hash'), perCpu('percpu_hash'), plain('lru_hash'), perCpu('lru_percpu_hash'), fdValue('hash_of_maps', 'map'),
    pushed('queue'), pushed('stack'), pushed('bloom_filter'),
  ];
}

describe('map memory (fdinfo memlock)', () => {
  it('stays as created for every type memlockFixed names, filled to capacity', () => {
    const named = MAP_TYPES.filter((t) => memlockFixed(t, 0));
    expect(cases().map((c) => c.type).sort()).toEqual([...named].sort()); // every listed type is measured
    const fds: number[] = [];
    try {
      const inner = mapCreate({ type: MAP_TYPES.indexOf('array'), keySize: 4, valueSize: 8, maxEntries: 1, name: 'ml_inner' });
      fds.push(inner);
      const prog = progLoad({ type: ProgType.SOCKET_FILTER, insns: trivialProgram(), name: 'ml_prog' });
      fds.push(prog);
      for (const c of cases()) {
        const fd = mapCreate({
          type: MAP_TYPES.indexOf(c.type), keySize: c.keySize, valueSize: c.valueSize, maxEntries: ENTRIES,
          flags: c.flags ?? 0, name: `ml_${c.type}`.slice(0, 15), innerMapFd: c.type.endsWith('_of_maps') ? inner : undefined,
        });
        fds.push(fd);
        const before = memlock(fd);
        for (let k = 0; k < ENTRIES; k++) mapUpdate(fd, c.keyed ? u32(k) : Buffer.alloc(0), c.value([inner, prog]));
        expect({ type: c.type, memlock: memlock(fd) }).toEqual({ type: c.type, memlock: before });
      }
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  });

  it('grows for a hash made with BPF_F_NO_PREALLOC, which memlockFixed does not name', () => {
    expect(memlockFixed('hash', BPF_F_NO_PREALLOC)).toBe(false);
    const fd = mapCreate({ type: MAP_TYPES.indexOf('hash'), keySize: 4, valueSize: 8, maxEntries: ENTRIES, flags: BPF_F_NO_PREALLOC, name: 'ml_grows' });
    try {
      const before = memlock(fd);
      for (let k = 0; k < ENTRIES; k++) mapUpdate(fd, u32(k), Buffer.alloc(8, 7));
      expect(memlock(fd)).toBeGreaterThan(before);
    } finally {
      closeFd(fd);
    }
  });
});
