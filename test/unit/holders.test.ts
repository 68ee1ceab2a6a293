import { describe, expect, it } from 'vitest';
import { buildHolders, mayBeMmapped } from '../../src/scan/holders.js';
import { parseBpfMapMappings } from '../../src/kernel/procfs.js';
import type { MapDetails } from '../../src/kernel/bpf.js';
import type { ProcessScan } from '../../src/scan/processes.js';

const PAGE = 4096;
const map = (id: number, type: string, valueSize: number, maxEntries: number, flags = 1 << 10): MapDetails =>
  ({ kind: 'map', id, name: `m${id}`, type, keySize: 4, valueSize, maxEntries, flags });
const maps = new Map([
  [1, map(1, 'array', 4096, 1000)], // 4000 KiB mmapable array
  [2, map(2, 'array', 8, 1)], // one page
  [3, map(3, 'ringbuf', 0, 1 << 20, 0)], // 1 MiB ring buffer
  [4, map(4, 'hash', 8, 100, 0)], // not mmapable
]);

function scan(mappings: Record<number, { size: number; offset: number }[]>): ProcessScan {
  const processes = new Map(Object.keys(mappings).map((pid) => [Number(pid), { pid: Number(pid), startTime: 1, comm: `p${pid}`, ppid: 1, mntNs: 1, cgroup: null }]));
  return { processes, unreadable: [], bpfFds: [], nsFds: [], perfFds: [], mapMappings: new Map(Object.entries(mappings).map(([pid, m]) => [Number(pid), m])) };
}
const heldBy = (h: ReturnType<typeof buildHolders>, pid: number) =>
  [...h.byObject].filter(([, hs]) => hs.some((x) => x.pid === pid && x.mmapped)).map(([k]) => k).sort();

describe('mmap holders', () => {
  it('a ring buffer consumer plus producer pages hold that ring buffer only', () => {
    const h = buildHolders(scan({ 10: [{ size: PAGE, offset: 0 }, { size: PAGE + 2 * (1 << 20), offset: PAGE }] }), maps, PAGE, () => null);
    expect(heldBy(h, 10)).toEqual(['map:3']);
  });

  it('a whole mmapable array holds exactly that array', () => {
    const h = buildHolders(scan({ 11: [{ size: 4096 * 1000, offset: 0 }] }), maps, PAGE, () => null);
    expect(heldBy(h, 11)).toEqual(['map:1']);
    expect(h.mmapNotes.size).toBe(0);
  });

  it('an exact one-page mapping prefers the one-page array over every bigger map', () => {
    const h = buildHolders(scan({ 12: [{ size: PAGE, offset: 0 }] }), maps, PAGE, () => null);
    expect(heldBy(h, 12)).toEqual(['map:2']);
  });

  it('a partial mapping of no exact shape holds every map it fits, with a note', () => {
    const h = buildHolders(scan({ 13: [{ size: 2 * PAGE, offset: 0 }] }), maps, PAGE, () => null);
    expect(heldBy(h, 13)).toEqual(['map:1', 'map:3']);
    expect(h.mmapNotes.get(1)).toMatch(/counted as held to be safe/);
  });

  it('parses the mappings of /proc/<pid>/maps', () => {
    expect(parseBpfMapMappings([
      '7faafa862000-7faafa863000 r--s 00000000 00:10 1038                       anon_inode:bpf-map',
      '7faafa863000-7faafa865000 r--s 00001000 00:10 1038                       anon_inode:bpf-map',
      '7faafa900000-7faafa901000 r-xp 00000000 fe:00 42                         /usr/bin/node',
    ].join('\n'))).toEqual([{ size: 4096, offset: 0 }, { size: 8192, offset: 4096 }]);
  });
});

describe('mayBeMmapped (whether the task_vma iterator must be read)', () => {
  it('only a mmapable array, a ring buffer, an arena, or a type this version does not know', () => {
    expect(mayBeMmapped('array', 0)).toBe(false);
    expect(mayBeMmapped('array', 1 << 10)).toBe(true); // BPF_F_MMAPABLE
    for (const t of ['ringbuf', 'user_ringbuf', 'arena', 'insn_array', undefined]) expect(mayBeMmapped(t, 0)).toBe(true);
    for (const t of ['hash', 'prog_array', 'percpu_array', 'sockmap', 'struct_ops', 'bloom_filter']) expect(mayBeMmapped(t, 1 << 10)).toBe(false);
  });
});
