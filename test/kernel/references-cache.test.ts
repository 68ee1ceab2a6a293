// A resident pinleak reads each program's info once and keeps it while the kernel's count
// of the program's maps is unchanged: a map bound later (BPF_PROG_BIND_MAP) must still be
// seen as used by the program, or the map could be called a leak.
import { describe, expect, it } from 'vitest';
import { closeFd, mapCreate, progBindMap, progInfo, progLoad, trivialProgram } from '../../src/kernel/bpf.js';
import { readKernelCounts } from '../../src/kernel/iterators.js';
import { ProgType } from '../../src/kernel/abi.js';
import { readReferenceGraph } from '../../src/scan/references.js';

const graph = () => readReferenceGraph({ withMaps: false, cgroupRoots: [], memlock: true, progCounts: readKernelCounts().progs }, []);
const usesMap = (g: ReturnType<typeof graph>, progId: number, mapId: number) =>
  g.refs.some((r) => r.from.kind === 'prog' && r.from.id === progId && r.to.kind === 'map' && r.to.id === mapId);

describe('program info kept across scans', () => {
  it('sees a map bound to a loaded program after the first scan', () => {
    const fds: number[] = [];
    try {
      const mapA = mapCreate({ type: 1, keySize: 4, valueSize: 8, maxEntries: 4, name: 'cache_a' });
      fds.push(mapA);
      const mapB = mapCreate({ type: 1, keySize: 4, valueSize: 8, maxEntries: 4, name: 'cache_b' });
      fds.push(mapB);
      const prog = progLoad({ type: ProgType.SOCKET_FILTER, insns: trivialProgram(mapA), name: 'cache_prog' });
      fds.push(prog);
      const { id: progId, mapIds } = progInfo(prog);
      const [idA] = mapIds;
      const first = graph();
      expect(first.progs.get(progId)!.mapIds).toEqual([idA]);
      expect(first.memlock.get(`prog:${progId}`)).toBeGreaterThan(0);
      const second = graph(); // from the cache: the same facts
      expect(second.progs.get(progId)).toEqual(first.progs.get(progId));
      expect(second.memlock.get(`prog:${progId}`)).toBe(first.memlock.get(`prog:${progId}`));

      progBindMap(prog, mapB);
      const idB = progInfo(prog).mapIds.find((id) => id !== idA)!;
      expect(idB).toBeDefined();
      const third = graph();
      expect(third.progs.get(progId)!.mapIds.sort()).toEqual([idA, idB].sort());
      expect(usesMap(third, progId, idB)).toBe(true);
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  });
});
